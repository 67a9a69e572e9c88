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
from formosms.gateway.store import Store
from formosms.model import WebhookResult
from formosms.webhooks.events import WebhookEvent

MAX_BATCH = 500
log = logging.getLogger("formosms.gateway")


class IngestBatcher:
    def __init__(self, store: Store, notify_url: str | None = None):
        self.store = store
        self.notify_url = notify_url
        self._group: GroupCommit[tuple[str, list[WebhookEvent]], None] = GroupCommit(
            self._commit, limit=MAX_BATCH, weight=lambda item: len(item[1]), on_error=self._refusal
        )
        self._refused: set[str] = set()
        self._noting: asyncio.Task[None] | None = None

    async def handle(self, result: WebhookResult, events: list[WebhookEvent]) -> None:
        """The webhook handler: returns once ``events`` are stored (raises if they were not)."""
        if events:
            await self._group((result.provider, events))

    def _commit(self, batch: list[tuple[str, list[WebhookEvent]]]) -> list[None]:
        by_provider: dict[str, list[WebhookEvent]] = defaultdict(list)
        for provider, events in batch:
            by_provider[provider].extend(events)
        for provider, events in by_provider.items():
            self.store.ingest(provider, events, self.notify_url)
        return [None] * len(batch)

    def _refusal(self, batch: list[tuple[str, list[WebhookEvent]]], exc: Exception) -> None:
        self._refused.update(provider for provider, _ in batch)
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
