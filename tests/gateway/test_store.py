"""The storage contract: the same suite on SQLite (a tmp file) and PostgreSQL (a fresh schema)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, event, inspect, select, text, update
from sqlalchemy.pool import NullPool

from formosms.gateway import schema
from formosms.gateway.schema import api_keys, inbox, messages, notifications
from formosms.gateway.store import NewMessage, Outcome, Store, StoreUnavailable, Submission
from formosms.model import DeliveryReport, InboundMessage, Status, WebhookResult
from formosms.webhooks.events import WebhookEvent, events_of
from tests.gateway.conftest import StoreFactory


def msg(n: int = 0, text: str = "hello", **values: Any) -> NewMessage:
    return NewMessage(recipient=f"+8869123456{n:02d}", text=text, **values)


def report(status: Status, pmid: str, n: int = 0, code: str = "", **values: Any) -> list[WebhookEvent]:
    r = DeliveryReport("twsms", status, code or status.value.upper(), recipient=f"+8869123456{n:02d}",
                       message_id=pmid, **values)  # fmt: skip
    return events_of(WebhookResult("tw", reports=(r,)))


def submitted(store: Store, ids: list[int], provider: str = "tw", prefix: str = "m") -> None:
    """Take ``ids`` through claim → sending → submitted (provider ids ``m<id>``)."""
    claimed = {int(r["id"]) for r in store.claim("w", 1000)}
    assert set(ids) <= claimed
    store.mark_sending(ids, provider)
    store.record([Outcome(i, "submitted", provider=provider, provider_message_id=f"{prefix}{i}") for i in ids])


def status_of(store: Store, message_id: int) -> str:
    row = store.get(message_id)
    assert row is not None
    return str(row["status"])


# -- schema and migrations ---------------------------------------------------------------------


def test_migrate_from_empty(make_store: StoreFactory) -> None:
    store = make_store(migrate=False)
    assert store.version() == 0
    assert store.migrate() == list(range(1, schema.LATEST + 1))
    assert store.version() == schema.LATEST
    assert store.migrate() == []  # idempotent
    assert store.enqueue([msg()])


def test_migrate_in_place_from_an_older_version(make_store: StoreFactory) -> None:
    old = make_store(migrate=False)
    with old.tx() as conn:
        assert schema.migrate(conn, target=1) == [1]
        # v1 as it shipped: the batch index led with the provider
        conn.execute(text("DROP INDEX ix_messages_batch_recipient"))
        conn.execute(text("CREATE INDEX ix_messages_batch ON messages (provider, batch_id, recipient)"))
        for name, columns in (("provider_ids", "provider, provider_message_id"), ("record", "record_no, recipient")):
            conn.execute(text(f"DROP INDEX ix_messages_{name}"))  # and indexed every row
            conn.execute(text(f"CREATE INDEX ix_messages_{name} ON messages ({columns})"))
        conn.execute(text("DROP INDEX ix_messages_submitted"))
        if conn.dialect.name == "postgresql":  # and events referred to messages
            conn.execute(text("ALTER TABLE events ADD FOREIGN KEY (message_id) REFERENCES messages (id)"))
    assert old.version() == 1
    ids = old.enqueue([msg(1, metadata={"order": "A-1"}), msg(2)])
    token = old.create_api_key("before the upgrade")

    store = make_store(migrate=False)  # a newer gateway starting on the old database
    assert store.migrate() == list(range(2, schema.LATEST + 1))
    assert store.version() == schema.LATEST
    row = store.get(ids[0])
    assert row is not None and row["metadata"] == {"order": "A-1"} and row["status"] == "queued"
    assert store.verify_api_key(token) is not None
    assert [r["id"] for r in store.claim("w", 10)] == ids
    assert store.take_tokens("tw", 1, 10.0) == 0.0  # v2: rate_limits
    assert store.setting("webhook_secret", lambda: "abc") == "abc"  # v3: kv
    with store.read() as conn:  # v4: the batch index without the provider in front
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(conn).get_indexes("messages")}
        foreign_keys = inspect(conn).get_foreign_keys("events")
    assert indexes["ix_messages_batch_recipient"] == ["batch_id", "recipient"] and "ix_messages_batch" not in indexes
    assert store.dialect == "sqlite" or foreign_keys == []  # v5: no per-row check on PostgreSQL
    # v6: the provider's keys indexed only where a row has them; the poll's own index
    assert indexes["ix_messages_submitted"] == ["provider", "updated_at"]
    for name in ("provider_ids", "batch_recipient", "record"):
        assert "IS NOT NULL" in index_sql(store, f"ix_messages_{name}").upper(), name


def index_sql(store: Store, name: str) -> str:
    query = (
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = :n"
        if store.dialect == "postgresql"
        else "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :n"
    )
    with store.read() as conn:
        return str(conn.execute(text(query), {"n": name}).scalar())


def test_rows_without_provider_keys_stay_out_of_their_indexes(store: Store) -> None:
    """A queued row has no provider id, batch or record number: the indexes on those
    skip it, and the lookups by them still go through the indexes."""
    ids = store.enqueue([msg(1), msg(2)])
    submitted(store, ids[:1])
    lookups = {
        "ix_messages_provider_ids": "SELECT id FROM messages WHERE provider = 'tw' AND provider_message_id IN ('m1')",
        "ix_messages_batch_recipient": "SELECT id FROM messages WHERE batch_id IN ('b') AND recipient IN ('r')",
        "ix_messages_record": "SELECT id FROM messages WHERE record_no IN ('1') AND recipient IN ('r')",
    }
    for name, query in lookups.items():
        assert "NOT NULL" in index_sql(store, name).upper()
        with store.read() as conn:
            if store.dialect == "postgresql":
                conn.execute(text("SET enable_seqscan = off"))
                plan = " ".join(str(r[0]) for r in conn.execute(text("EXPLAIN " + query)))
            else:
                plan = " ".join(str(r[-1]) for r in conn.execute(text("EXPLAIN QUERY PLAN " + query)))
        assert name in plan, plan
    if store.dialect == "sqlite":  # the index's own count: only the submitted row is in it
        with store.read() as conn:
            counted = conn.execute(
                text("SELECT count(*) FROM messages INDEXED BY ix_messages_provider_ids WHERE provider_message_id > ''")
            ).scalar()
        assert counted == 1


def test_repr_hides_the_password(tmp_path: Any) -> None:
    store = Store("postgresql://gateway:hunter2-secret@db.example/outbox")
    try:
        assert "hunter2-secret" not in repr(store)
        assert "db.example" in repr(store)
    finally:
        store.close()


# -- submissions ---------------------------------------------------------------------------------


def test_enqueue_and_get(store: Store) -> None:
    later = time.time() + 3600
    ids = store.enqueue(
        [
            msg(1, metadata={"k": "v"}, options={"flash": True}, callback_url="https://app/cb", validity=600),
            msg(2, schedule_at=later, provider="tw", at_least_once=True),
            msg(3, schedule_at=time.time() - 5),  # a past schedule is sent now
        ]
    )
    assert len(ids) == 3 and ids == sorted(ids)
    first, second, third = (store.get(i) for i in ids)
    assert first is not None and second is not None and third is not None
    assert first["status"] == "queued" and first["recipient"] == "+886912345601"
    assert first["metadata"] == {"k": "v"} and first["options"] == {"flash": True}
    assert first["callback_url"] == "https://app/cb" and first["validity"] == 600
    assert first["tried"] == [] and first["attempts"] == 0
    assert second["status"] == "scheduled" and second["schedule_at"] == pytest.approx(later)
    assert second["requested_provider"] == "tw" and second["at_least_once"] is True
    assert third["status"] == "queued"
    assert [e["status"] for e in first["events"]] == ["queued"]
    assert [e["status"] for e in second["events"]] == ["scheduled"]
    assert first["submission"] == second["submission"]
    assert store.get(10_000) is None
    assert store.enqueue([]) == []


def test_enqueue_many_is_one_transaction_with_ids_per_submission(store: Store) -> None:
    key_id = int(store.verify_api_key(store.create_api_key("t")) or 0)
    assert store.idempotency_begin(key_id, "k1", "digest")[0] == "new"
    first, second, third = store.enqueue_many(
        [
            Submission([msg(1), msg(2)]),
            Submission([msg(3)], (key_id, "k1"), lambda ids: {"ids": ids}),
            Submission([msg(4, schedule_at=time.time() + 3600), msg(5), msg(6)]),
        ]
    )
    assert len(first) == 2 and len(second) == 1 and len(third) == 3
    assert first + second + third == sorted(first + second + third)
    rows = [store.get(i) for i in first + second + third]
    assert [r["recipient"][-2:] for r in rows if r] == ["01", "02", "03", "04", "05", "06"]
    assert [r["status"] for r in rows if r] == ["queued", "queued", "queued", "scheduled", "queued", "queued"]
    assert len({r["submission"] for r in rows if r}) == 3
    assert store.idempotency_begin(key_id, "k1", "digest") == ("replay", (202, {"ids": second}))
    assert store.enqueue_many([Submission([])]) == [[]]


def test_search_filters_and_cursor(store: Store) -> None:
    before = time.time() - 1
    a = store.enqueue([msg(1, metadata={"campaign": "spring", "shop": "1"}), msg(2)])
    b = store.enqueue([msg(1, metadata={"campaign": "autumn"}), msg(3, metadata={"campaign": "spring"})])
    every = a + b
    assert [r["id"] for r in store.search()] == every[::-1]  # newest first
    assert [r["id"] for r in store.search(recipient="+886912345601")] == [b[0], a[0]]
    assert [r["id"] for r in store.search(metadata={"campaign": "spring"})] == [b[1], a[0]]
    assert [r["id"] for r in store.search(metadata={"campaign": "spring", "shop": "1"})] == [a[0]]
    assert store.search(metadata={"campaign": "winter"}) == []
    assert len(store.search(since=before)) == 4
    assert store.search(until=before) == []
    store.claim("w", 1)  # claimed shows as queued
    assert len(store.search(status="queued")) == 4
    store.cancel(b[1])
    assert [r["id"] for r in store.search(status="canceled")] == [b[1]]

    pages, cursor = [], None
    while True:
        page = store.search(limit=3, after=cursor)
        pages.append([r["id"] for r in page])
        if len(page) < 3:
            break
        cursor = page[-1]["id"]
    assert pages == [every[::-1][:3], every[::-1][3:]]


def test_cancel_only_while_queued_or_scheduled(store: Store) -> None:
    queued, scheduled, claimed = store.enqueue([msg(1), msg(2, schedule_at=time.time() + 600), msg(3)])
    with store.tx() as conn:  # claim only the third
        conn.execute(update(messages).where(messages.c.id == claimed).values(next_attempt_at=0))
    assert [r["id"] for r in store.claim("w", 1)] == [claimed]

    assert store.cancel(queued) == "queued"  # what it was: canceled by this call
    assert store.cancel(scheduled) == "scheduled"
    assert store.cancel(queued) == "canceled"  # already
    assert store.cancel(claimed) == "claimed"  # the request may be on its way: not canceled
    assert status_of(store, claimed) == "claimed"
    assert store.cancel(99_999) is None
    row = store.get(queued)
    assert row is not None and row["final_at"] is not None
    assert [e["status"] for e in row["events"]] == ["queued", "canceled"]
    assert store.claim("w", 10) == []  # canceled rows are never claimed
    assert store.release_scheduled(time.time() + 3600) == 0


def test_release_scheduled(store: Store) -> None:
    when = time.time() + 600
    (sid,) = store.enqueue([msg(1, schedule_at=when)])
    assert store.claim("w", 10) == []
    assert store.release_scheduled(when - 1) == 0
    assert store.release_scheduled(when + 1) == 1
    assert status_of(store, sid) == "queued"
    assert [r["id"] for r in store.claim("w", 10, now=when + 2)] == [sid]
    assert store.release_scheduled(when + 5) == 0


# -- the worker side ----------------------------------------------------------------------------


def test_claim_takes_ready_rows_once_in_order(store: Store) -> None:
    ids = store.enqueue([msg(i) for i in range(5)])
    first = store.claim("w1", 3)
    assert [r["id"] for r in first] == ids[:3]
    assert all(r["status"] == "claimed" and r["claimed_by"] == "w1" and r["attempts"] == 1 for r in first)
    second = store.claim("w2", 10)
    assert [r["id"] for r in second] == ids[3:]
    assert store.claim("w3", 10) == []
    assert store.queue_depth() == 5  # claimed rows still wait to be sent


def test_claim_respects_next_attempt_at(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    store.claim("w", 1)
    store.mark_sending([mid], "tw")
    store.record([Outcome(mid, "queued", provider="tw", error="busy", next_attempt_at=time.time() + 60)])
    assert store.claim("w", 10) == []
    again = store.claim("w", 10, now=time.time() + 61)
    assert [r["id"] for r in again] == [mid] and again[0]["attempts"] == 2


def test_concurrent_claimers_get_disjoint_rows(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()  # two gateway processes on one database
    ids = first.enqueue([msg(i % 100) for i in range(300)])
    taken: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def work(name: str, store: Store) -> None:
        try:
            barrier.wait()
            while rows := store.claim(name, 7):
                taken[name] += [int(r["id"]) for r in rows]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=("a", first)),
        threading.Thread(target=work, args=("b", second)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert not set(taken["a"]) & set(taken["b"])
    assert sorted(taken["a"] + taken["b"]) == ids
    with first.read() as conn:
        owners = dict(conn.execute(select(messages.c.id, messages.c.claimed_by)).all())
    assert all(owners[i] == "a" for i in taken["a"]) and all(owners[i] == "b" for i in taken["b"])


def test_mark_sending_and_record_submitted(store: Store) -> None:
    ids = store.enqueue([msg(1), msg(2)])
    store.claim("w", 10)
    store.mark_sending(ids, "tw", record_no="R1")
    assert status_of(store, ids[0]) == "sending"
    store.record(
        [
            Outcome(ids[0], "submitted", provider="tw", provider_message_id="P1", batch_id="B1",
                    provider_status="00000", cost=Decimal("1")),
            Outcome(ids[1], "submitted", provider="tw", provider_message_id="P2", batch_id="B1", cost=None),
        ]
    )  # fmt: skip
    row = store.get(ids[0])
    assert row is not None
    assert (row["status"], row["provider"], row["provider_message_id"], row["batch_id"]) == (
        "submitted",
        "tw",
        "P1",
        "B1",
    )
    assert row["record_no"] == "R1" and row["provider_status"] == "00000"
    assert Decimal(row["cost"]) == Decimal("1") and row["final_at"] is None
    assert [e["status"] for e in row["events"]][-1] == "submitted"
    assert row["events"][-1]["provider"] == "tw"
    other = store.get(ids[1])
    assert other is not None and other["cost"] is None and other["provider_message_id"] == "P2"


def test_mark_sending_only_rows_this_worker_still_holds(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    store.claim("slow", 1)
    age(store, [mid], 120)  # a claim that waited too long ...
    assert store.recover(stale_after=60) == (1, 0)  # ... went back to the queue
    assert [r["id"] for r in store.claim("fast", 1)] == [mid]
    assert store.mark_sending([mid], "tw", worker="slow") == []  # the slow worker must not send it
    assert store.mark_sending([mid], "tw", worker="fast") == [mid]
    assert status_of(store, mid) == "sending"


def test_record_retry_failover_and_failure(store: Store) -> None:
    retry, refused, failed = store.enqueue([msg(1), msg(2), msg(3)])
    store.claim("w", 10)
    store.mark_sending([retry, refused, failed], "tw")
    later = time.time() + 30
    store.record(
        [
            Outcome(retry, "queued", provider="tw", error="busy", next_attempt_at=later),
            Outcome(refused, "queued", provider="tw", provider_status="00040", error="no credit", refused_by="tw"),
            Outcome(failed, "failed", provider="tw", error="no eligible provider"),
        ]
    )
    r = store.get(retry)
    assert r is not None and r["status"] == "queued" and r["next_attempt_at"] == pytest.approx(later)
    assert r["tried"] == [] and r["error"] == "busy"
    f = store.get(refused)
    assert f is not None and f["status"] == "queued" and f["tried"] == ["tw"]
    assert f["next_attempt_at"] <= time.time()  # failover is immediate
    assert [row["id"] for row in store.claim("w", 10)] == [refused]
    store.mark_sending([refused], "sg")
    store.record([Outcome(refused, "queued", provider="sg", error="refused", refused_by="sg")])
    again = store.get(refused)
    assert again is not None and again["tried"] == ["tw", "sg"]
    x = store.get(failed)
    assert x is not None and x["status"] == "failed" and x["final_at"] is not None
    assert x["error"] == "no eligible provider"


def test_record_keeps_a_status_a_callback_already_set(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    store.claim("w", 1)
    store.mark_sending([mid], "e8d", record_no="777")
    # EVERY8D echoes our MR: the report finds the row before record() ran
    early = DeliveryReport("every8d", Status.DELIVERED, "100", recipient="+886912345600", record_no="777")
    assert store.ingest("e8d", events_of(WebhookResult("e8d", reports=(early,)))) == 1
    assert status_of(store, mid) == "delivered"
    store.record([Outcome(mid, "submitted", provider="e8d", provider_message_id="B-9", cost=Decimal(1))])
    row = store.get(mid)
    assert row is not None and row["status"] == "delivered" and row["provider_message_id"] == "B-9"
    store.record([Outcome(mid, "unknown", provider="e8d", error="HTTP 504")])  # a late ambiguous answer
    row = store.get(mid)
    assert row is not None and row["status"] == "delivered" and row["error"] is None


def test_record_waits_for_a_report_committing_meanwhile(make_store: StoreFactory) -> None:
    """The CI failure of 2026-11-22: a callback committed between record()'s read and its
    update, and "submitted" overwrote "delivered" (PostgreSQL; SQLite serializes writers)."""
    store = make_store()
    (mid,) = store.enqueue([msg()])
    store.claim("w", 1)
    store.mark_sending([mid], "e8d", record_no="778")
    early = DeliveryReport("every8d", Status.DELIVERED, "100", recipient="+886912345600", record_no="778")
    ingesting = threading.Event()
    release = threading.Event()
    ingest = store._apply_reports

    def slow_apply(*args: Any, **kw: Any) -> Any:
        result = ingest(*args, **kw)
        ingesting.set()  # the report is written, not committed yet
        release.wait(10)
        return result

    store._apply_reports = slow_apply  # type: ignore[method-assign]
    writer = threading.Thread(target=store.ingest, args=("e8d", events_of(WebhookResult("e8d", reports=(early,)))))
    writer.start()
    assert ingesting.wait(10)
    recorder = make_store(migrate=False)
    recording = threading.Thread(
        target=recorder.record, args=([Outcome(mid, "submitted", provider="e8d", provider_message_id="B-10")],)
    )
    recording.start()
    time.sleep(0.3)  # record() is now blocked on the report's transaction
    release.set()
    writer.join(10)
    recording.join(10)
    row = store.get(mid)
    assert row is not None and row["status"] == "delivered" and row["provider_message_id"] == "B-10"


def test_one_ingest_call_applies_many_reports(store: Store) -> None:
    ids = store.enqueue([msg(n) for n in range(40)])
    submitted(store, ids)
    batch = []
    for n, mid in enumerate(ids):
        batch += report(Status.SUBMITTED, f"m{mid}", n, code="00001")
        batch += report(Status.DELIVERED if n % 2 else Status.UNDELIVERABLE, f"m{mid}", n)
    batch += report(Status.DELIVERED, "no-such-message", 99)  # kept, unapplied
    assert store.ingest("tw", batch + batch) == 81
    statuses = [status_of(store, mid) for mid in ids]
    assert statuses == ["undeliverable" if n % 2 == 0 else "delivered" for n in range(40)]
    with store.read() as conn:
        unapplied = conn.execute(select(inbox.c.event_id).where(~inbox.c.applied)).all()
    assert len(unapplied) == 1


def test_recover(store: Store) -> None:
    claimed, sending, again, fresh = store.enqueue([msg(1), msg(2), msg(3, at_least_once=True), msg(4)])
    store.claim("dead", 3)
    store.mark_sending([sending, again], "tw")
    age(store, [claimed, sending, again], 600)  # the dead worker took them long ago
    store.claim("alive", 1)  # a live claim is left alone
    assert store.recover(stale_after=60) == (1, 2)
    assert status_of(store, claimed) == "queued"
    assert status_of(store, sending) == "unknown"
    assert status_of(store, again) == "queued"  # the caller asked for at-least-once
    assert status_of(store, fresh) == "claimed"
    row = store.get(sending)
    assert row is not None and "in flight" in row["error"]
    assert [e["status"] for e in row["events"]][-1] == "unknown"
    assert store.recover(stale_after=60) == (0, 0)


def test_due_for_polling_and_touch(store: Store) -> None:
    ids = store.enqueue([msg(1), msg(2)])
    submitted(store, ids)
    assert store.due_for_polling(["sg"], time.time() + 1) == []
    due = store.due_for_polling(["tw"], time.time() + 1)
    assert [r["id"] for r in due] == ids
    store.touch([ids[0]])
    assert [r["id"] for r in store.due_for_polling(["tw"], time.time() - 0.5)] == []


def test_refused_callbacks_keep_the_latest_until_cleared(store: Store) -> None:
    assert store.refused_callbacks() == {}
    store.note_refused_callbacks("tw", 100.5)
    store.note_refused_callbacks("tw", 90.0)  # an older refusal does not move it back
    store.note_refused_callbacks("sg", 7.25)
    assert store.refused_callbacks() == {"tw": 100.5, "sg": 7.25}
    store.note_refused_callbacks("tw", 200.0)
    store.clear_refused_callbacks("tw", 100.5)  # a newer refusal came meanwhile: kept
    assert store.refused_callbacks()["tw"] == 200.0
    store.clear_refused_callbacks("tw", 200.0)
    assert store.refused_callbacks() == {"sg": 7.25}


# -- callbacks -------------------------------------------------------------------------------------


def test_ingest_the_same_event_twice_is_stored_once(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    submitted(store, [mid])
    events = report(Status.DELIVERED, f"m{mid}", code="DELIVRD")
    assert store.ingest("tw", events) == 1
    assert store.ingest("tw", events) == 0
    assert store.ingest("tw", events + events) == 0
    row = store.get(mid)
    assert row is not None and row["status"] == "delivered" and row["provider_status"] == "DELIVRD"
    assert row["final_at"] is not None
    assert [e["status"] for e in row["events"]].count("delivered") == 1
    with store.read() as conn:
        assert conn.execute(select(inbox.c.applied, inbox.c.message_id)).all() == [(True, mid)]


def test_final_states_never_regress(store: Store) -> None:
    mid, other = store.enqueue([msg(1), msg(2)])
    submitted(store, [mid, other])
    done = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert store.ingest("tw", report(Status.DELIVERED, f"m{mid}", 1, done_at=done)) == 1
    assert store.ingest("tw", report(Status.SUBMITTED, f"m{mid}", 1, code="00001")) == 1
    assert store.ingest("tw", report(Status.UNDELIVERABLE, f"m{mid}", 1, code="UNDELIV")) == 1
    assert store.ingest("tw", report(Status.UNKNOWN, f"m{mid}", 1, code="WHAT")) == 1
    row = store.get(mid)
    assert row is not None and row["status"] == "delivered"
    assert [e["status"] for e in row["events"]][-1] == "delivered"
    assert row["events"][-1]["detail"] == done.isoformat()
    # an older report never overrides a newer one that is not final either
    assert store.ingest("tw", report(Status.SUBMITTED, f"m{other}", 2, code="00001")) == 1
    assert status_of(store, other) == "submitted"


def test_a_report_can_settle_an_unknown_outcome(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    store.claim("w", 1)
    store.mark_sending([mid], "e8d", record_no="4711")
    store.record([Outcome(mid, "unknown", provider="e8d", error="timeout")])
    late = DeliveryReport("every8d", Status.DELIVERED, "100", recipient="+886912345600", record_no="4711")
    store.ingest("e8d", events_of(WebhookResult("e8d", reports=(late,))))
    assert status_of(store, mid) == "delivered"


def test_a_report_before_the_send_is_recorded_is_applied_later(store: Store) -> None:
    (mid,) = store.enqueue([msg()])
    store.claim("w", 1)
    store.mark_sending([mid], "tw")
    assert store.ingest("tw", report(Status.DELIVERED, "P-1")) == 1  # the provider is faster than us
    assert status_of(store, mid) == "sending"
    with store.read() as conn:
        assert conn.execute(select(inbox.c.applied)).scalar() is False
    assert store.apply_pending("tw") == 0  # still nothing to match
    store.record([Outcome(mid, "submitted", provider="tw", provider_message_id="P-1")])
    assert status_of(store, mid) == "submitted"
    assert store.apply_pending("sg") == 0
    assert store.apply_pending("tw", max_age=-1) == 0  # too old to try again
    assert store.apply_pending("tw") == 1
    assert status_of(store, mid) == "delivered"
    assert store.apply_pending("tw") == 0


def test_replies_linked_to_messages(store: Store) -> None:
    (mid,) = store.enqueue([msg(7)])
    submitted(store, [mid])
    linked = InboundMessage("twsms", sender="+886912345607", text="好的", reply_to=f"m{mid}", provider_id="1")
    loose = InboundMessage("twsms", sender="+886900000000", text="STOP", provider_id="2")
    events = events_of(WebhookResult("tw", replies=(linked, loose)))
    assert store.ingest("tw", events, notify_url="https://app/replies") == 2
    assert store.ingest("tw", events, notify_url="https://app/replies") == 0
    rows = store.replies_since()
    assert [(r["sender"], r["text"], r["message_id"]) for r in rows] == [
        ("+886900000000", "STOP", None),
        ("+886912345607", "好的", mid),
    ]
    assert [r["id"] for r in store.replies_since(after=rows[0]["id"])] == [rows[1]["id"]]
    assert [r["id"] for r in store.replies_since(limit=1)] == [rows[0]["id"]]
    due = store.due_notifications()
    assert [(n["payload"]["type"], n["payload"]["text"]) for n in due] == [
        ("reply", "好的"),
        ("reply", "STOP"),
    ]


# -- notifications ---------------------------------------------------------------------------------


def test_notifications_in_order_per_message_and_retried(store: Store) -> None:
    mid, quiet = store.enqueue([msg(1, callback_url="https://app/cb"), msg(2)])
    submitted(store, [mid, quiet])
    store.ingest("tw", report(Status.DELIVERED, f"m{mid}", 1))
    first = store.due_notifications()
    assert [(n["message_id"], n["payload"]["status"]) for n in first] == [(mid, "submitted")]
    assert first[0]["url"] == "https://app/cb" and first[0]["payload"]["recipient"] == "+886912345601"

    store.notification_result(first[0]["id"], ok=False, error="HTTP 500", retry_in=30)
    assert store.due_notifications() == []  # the later one waits behind the failed one
    retry = store.due_notifications(now=time.time() + 31)
    assert [n["id"] for n in retry] == [first[0]["id"]] and retry[0]["attempts"] == 1
    assert retry[0]["last_error"] == "HTTP 500"

    store.notification_result(first[0]["id"], ok=True)
    second = store.due_notifications(now=time.time() + 31)
    assert [(n["message_id"], n["payload"]["status"]) for n in second] == [(mid, "delivered")]
    store.notification_result(second[0]["id"], ok=True)
    assert store.due_notifications(now=time.time() + 3600) == []


def test_due_notifications_are_leased_to_one_node(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    first.notify("https://app/cb", {"type": "test"}, message_id=None)
    taken = first.due_notifications()
    assert len(taken) == 1
    assert second.due_notifications() == []  # another node does not POST it too
    assert [n["id"] for n in second.due_notifications(now=time.time() + 3600)] == [taken[0]["id"]]


def test_cancel_notifies(store: Store) -> None:
    (mid,) = store.enqueue([msg(callback_url="https://app/cb")])
    store.cancel(mid)
    assert [n["payload"]["status"] for n in store.due_notifications()] == ["canceled"]


# -- idempotency, keys, limits, settings ---------------------------------------------------------


def test_idempotency_keys(store: Store) -> None:
    key_id = 1
    assert store.idempotency_begin(key_id, "k1", "hash-a") == ("new", None)
    assert store.idempotency_begin(key_id, "k1", "hash-a") == ("in_flight", None)
    assert store.idempotency_begin(key_id, "k1", "hash-b") == ("mismatch", None)
    ids = store.enqueue([msg()], idempotency_key=(key_id, "k1"), response=lambda i: {"ids": i})
    assert store.idempotency_begin(key_id, "k1", "hash-a") == ("replay", (202, {"ids": ids}))
    assert store.idempotency_begin(key_id, "k1", "hash-b") == ("mismatch", None)
    assert store.idempotency_begin(2, "k1", "hash-b") == ("new", None)  # keys are per API key
    store.idempotency_abort(2, "k1")
    assert store.idempotency_begin(2, "k1", "hash-c") == ("new", None)
    store.idempotency_abort(key_id, "k1")  # an answered key is never dropped
    assert store.idempotency_begin(key_id, "k1", "hash-a")[0] == "replay"
    assert store.idempotency_begin(key_id, "k1", "hash-a", abandoned_after=-1)[0] == "replay"
    # a request whose process died before answering does not hold its key forever
    assert store.idempotency_begin(3, "crashed", "h") == ("new", None)
    assert store.idempotency_begin(3, "crashed", "h") == ("in_flight", None)
    assert store.idempotency_begin(3, "crashed", "h2", abandoned_after=-1) == ("new", None)


def test_idempotency_begin_races(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[Any] = []

    def begin(store: Store) -> None:
        barrier.wait()
        try:
            results.append(store.idempotency_begin(1, "same", "h")[0])
        except Exception as exc:  # pragma: no cover - the assertion shows it
            results.append(exc)

    run_threads(begin, stores)
    assert sorted(map(str, results)) == ["in_flight"] * 3 + ["new"]


def test_api_keys_are_stored_hashed(store: Store) -> None:
    token = store.create_api_key("shop")
    assert token.startswith("fsk_") and len(token) > 30
    with store.read() as conn:
        row = conn.execute(select(api_keys)).mappings().one()
    assert token not in {str(v) for v in row.values()}
    assert row["prefix"] == token[:8] and len(row["hash"]) == 64
    key_id = store.verify_api_key(token)
    assert key_id == row["id"]
    assert store.verify_api_key(token + "x") is None
    assert store.verify_api_key("") is None
    with store.tx() as conn:
        conn.execute(update(api_keys).values(revoked=True))
    assert store.verify_api_key(token) is None


def test_take_tokens_shared_bucket(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    assert first.take_tokens("tw", 10, rate=10.0) == 0.0  # a full bucket
    wait = second.take_tokens("tw", 5, rate=10.0)  # the other node sees it empty
    assert 0.3 < wait <= 0.5
    assert first.take_tokens("sg", 1, rate=10.0) == 0.0  # one bucket per provider


def test_take_tokens_first_use_races(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    waits: list[Any] = []

    def take(store: Store) -> None:
        barrier.wait()
        try:
            waits.append(store.take_tokens("new-provider", 3, rate=6.0))
        except Exception as exc:  # pragma: no cover
            waits.append(exc)

    run_threads(take, stores)
    assert all(isinstance(w, float) for w in waits), waits
    assert sum(1 for w in waits if w == 0.0) == 2  # 6 tokens: two takes of 3 pass at once


def test_counts_and_queue_depth(store: Store) -> None:
    ids = store.enqueue([msg(1), msg(2), msg(3), msg(4, schedule_at=time.time() + 60)])
    store.claim("w", 1)
    assert store.counts() == {("", "queued"): 3, ("", "scheduled"): 1}  # claimed counts as queued
    assert store.queue_depth() == 4
    store.mark_sending([ids[0]], "tw")
    store.record([Outcome(ids[0], "submitted", provider="tw", provider_message_id="x")])
    store.cancel(ids[1])
    assert store.counts() == {
        ("tw", "submitted"): 1,
        ("", "canceled"): 1,
        ("", "queued"): 1,
        ("", "scheduled"): 1,
    }
    assert store.queue_depth() == 2


def test_setting_is_created_once(make_store: StoreFactory) -> None:
    first, second = make_store(), make_store()
    assert first.setting("webhook_secret", lambda: "one") == "one"
    assert second.setting("webhook_secret", lambda: "two") == "one"


def test_setting_races(make_store: StoreFactory) -> None:
    stores = [make_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    values: list[Any] = []

    def read(store: Store) -> None:
        barrier.wait()
        try:
            values.append(store.setting("secret", lambda: f"v{id(store)}"))
        except Exception as exc:  # pragma: no cover
            values.append(exc)

    run_threads(read, stores)
    assert len(set(map(str, values))) == 1 and isinstance(values[0], str), values


def test_store_unavailable(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")  # cannot be opened
    try:
        with pytest.raises(StoreUnavailable):
            store.enqueue([msg()])
        with pytest.raises(StoreUnavailable):
            store.get(1)
    finally:
        store.close()


def test_sqlite_full_disk_accepts_nothing(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'small.db'}")
    store.migrate()
    event.listen(store.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA max_page_count=40"))
    store.engine.dispose()  # pooled connections: the next ones see the full disk
    try:
        with pytest.raises(StoreUnavailable, match="full"):
            for _ in range(100):
                store.enqueue([msg(i, text="x" * 500) for i in range(50)])
        before = len(store.search(limit=10_000))
        with pytest.raises(StoreUnavailable):
            store.enqueue([msg(i, text="y" * 500) for i in range(50)])
        assert len(store.search(limit=10_000)) == before  # all or nothing
    finally:
        store.close()


# -- PostgreSQL specifics -------------------------------------------------------------------------


def test_claim_uses_the_partial_index(pg_store: Store) -> None:
    store = pg_store
    ids = store.enqueue([msg(i % 100) for i in range(500)])
    store.claim("w", 200)
    store.mark_sending(ids[:150], "tw")
    store.record([Outcome(i, "submitted", provider="tw", provider_message_id=str(i)) for i in ids[:150]])
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE MESSAGES") and "SKIP LOCKED" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    store.claim("w", 10)
    assert seen, "claim did not run an UPDATE … SKIP LOCKED"
    statement, params = seen[0]
    with store.tx() as conn:
        conn.execute(text("ANALYZE messages"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "ix_messages_ready" in plan, plan
    assert "FOR UPDATE SKIP LOCKED" in statement.upper()


def test_matching_reports_reads_by_index_not_by_provider(pg_store: Store) -> None:
    """One index lookup per key: with the keys OR-ed, PostgreSQL scanned every row of the
    provider for each callback batch (40 ms at 100,000 rows, growing with the table)."""
    store = pg_store
    ids = store.enqueue([msg(i % 100) for i in range(3000)])
    store.claim("w", 3000)
    for k in range(0, 3000, 1000):
        chunk = ids[k : k + 1000]
        store.mark_sending(chunk, "e8d", str(chunk[0]))
        store.record(
            [Outcome(i, "submitted", provider="e8d", provider_message_id=f"B{k}", batch_id=f"B{k}") for i in chunk]
        )
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "FOR UPDATE" in statement and "UNION" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    early = DeliveryReport(
        "every8d", Status.DELIVERED, "100", recipient="+886912345601", message_id="B1000", batch_id="B1000",
        record_no=str(ids[1000]),
    )  # fmt: skip
    store.ingest("e8d", events_of(WebhookResult("e8d", reports=(early,))))
    assert seen, "the report lookup did not run as a UNION … FOR UPDATE"
    statement, params = seen[0]
    with store.tx() as conn:
        conn.execute(text("ANALYZE messages"))
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "Seq Scan on messages" not in plan, plan
    assert "ix_messages_batch" in plan and "messages_pkey" in plan, plan


def test_statistics_are_refreshed_while_the_outbox_grows(pg_store: Store) -> None:
    """Autovacuum wakes once a minute; a campaign into a young table must not be planned
    with the statistics of an empty one."""
    store = pg_store
    assert store.refresh_statistics() == []  # nothing changed yet
    store.enqueue([msg(i % 100) for i in range(1500)])
    assert "messages" in refreshed_once_counted(store)
    with store.read() as conn:
        estimate = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'messages'::regclass")).scalar()
    assert estimate is not None and estimate >= 1000
    assert "messages" not in store.refresh_statistics()  # analyzed: nothing to do until it doubles
    store.enqueue([msg(i % 100) for i in range(2000)])
    with store.tx() as conn:  # another worker is analyzing: this one leaves it to them
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.analyze'))"))
        assert store.refresh_statistics() == []
    assert "messages" in refreshed_once_counted(store)  # 3,500 rows: more than twice what it knew


def refreshed_once_counted(store: Store, within: float = 20.0) -> list[str]:
    """``refresh_statistics()`` once the server has published the new row counts: an idle
    backend sends its counters within a second, or ten when they were locked."""
    deadline = time.monotonic() + within
    while not (refreshed := store.refresh_statistics()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return refreshed


def test_lookups_by_id_use_the_primary_key(pg_store: Store) -> None:
    """Rows are marked through the primary key, with the ids as one array parameter."""
    store = pg_store
    ids = store.enqueue([msg(i % 100) for i in range(2000)])
    store.claim("w", 2000)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "UPDATE messages SET status = 'sending'" in statement:
            seen.append((statement, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    store.mark_sending(ids[:50], "tw", worker="w")
    assert seen
    statement, params = seen[0]
    with store.tx() as conn:
        conn.execute(text("ANALYZE messages"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # 2,000 rows: a scan is cheaper here
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params))
    assert "messages_pkey" in plan and "Seq Scan" not in plan, plan


def test_a_pooled_connection_idle_too_long_is_checked_first(pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pooled connections are pinged only after sitting idle (a ping per checkout was a
    round trip of every commit); a dead one is then replaced before anyone uses it. A
    connection that dies while fresh fails one transaction, and the pool is renewed."""
    from formosms.gateway import db

    def backend() -> int:
        with pg_store.read() as conn:
            return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def kill(pid: int) -> None:
        admin = create_engine(pg_store.engine.url, poolclass=NullPool)
        with admin.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})  # and wait for it
        admin.dispose()

    first = backend()
    assert backend() == first  # the pool hands the same connection back
    kill(first)
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.0)
    assert backend() not in (first, 0)  # pinged, found dead, replaced: no error

    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 3600.0)
    kill(backend())
    with pytest.raises(StoreUnavailable):
        backend()
    assert backend() > 0  # the next transaction gets a new connection
    assert pg_store.enqueue([msg(1)])


