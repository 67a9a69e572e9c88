"""The worker's slower loops: scheduled releases, crash recovery, status polling,
late callbacks, and notifications to the user's app (signed, retried, in order)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from formosms.errors import FormosmsError
from formosms.gateway.config import Settings
from formosms.gateway.metrics import Metrics
from formosms.gateway.store import Store
from formosms.model import WebhookResult
from formosms.providers.base import MessageRef
from formosms.webhooks.events import events_of

if TYPE_CHECKING:
    from formosms.gateway.worker import Lane

log = logging.getLogger("formosms.gateway")
SIGNATURE_HEADER = "X-Formosms-Signature"
#: seconds after refused callbacks were noted during which their provider is polled
REFUSAL_WINDOW = 60.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 over "<t>." + body>`` (verify both, reject old t)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes, tolerance: float = 300.0) -> bool:
    """Check a notification's signature (for the user's receiving app)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


class Background:
    def __init__(self, settings: Settings, store: Store, lanes: Mapping[str, Lane], metrics: Metrics):
        self.settings = settings
        self.store = store
        self.lanes = lanes
        self.metrics = metrics
        self._session: aiohttp.ClientSession | None = None

    async def run(self, stop: asyncio.Event) -> None:
        loops: list[tuple[float, Callable[[], Awaitable[Any]]]] = [
            (0.25, self.release),
            (max(1.0, self.settings.stale_after / 2), self.recover),
            (0.5, self.apply_late_reports),
            (0.2, self.notify),
            (1.0, self.poll),
            (5.0, self.analyze),
        ]
        tasks = [asyncio.create_task(self._every(period, job, stop)) for period, job in loops]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._session is not None:
                await self._session.close()

    async def _every(self, period: float, job: Callable[[], Awaitable[Any]], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await job()
            except Exception as exc:  # a failing loop retries next period: the DB may be restarting
                log.warning("%s failed: %s", getattr(job, "__name__", "job"), type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)

    async def analyze(self) -> None:
        """Keep the planner's statistics current while tables grow fast (PostgreSQL)."""
        refreshed = await asyncio.to_thread(self.store.refresh_statistics)
        if refreshed:
            log.debug("analyzed %s", ", ".join(refreshed))

    async def release(self) -> None:
        await asyncio.to_thread(self.store.release_scheduled)

    async def recover(self) -> None:
        requeued, unknown = await asyncio.to_thread(self.store.recover, self.settings.stale_after)
        if requeued or unknown:
            log.warning("recovered %d claimed rows and %d in-flight rows (now unknown)", requeued, unknown)

    async def apply_late_reports(self) -> None:
        for name in self.lanes:
            await asyncio.to_thread(self.store.apply_pending, name)

    async def poll(self) -> None:
        """Status queries where callbacks cannot reach this gateway, or are overdue, or
        were refused while the database was down (the provider may have given up)."""
        from formosms.gateway.worker import poll_after

        now = time.time()
        refused = await asyncio.to_thread(self.store.refused_callbacks)
        for name, lane in self.lanes.items():
            period = poll_after(lane.candidate, self.settings)
            if period is None:
                continue
            noted = refused.get(name)
            if noted is not None:
                # For a while after the database came back, poll as if no callback could reach
                # us: a send recorded late (its record waited on the database too) may have had
                # its report refused before the row said "submitted".
                interval = lane.candidate.settings.poll_interval
                if now - noted < max(REFUSAL_WINDOW, 2 * interval):
                    period = min(period, interval)
                else:
                    await asyncio.to_thread(self.store.clear_refused_callbacks, name, noted)
            await self._poll(name, lane, now - period)

    async def _poll(self, name: str, lane: Lane, older_than: float) -> None:
        """Ask ``name`` for its ``submitted`` messages untouched since ``older_than``."""
        rows = await asyncio.to_thread(self.store.due_for_polling, [name], older_than)
        if not rows:
            return
        refs = [MessageRef(r["provider_message_id"], r["recipient"], r["batch_id"]) for r in rows]
        if lane.candidate.provider.max_recipients > 1:  # list providers answer per batch
            refs = list({ref.batch_id: ref for ref in refs}.values())
        try:
            reports = await lane.client.status(refs)
        except FormosmsError as exc:
            log.warning("status poll of %s failed: %s", name, exc)
            return
        result = WebhookResult(provider=lane.candidate.provider.name, reports=tuple(reports))
        await asyncio.to_thread(self.store.ingest, name, events_of(result), self.settings.notify_url)
        await asyncio.to_thread(self.store.touch, [int(r["id"]) for r in rows])

    async def notify(self) -> None:
        due = await asyncio.to_thread(self.store.due_notifications, 100)
        if not due:
            return
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        await asyncio.gather(*(self._deliver(n) for n in due))

    async def _deliver(self, notification: dict[str, Any]) -> None:
        assert self._session is not None
        body = json.dumps(notification["payload"], ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.settings.notify_secret:
            headers[SIGNATURE_HEADER] = sign(self.settings.notify_secret, int(time.time()), body)
        error = ""
        try:
            async with self._session.post(notification["url"], data=body, headers=headers) as reply:
                ok = 200 <= reply.status < 300
                error = "" if ok else f"HTTP {reply.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            ok, error = False, type(exc).__name__
        from formosms.gateway.worker import backoff

        retry = backoff(int(notification["attempts"]) + 1, base=1.0, cap=600.0)
        await asyncio.to_thread(self.store.notification_result, int(notification["id"]), ok, error, retry)
