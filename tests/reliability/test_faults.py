"""Provider faults, callbacks out of order, hostile input: nothing lost, nothing sent twice."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.gateway_e2e.conftest import FINAL, start

MESSAGES = 200


@pytest.mark.slow
def test_a_failing_provider_fails_over_without_double_sends(tmp_path: Path) -> None:
    """TwSMS: 20 % 5xx, 5 % held connections, 5 % malformed bodies, 5 % busy codes.

    Every message reaches a final state; what TwSMS refused goes out through EVERY8D; a
    recipient is never accepted twice across the two providers (the held and garbled ones
    were processed by TwSMS: they stay ``unknown`` and are not re-sent).
    """
    for gw in start(tmp_path, providers=["twsms", "every8d"]):
        gw.box(
            "POST",
            "/twsms/faults",
            json={
                "error_rate": 0.2,
                "timeout_rate": 0.05,
                "hold": 3,
                "malformed_rate": 0.05,
                "busy_rate": 0.05,
            },
        )
        numbers = [f"09{60000000 + i:08d}" for i in range(MESSAGES)]
        reply = gw.post({"to": numbers, "text": "faults"})
        assert reply.status_code == 202
        ids = [m["id"] for m in reply.json()["messages"]]
        rows = gw.wait(ids, timeout=90)
        assert all(r["status"] in FINAL for r in rows)
        statuses = Counter(r["status"] for r in rows)
        assert statuses["delivered"] >= MESSAGES * 0.8, statuses
        via = Counter(r["provider"] for r in rows if r["status"] == "delivered")
        assert via["every8d"] > 0, "refused messages should have failed over to EVERY8D"
        from formosms.phone import normalize

        # the same number as each provider wrote it (TwSMS 09…, EVERY8D +886…), counted once
        accepted = Counter(
            normalize(m["recipient"]) for p in ("twsms", "every8d") for m in gw.box("GET", f"/{p}/messages")
        )
        assert max(accepted.values()) == 1, "a recipient was accepted twice"
        for row in rows:
            if row["status"] == "delivered":
                assert accepted[row["to"]] == 1


def test_callbacks_twice_out_of_order_and_early(tmp_path: Path) -> None:
    """Every callback twice; final states never regress; every event stored once."""
    for gw in start(tmp_path, providers=["every8d"]):
        gw.box("POST", "/every8d/faults", json={"duplicate_callbacks": True})
        reply = gw.post({"to": ["0912345678", "0922333444"], "text": "twice"})
        ids = [m["id"] for m in reply.json()["messages"]]
        rows = gw.wait(ids)
        assert {r["status"] for r in rows} == {"delivered"}
        time.sleep(0.5)
        for row in gw.wait(ids):
            delivered = [e for e in row["events"] if e["status"] == "delivered"]
            assert len(delivered) == 1, row["events"]
        # a late, older report (a "0 已發送" after delivery) must not move the state back
        from formosms.webhooks.events import events_of, parse

        row = rows[0]
        late = f"BatchID={row['batch_id']}&RM=%2B886912345678&RT=20990101000000&STATUS=0&SM=x"
        result = parse("every8d", method="GET", query=late, body=b"")
        gw.gateway.store.ingest("every8d", events_of(result))
        assert gw.http.get(f"/v1/messages/{row['id']}").json()["status"] == "delivered"