def test_postgres_url_options_reach_the_server(pg_store: Store) -> None:
    with pg_store.read() as conn:
        schema_name = conn.execute(text("SELECT current_schema()")).scalar()
    assert str(schema_name).startswith("t_")


# -- helpers -------------------------------------------------------------------------------------


def age(store: Store, ids: list[int], seconds: float) -> None:
    """Pretend the rows were claimed (or marked sending) ``seconds`` ago."""
    with store.tx() as conn:
        conn.execute(update(messages).where(messages.c.id.in_(ids)).values(claimed_at=time.time() - seconds))


def run_threads(target: Callable[[Store], None], stores: list[Store]) -> None:
    threads = [threading.Thread(target=target, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_notification_rows_survive_a_failed_transaction(store: Store) -> None:
    (mid,) = store.enqueue([msg(callback_url="https://app/cb")])
    with pytest.raises(RuntimeError), store.tx() as conn:
        store._notify(conn, [mid], time.time())
        raise RuntimeError("rolled back")
    with store.read() as conn:
        assert conn.execute(select(notifications)).all() == []


def test_idle_periodic_jobs_do_not_take_the_writer(make_store: StoreFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Release, late reports and notifications run several times a second: with nothing to
    do they only read, and leave the single writer to the callbacks and submissions."""
    store = make_store()
    store.enqueue([msg(1, schedule_at=time.time() + 3600)])  # scheduled, not yet due
    writes: list[str] = []
    tx = store.tx

    def counting(**kwargs: Any) -> Any:
        writes.append("tx")
        return tx(**kwargs)

    monkeypatch.setattr(store, "tx", counting)
    assert store.release_scheduled() == 0
    assert store.apply_pending("tw") == 0
    assert store.due_notifications() == []
    assert writes == []
    assert store.release_scheduled(now=time.time() + 7200) == 1 and writes == ["tx"]  # due: it writes
