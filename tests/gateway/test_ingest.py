"""The webhook batcher: one commit for many callbacks, and refusals remembered for the poller."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from formosms.gateway.ingest import IngestBatcher
from formosms.gateway.store import NewMessage, Store, StoreUnavailable, Submission
from formosms.model import DeliveryReport, Status, WebhookResult
from formosms.webhooks.events import events_of


def _result(n: int) -> WebhookResult:
    report = DeliveryReport("twsms", Status.DELIVERED, "DELIVRD", recipient=f"+8869123456{n:02d}", message_id=f"m{n}")
    return WebhookResult("tw", reports=(report,))


async def test_concurrent_callbacks_share_one_commit(sqlite_store: Store) -> None:
    commits: list[int] = []
    ingest = sqlite_store.ingest

    def counting(provider: str, events: Any, notify_url: str | None = None) -> int:
        commits.append(len(events))
        return ingest(provider, events, notify_url)

    sqlite_store.ingest = counting  # type: ignore[method-assign]
    batcher = IngestBatcher(sqlite_store)
    results = [_result(n) for n in range(20)]
    await asyncio.gather(*(batcher.handle(r, events_of(r)) for r in results))
    await batcher.close()
    assert sum(commits) == 20
    assert len(commits) < 20  # batched: fewer commits than callbacks


async def test_submissions_and_callbacks_share_one_transaction(sqlite_store: Store) -> None:
    """SQLite's single writer: a submission rides with the callbacks waiting, one commit."""
    calls: list[tuple[int, int]] = []
    write = sqlite_store.write_urgent

    def counting(submissions: Any, callbacks: Any, notify_url: str | None = None) -> list[list[int]]:
        calls.append((len(submissions), len(callbacks)))
        return write(submissions, callbacks, notify_url)

    sqlite_store.write_urgent = counting  # type: ignore[method-assign]
    batcher = IngestBatcher(sqlite_store)
    first = Submission([NewMessage("+886912345601", "a"), NewMessage("+886912345602", "a")])
    second = Submission([NewMessage("+886912345603", "b")])
    callback = _result(1)
    ids_a, stored, ids_b = await asyncio.gather(
        batcher.submit(first), batcher.handle(callback, events_of(callback)), batcher.submit(second)
    )
    await batcher.close()
    assert calls == [(2, 1)]  # one transaction for all three
    assert len(ids_a) == 2 and len(ids_b) == 1 and ids_b[0] == ids_a[1] + 1 and stored is None
    assert sqlite_store.ingest("tw", events_of(callback)) == 0  # the callback was stored with them
    assert [sqlite_store.get(i)["text"] for i in ids_a + ids_b] == ["a", "a", "b"]  # type: ignore[index]


async def test_a_refused_callback_is_noted_once_the_database_is_back(sqlite_store: Store) -> None:
    down = True
    ingest, note = sqlite_store.ingest, sqlite_store.note_refused_callbacks

    def flaky_ingest(provider: str, events: Any, notify_url: str | None = None) -> int:
        if down:
            raise StoreUnavailable("database is restarting")
        return ingest(provider, events, notify_url)

    def flaky_note(provider: str, at: float) -> None:
        if down:
            raise StoreUnavailable("database is restarting")
        note(provider, at)

    sqlite_store.ingest = flaky_ingest  # type: ignore[method-assign]
    sqlite_store.note_refused_callbacks = flaky_note  # type: ignore[method-assign]
    batcher = IngestBatcher(sqlite_store)
    before = time.time()
    result = _result(1)
    with pytest.raises(StoreUnavailable):  # the webhook answers 503: the provider retries
        await batcher.handle(result, events_of(result))
    await asyncio.sleep(0.1)
    assert sqlite_store.refused_callbacks() == {}  # could not be written yet
    down = False
    deadline = time.monotonic() + 5
    while not sqlite_store.refused_callbacks() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await batcher.close()
    refused = sqlite_store.refused_callbacks()
    assert list(refused) == ["tw"] and before <= refused["tw"] <= time.time()
