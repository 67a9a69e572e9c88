"""Through the REST API to final states, against the sandbox's five providers."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest
from tests.gateway_e2e.conftest import Running, start

from formosms.gateway.config import RouteSettings

PNG = base64.b64encode(
    base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
).decode()


def ids_of(reply) -> list[int]:  # type: ignore[no-untyped-def]
    assert reply.status_code == 202, reply.text
    return [m["id"] for m in reply.json()["messages"]]


@pytest.mark.parametrize("provider", ["smsgo", "twsms", "smsget", "every8d", "every8d-soap"])
def test_single_message_through_each_provider(gw: Running, provider: str) -> None:
    (message_id,) = ids_of(
        gw.post({"to": "0912-345-678", "text": f"哈囉 via {provider} 100% + &", "provider": provider})
    )
    (row,) = gw.wait([message_id])
    assert row["status"] == "delivered" and row["provider"] == provider
    assert [e["status"] for e in row["events"]][:1] == ["queued"]
    assert {"sending", "submitted", "delivered"} <= {e["status"] for e in row["events"]}
    (received,) = gw.box("GET", f"/{provider}/messages")
    assert received["text"] == f"哈囉 via {provider} 100% + &"


def test_bulk_and_personalized(gw: Running) -> None:
    bulk = ids_of(gw.post({"to": [f"09{30000000 + i:08d}" for i in range(60)], "text": "群發", "provider": "smsgo"}))
    personal = ids_of(
        gw.post(
            {
                "messages": [
                    {"to": "0912345678", "text": "王先生您好"},
                    {"to": "0922333444", "text": "李小姐您好", "metadata": {"customer": "li"}},
                ],
                "provider": "every8d",
            }
        )
    )
    rows = gw.wait(bulk + personal)
    assert {r["status"] for r in rows} == {"delivered"}
    texts = {m["recipient"]: m["text"] for m in gw.box("GET", "/every8d/messages")}
    assert texts == {"+886912345678": "王先生您好", "+886922333444": "李小姐您好"}
    assert len(gw.box("GET", "/smsgo/messages")) == 60
    listed = gw.http.get("/v1/messages", params={"metadata": "customer=li"}).json()["messages"]
    assert [m["to"] for m in listed] == ["+886922333444"]


def test_scheduled_then_cancelled_never_reaches_a_provider(gw: Running) -> None:
    (message_id,) = ids_of(gw.post({"to": "0912345678", "text": "later", "schedule_at": "2099-01-01T09:00:00+08:00"}))
    assert gw.http.get(f"/v1/messages/{message_id}").json()["status"] == "scheduled"
    assert gw.http.delete(f"/v1/messages/{message_id}").json()["status"] == "canceled"
    assert gw.http.delete(f"/v1/messages/{message_id}").status_code == 409
    time.sleep(0.5)
    assert all(gw.box("GET", "/_sandbox".replace("/_sandbox", ""))[p]["accepted"] == 0 for p in gw.sandbox.emulators)


def test_scheduled_message_is_released_at_its_time(gw: Running) -> None:
    from datetime import UTC, datetime, timedelta

    when = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    (message_id,) = ids_of(gw.post({"to": "0912345678", "text": "soon", "schedule_at": when, "provider": "twsms"}))
    assert gw.http.get(f"/v1/messages/{message_id}").json()["status"] == "scheduled"
    (row,) = gw.wait([message_id])
    assert row["status"] == "delivered"


def test_mms(gw: Running) -> None:
    (message_id,) = ids_of(
        gw.post({"to": "0912345678", "text": "圖文", "mms": {"data": PNG, "type": "png", "subject": "新品"}})
    )
    (row,) = gw.wait([message_id], done=lambda r: r["status"] in ("submitted", "delivered"))
    assert row["provider"] in ("every8d", "every8d-soap")


def test_replies_are_stored_and_notified(gw: Running) -> None:
    (message_id,) = ids_of(gw.post({"to": "0912345678", "text": "請回覆", "provider": "every8d"}))
    (row,) = gw.wait([message_id])
    gw.box("POST", "/every8d/reply", json={"from": "0912345678", "text": "好", "message_id": row["batch_id"]})
    deadline = time.monotonic() + 10
    while not gw.http.get("/v1/replies").json()["replies"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (reply,) = gw.http.get("/v1/replies").json()["replies"]
    assert (reply["sender"], reply["text"], reply["message_id"]) == ("+886912345678", "好", message_id)
    while not [n for n in gw.notifications.received if n["type"] == "reply"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_status_notifications_are_signed_retried_and_in_order(gw: Running) -> None:
    gw.notifications.fail_first = 2
    (message_id,) = ids_of(
        gw.post({"to": "0912345678", "text": "notify me", "provider": "twsms", "callback_url": gw.notify_url})
    )
    gw.wait([message_id])
    deadline = time.monotonic() + 15
    while not any(n.get("status") == "delivered" for n in gw.notifications.received):
        assert time.monotonic() < deadline, gw.notifications.received
        time.sleep(0.1)
    statuses = [n["status"] for n in gw.notifications.received if n.get("id") == message_id]
    assert statuses == ["submitted", "delivered"]  # in order, each once, after two refusals
    assert gw.notifications.bad_signatures == 0


def test_idempotency_key(gw: Running) -> None:
    body = {"to": "0912345678", "text": "once", "provider": "twsms"}
    first = gw.post(body, **{"Idempotency-Key": "order-42"})
    again = gw.post(body, **{"Idempotency-Key": "order-42"})
    assert again.status_code == 202 and again.json() == first.json()
    other = gw.post({**body, "text": "different"}, **{"Idempotency-Key": "order-42"})
    assert other.status_code == 422
    gw.wait(ids_of(first))
    assert len(gw.box("GET", "/twsms/messages")) == 1


def test_failover_when_a_provider_fails(gw: Running) -> None:
    """TwSMS answers 5xx for everything: messages go out through the next provider."""
    gw.box("POST", "/twsms/faults", json={"error_rate": 1.0})
    gw.gateway.settings.max_attempts = 2
    ids = ids_of(gw.post({"to": ["0912345678", "0922333444"], "text": "failover"}))
    rows = gw.wait(ids, timeout=30)
    assert {r["status"] for r in rows} == {"delivered"}
    assert {r["provider"] for r in rows} != {"twsms"}
    assert gw.box("GET", "/twsms/messages") == []


def test_definite_refusal_fails_over_at_once(tmp_path: Path) -> None:
    """No points at SMSGo (priority 1): refused definitively, sent once by TwSMS."""
    for running in start(tmp_path, providers=["smsgo", "twsms"]):
        running.box("POST", "/smsgo/accounts", json={"username": "demo", "points": "0"})
        ids = ids_of(running.post({"to": "0912345678", "text": "no points here"}))
        (row,) = running.wait(ids)
        assert (row["status"], row["provider"]) == ("delivered", "twsms")
        assert any(e["status"] == "queued" and e["provider"] == "smsgo" for e in row["events"])
        assert running.box("GET", "/smsgo/messages") == [] and len(running.box("GET", "/twsms/messages")) == 1


def test_timeout_after_the_request_left_is_unknown_and_not_resent(tmp_path: Path) -> None:
    """TwSMS took the request, then the answer never came (504 after a held connection):
    the message is ``unknown``, and it is not sent again."""
    for running in start(tmp_path, providers=["twsms"]):
        # the sandbox processes the request, holds the connection, then answers 504
        running.box("POST", "/twsms/faults", json={"timeout_rate": 1.0, "hold": 1})
        ids = ids_of(running.post({"to": "0912345678", "text": "ambiguous"}))
        (row,) = running.wait(ids, done=lambda r: r["status"] == "unknown", timeout=30)
        assert "note" in row
        time.sleep(1.5)
        assert running.http.get(f"/v1/messages/{ids[0]}").json()["status"] == "unknown"
        assert len(running.box("GET", "/twsms/messages")) == 1  # accepted once, never re-sent


def test_unknown_is_reconciled_by_the_record_number(tmp_path: Path) -> None:
    """EVERY8D echoes the ``MR`` we set: its callback identifies the message even though
    the send's answer was lost, so ``unknown`` becomes ``delivered`` — sent once."""
    for running in start(tmp_path, providers=["every8d"], delivery_delay=2.0):
        running.box("POST", "/every8d/faults", json={"timeout_rate": 1.0, "hold": 0.5})
        ids = ids_of(running.post({"to": "0912345678", "text": "ambiguous, then known"}))
        (row,) = running.wait(ids, done=lambda r: r["status"] == "delivered", timeout=30)
        statuses = [e["status"] for e in row["events"]]
        assert "unknown" in statuses and statuses[-1] == "delivered"
        assert len(running.box("GET", "/every8d/messages")) == 1


