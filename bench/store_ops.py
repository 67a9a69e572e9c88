"""The store's own cost per message: CPU of each step a message takes through the outbox.

One thread, no HTTP, no contention: enqueue (10 submissions of 100 in one group commit),
claim, mark sending, record the provider's answer, and ingest one delivery report per
message in callback batches of 100. Prints CPU microseconds per message for each step and
their share of the total; on SQLite every one of them holds the single writer, so this
total bounds what one gateway can commit per second.

    python -m bench.store_ops [--postgres URL] [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from bench.common import save
from formosms.gateway.store import NewMessage, Outcome, Store, Submission
from formosms.model import DeliveryReport, Status, WebhookResult
from formosms.webhooks.events import events_of

T = TypeVar("T")
PER_ROUND = 1000
STEPS = ("enqueue", "claim", "mark_sending", "record", "ingest")


def run(store: Store, rounds: int) -> tuple[dict[str, float], dict[str, float]]:
    """CPU and wall seconds per step over ``rounds`` rounds of ``PER_ROUND`` messages
    (on PostgreSQL the wall time includes the server's work and the round trips)."""
    spent = dict.fromkeys(STEPS, 0.0)
    wall = dict.fromkeys(STEPS, 0.0)

    def timed(step: str, action: Callable[..., T], *args: object, **kwargs: object) -> T:
        started, clock = time.thread_time(), time.perf_counter()
        result = action(*args, **kwargs)
        spent[step] += time.thread_time() - started
        wall[step] += time.perf_counter() - clock
        return result

    for n in range(rounds):
        base = n * PER_ROUND
        batch = [
            Submission([NewMessage(f"+8869{base + i * 100 + j:08d}", "bench") for j in range(100)]) for i in range(10)
        ]
        timed("enqueue", store.enqueue_many, batch)
        rows = timed("claim", store.claim, "bench", PER_ROUND)
        ids = [int(r["id"]) for r in rows]
        timed("mark_sending", store.mark_sending, ids, "every8d", worker="bench")
        pmid = f"B{n}"
        outcomes = [Outcome(i, "submitted", provider="every8d", provider_message_id=pmid, batch_id=pmid) for i in ids]
        timed("record", store.record, outcomes)
        done = datetime.now(UTC)
        events = [
            event
            for r in rows
            for event in events_of(
                WebhookResult(
                    "every8d",
                    reports=(DeliveryReport("every8d", Status.DELIVERED, "100", r["recipient"], pmid, done_at=done),),
                )
            )
        ]
        for k in range(0, len(events), 100):
            timed("ingest", store.ingest, "every8d", events[k : k + 100])
    return spent, wall


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", default="", help="PostgreSQL URL (its public schema is dropped)")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.postgres or f"sqlite:///{tmp}/store.db"
        store = Store(url)
        if args.postgres:
            from sqlalchemy import text

            with store.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public"))
        store.migrate()
        try:
            run(store, 1)  # warm up: imports, compiled statements, prepared plans
            spent, wall = run(store, args.rounds)
        finally:
            store.close()
    messages = args.rounds * PER_ROUND
    per = {step: spent[step] / messages * 1e6 for step in STEPS}
    per_wall = {step: wall[step] / messages * 1e6 for step in STEPS}
    total, total_wall = sum(per.values()), sum(per_wall.values())
    name = "store_ops_postgres" if args.postgres else "store_ops_sqlite"
    for step in STEPS:
        print(
            f"{name}: {step:<13} {per[step]:7.1f} µs CPU, {per_wall[step]:7.1f} µs wall per message "
            f"({per[step] / total:5.1%} of the CPU)"
        )
    print(
        f"{name}: total         {total:7.1f} µs CPU, {total_wall:7.1f} µs wall per message "
        f"→ at most {1e6 / total_wall:,.0f} messages/s from one thread"
    )
    save(
        name,
        {
            "messages": messages,
            "us_per_message": {k: round(v, 1) for k, v in per.items()},
            "wall_us_per_message": {k: round(v, 1) for k, v in per_wall.items()},
            "total": round(total, 1),
            "total_wall": round(total_wall, 1),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
