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

from formosms.gateway.store import Store
from formosms.model import WebhookResult
from formosms.webhooks.events import WebhookEvent

MAX_BATCH = 500
log = logging.getLogger("formosms.gateway")


class IngestBatcher:
    def __init__(self, store: Store, notify_url: str | None = None):
        self.store = store
        self.notify_url = notify_url
        self._queue: asyncio.Queue[tuple[str, list[WebhookEvent], asyncio.Future[None]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._refused: set[str] = set()
        self._noting: asyncio.Task[None] | None = None

    async def handle(self, result: WebhookResult, events: list[WebhookEvent]) -> None:
        """The webhook handler: returns once ``events`` are stored (raises if they were not)."""
        if not events:
            return
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run())
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((result.provider, events, done))
        await done

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            size = len(batch[0][1])
            while not queue.empty() and size < MAX_BATCH:
                item = queue.get_nowait()
                batch.append(item)
                size += len(item[1])
            by_provider: dict[str, list[WebhookEvent]] = defaultdict(list)
            for provider, events, _ in batch:
                by_provider[provider].extend(events)
            try:
                for provider, events in by_provider.items():
                    await asyncio.to_thread(self.store.ingest, provider, events, self.notify_url)
            except Exception as exc:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                self._refused.update(by_provider)
                if self._noting is None or self._noting.done():
                    self._noting = asyncio.create_task(self._note_refusals())
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
            self._queue = None