def test_routes_by_destination(tmp_path: Path) -> None:
    routes = [RouteSettings(to="CN", providers=["every8d"])]
    for running in start(tmp_path, providers=["twsms", "every8d"], routes=routes):
        ids = ids_of(running.post({"to": ["+8613681912700", "0912345678"], "text": "route"}))
        rows = {r["to"]: r for r in running.wait(ids)}
        assert rows["+8613681912700"]["provider"] == "every8d"
        assert rows["+886912345678"]["provider"] == "twsms"


def test_status_polling_without_a_public_url(tmp_path: Path) -> None:
    for running in start(tmp_path, providers=["twsms"], public=False):
        ids = ids_of(running.post({"to": "0912345678", "text": "poll me"}))
        (row,) = running.wait(ids)
        assert row["status"] == "delivered"


def test_api_surface(gw: Running) -> None:
    assert gw.http.get("/healthz").json()["ok"] is True
    assert "formosms_queue_depth" in gw.http.get("/metrics").text
    assert gw.http.get("/openapi.json").json()["info"]["title"]
    providers = {p["name"]: p for p in gw.http.get("/v1/providers").json()["providers"]}
    assert providers["twsms"]["circuit"] == "closed" and providers["twsms"]["balance"] is not None
    assert "callbacks only" in providers["smsget"]["status_tracking"]
    import httpx

    assert httpx.post(gw.url + "/v1/messages", json={"to": "0912345678", "text": "x"}).status_code == 401
