"""Callbacks in, in batches: one transaction for many events, ack only after the commit.

Each webhook request waits on a future that resolves when the batch holding its events
is committed; a failed commit fails every waiting request (503: the provider retries).
A provider retries only so long (EVERY8D 10 times, SMSGo 3), so each refusal is also
noted in the database once it is writable again: for a while after that the poller asks
the provider for every waiting message (``Background.poll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from formosms.gateway.group import GroupCommit
from formosms.gateway.store import Store, Submission
from formosms.model import WebhookResult
from formosms.webhooks.events import WebhookEvent

MAX_BATCH = 500
_Write = Submission | tuple[str, list[WebhookEvent]]


def _weight(item: _Write) -> int:
    return len(item.items) if isinstance(item, Submission) else len(item[1])


log = logging.getLogger("formosms.gateway")


class IngestBatcher:
    """Callbacks in, committed in batches; on SQLite also the API's submissions (``submit``),
    so both share one turn of the single writer."""

    def __init__(self, store: Store, notify_url: str | None = None):
        self.store = store
        self.notify_url = notify_url
        self._group: GroupCommit[_Write, list[int] | None] = GroupCommit(
            self._commit, limit=MAX_BATCH, weight=_weight, on_error=self._refusal
        )
        self._refused: set[str] = set()
        self._noting: asyncio.Task[None] | None = None

    async def handle(self, result: WebhookResult, events: list[WebhookEvent]) -> None:
        """The webhook handler: returns once ``events`` are stored (raises if they were not)."""
        if events:
            await self._group((result.provider, events))

    async def submit(self, submission: Submission) -> list[int]:
        """Store a submission in the next commit, with the callbacks waiting; its ids."""
        ids = await self._group(submission)
        assert ids is not None
        return ids

    def _commit(self, batch: list[_Write]) -> list[list[int] | None]:
        submissions: list[Submission] = []
        by_provider: dict[str, list[WebhookEvent]] = defaultdict(list)
        for item in batch:
            if isinstance(item, Submission):
                submissions.append(item)
            else:
                by_provider[item[0]].extend(item[1])
        if not submissions:  # callbacks of two providers: a transaction each, as before
            for provider, events in by_provider.items():
                self.store.ingest(provider, events, self.notify_url)
            return [None] * len(batch)
        ids = iter(self.store.write_urgent(submissions, by_provider, self.notify_url))
        return [next(ids) if isinstance(item, Submission) else None for item in batch]

    def _refusal(self, batch: list[_Write], exc: Exception) -> None:
        self._refused.update(item[0] for item in batch if not isinstance(item, Submission))
        if self._noting is None or self._noting.done():
            self._noting = asyncio.get_running_loop().create_task(self._note_refusals())

    async def _note_refusals(self, period: float = 0.5) -> None:
        """Write the refusals down as soon as the database takes writes again."""
        while self._refused:
            provider = next(iter(self._refused))
            try:  # noted at the time the database is back: the poller's window starts then
                await asyncio.to_thread(self.store.note_refused_callbacks, provider, time.time())
            except Exception as exc:  # still down: try again shortly
                log.debug("noting refused callbacks failed: %s", type(exc).__name__)
                await asyncio.sleep(period)
                continue
            self._refused.discard(provider)

    async def close(self) -> None:
        if self._noting is not None:
            self._noting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._noting
            self._noting = None
        await self._group.close()
