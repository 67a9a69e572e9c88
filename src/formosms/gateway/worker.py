"""Claim → route → send → record, with rate limits, retries, failover and honest outcomes.

Per recipient, what a send attempt ends as:

- accepted: ``submitted`` (provider ids kept for callbacks and polling);
- refused definitively (``PermanentError``): fail over to the next eligible provider, or
  ``failed`` when none is left;
- refused transiently before the request was taken (connection refused, 5xx, busy):
  retried with exponential backoff and jitter, then failed over;
- no usable answer after the request left (timeout, malformed reply): ``unknown`` —
  never re-sent, unless the message asked for at-least-once delivery.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from formosms.client import AsyncClient
from formosms.errors import FormosmsError, OutcomeUnknown, PartialFailure, PermanentError
from formosms.gateway.config import Settings
from formosms.gateway.metrics import Metrics
from formosms.gateway.routing import Candidate, Router
from formosms.gateway.store import Outcome, Store, StoreUnavailable
from formosms.model import Attachment, Feature, MessageResult, SendResult

log = logging.getLogger("formosms.gateway")


def backoff(attempt: int, *, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> float:
    """Seconds before retry ``attempt`` (1-based): exponential, capped, with full jitter on half."""
    delay = min(cap, base * 2.0 ** min(max(0, attempt - 1), 64))  # no float overflow
    return float(delay * (0.5 + (rng or random).random() / 2))


@dataclass
class Lane:
    """One provider as the worker drives it: client, limits, breaker."""

    candidate: Candidate
    client: AsyncClient
    rate: float | None
    slots: asyncio.Semaphore

    @property
    def name(self) -> str:
        return self.candidate.settings.name


class Worker:
    def __init__(self, settings: Settings, store: Store, router: Router, metrics: Metrics | None = None):
        self.settings = settings
        self.store = store
        self.router = router
        self.metrics = metrics or Metrics()
        self.id = f"worker-{secrets.token_hex(4)}"
        self.random = random.Random()
        self.lanes: dict[str, Lane] = {}
        for name, candidate in router.providers.items():
            rate = candidate.settings.rate_limit or candidate.provider.rate_limit
            self.lanes[name] = Lane(
                candidate,
                AsyncClient(candidate.provider, concurrency=candidate.settings.concurrency),
                rate,
                asyncio.Semaphore(candidate.settings.concurrency),
            )
        self._tasks: set[asyncio.Task[None]] = set()
        self._costs: dict[tuple[str, str, str], Decimal | None] = {}

    async def close(self) -> None:
        for lane in self.lanes.values():
            await lane.client.close()

    # -- the loops --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.to_thread(self.store.recover, self.settings.stale_after)
        from formosms.gateway.background import Background

        background = Background(self.settings, self.store, self.lanes, self.metrics)
        loops = [
            asyncio.create_task(self._claim_loop(stop)),
            asyncio.create_task(background.run(stop)),
        ]
        try:
            await stop.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.close()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        idle = 0.02
        while not stop.is_set():
            free = self.settings.claim_batch - sum(1 for t in self._tasks if not t.done()) * 10
            if free <= 0:
                await asyncio.sleep(0.01)
                continue
            try:
                rows = await asyncio.to_thread(self.store.claim, self.id, min(free, self.settings.claim_batch))
            except Exception as exc:  # the database may be restarting: wait and claim again
                log.warning("claim failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            if not rows:
                await asyncio.sleep(idle)
                idle = min(0.2, idle * 2)
                continue
            idle = 0.02
            try:
                await self.dispatch(rows)
            except Exception:  # the loop must go on; these rows return to the queue on recover
                log.exception("dispatch failed")

    async def dispatch(self, rows: Sequence[dict[str, Any]]) -> None:
        """Route claimed rows and start one task per (provider, text, options) chunk."""
        groups: dict[tuple[str, str, str, int | None], list[dict[str, Any]]] = defaultdict(list)
        failed: list[Outcome] = []
        for row in rows:
            order = self.router.order(
                row["recipient"],
                row["text"],
                row["options"] or {},
                requested=row["requested_provider"],
                exclude=row["tried"] or [],
            )
            if not order:
                waiting = self.router.order(
                    row["recipient"],
                    row["text"],
                    row["options"] or {},
                    requested=row["requested_provider"],
                    exclude=row["tried"] or [],
                    include_open=True,
                )
                if waiting:  # only open circuits stand in the way: wait, do not fail
                    pause = min(self.router.providers[n].breaker.remaining() for n in waiting)
                    failed.append(
                        Outcome(
                            row["id"],
                            "queued",
                            error=f"circuit open for {', '.join(waiting)}",
                            next_attempt_at=time.time() + max(pause, 0.5),
                        )
                    )
                    continue
                error = row["error"] or "no eligible provider (features or routes)"
                failed.append(Outcome(row["id"], "failed", error=error))
                continue
            key = (order[0], row["text"], _options_key(row["options"]), row["validity"])
            groups[key].append(row)
        if failed:
            await self._record(failed)
        for (name, _text, _opts, _valid), members in groups.items():
            lane = self.lanes[name]
            # one-number providers get 50 rows per task (the client runs their requests
            # concurrently); list providers one request's worth
            limit = lane.candidate.provider.max_recipients
            size = 50 if limit == 1 else min(limit, 1000)
            for chunk in _chunks(members, size):
                task = asyncio.create_task(self._send_chunk(lane, chunk))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send_chunk(self, lane: Lane, rows: list[dict[str, Any]]) -> None:
        provider = lane.candidate.provider
        async with lane.slots:
            requests = math.ceil(len(rows) / provider.max_recipients)
            ids = [int(r["id"]) for r in rows]
            record_no = str(ids[0]) if "record_no" in provider.send_options else None
            try:
                if lane.rate:
                    wait = await asyncio.to_thread(self.store.take_tokens, lane.name, requests, lane.rate)
                    if wait > 0:
                        await asyncio.sleep(wait)
                marked = await asyncio.to_thread(self.store.mark_sending, ids, lane.name, record_no, worker=self.id)
            except Exception as exc:  # nothing left: the rows go back to the queue on recover
                log.warning("could not start a send through %s (%s)", lane.name, type(exc).__name__)
                return
            # rows recovered and claimed by another worker meanwhile are that worker's now
            kept = set(marked)
            rows = [r for r in rows if int(r["id"]) in kept]
            if not rows:
                return
            started = time.perf_counter()
            try:
                result: SendResult | BaseException = await self._send(lane, rows, record_no)
            except PartialFailure as partial:
                result = partial.result
            except FormosmsError as exc:
                result = exc
            except Exception as exc:  # a bug must not lose the rows: they may have left
                log.exception("unexpected error sending through %s", lane.name)
                result = OutcomeUnknown(f"unexpected {type(exc).__name__}", provider=provider.name)
            self.metrics.observe_send(lane.name, time.perf_counter() - started)
            outcomes = self._outcomes(lane, rows, result, record_no)
            await self._record(outcomes)

    async def _record(self, outcomes: list[Outcome], tries: int = 8) -> None:
        """Write outcomes, waiting out a database restart: once a request left, what the
        provider answered (its ids above all) must not be lost to a failed commit."""
        for attempt in range(1, tries + 1):
            try:
                await asyncio.to_thread(self.store.record, outcomes)
                return
            except StoreUnavailable as exc:
                if attempt == tries:  # the rows stay sending: recover makes them unknown
                    log.error("could not record %d send outcomes: %s", len(outcomes), exc)
                    return
                await asyncio.sleep(backoff(attempt, base=0.5, cap=10.0, rng=self.random))

    async def _send(self, lane: Lane, rows: list[dict[str, Any]], record_no: str | None) -> SendResult:
        provider = lane.candidate.provider
        first = rows[0]
        options = dict(first["options"] or {})
        mms = options.pop("mms", None)
        send_options = {k: v for k, v in options.items() if k in provider.send_options}
        if record_no:
            send_options["record_no"] = record_no
        public = self.settings.public_url
        if public and "callback_url" in provider.send_options and lane.candidate.settings.callbacks:
            send_options["callback_url"] = f"{public.rstrip('/')}/webhooks/{lane.name}/{self.settings.webhook_secret}"
        recipients = [r["recipient"] for r in rows]
        if mms:
            attachment = Attachment(base64.b64decode(mms["data"]), str(mms.get("type", "jpg")))
            return await lane.client.send_mms(
                recipients,
                first["text"],
                attachment,
                subject=str(mms.get("subject", "")),
                validity=first["validity"],
            )
        return await lane.client.send(recipients, first["text"], validity=first["validity"], **send_options)

    def _outcomes(
        self,
        lane: Lane,
        rows: list[dict[str, Any]],
        result: SendResult | BaseException,
        record_no: str | None,
    ) -> list[Outcome]:
        provider = lane.candidate.provider
        by_recipient: dict[str, MessageResult] = {}
        batch_id = None
        if isinstance(result, SendResult):
            by_recipient = {m.recipient: m for m in result.messages}
            batch_id = result.batch_id
        outcomes = []
        for row in rows:
            message = by_recipient.get(row["recipient"])
            error: BaseException | None = result if isinstance(result, BaseException) else None
            if message is not None:
                error = message.error
            if message is not None and message.accepted:
                lane.candidate.breaker.success()
                outcomes.append(
                    Outcome(
                        row["id"],
                        "submitted",
                        provider=lane.name,
                        provider_message_id=message.message_id,
                        batch_id=batch_id or message.message_id,
                        record_no=record_no,
                        provider_status=message.provider_status,
                        cost=self._cost(provider, row),
                    )
                )
                self.metrics.count("sent", lane.name)
                continue
            outcomes.append(self._failure(lane, row, error))
        return outcomes

    def _failure(self, lane: Lane, row: dict[str, Any], error: BaseException | None) -> Outcome:
        code = getattr(error, "code", None)
        text = str(error) if error is not None else "no answer for this recipient"
        attempts = int(row["attempts"])
        if isinstance(error, OutcomeUnknown) or error is None:
            lane.candidate.breaker.failure()
            if row["at_least_once"] and attempts < self.settings.max_attempts:
                return Outcome(
                    row["id"], "queued", provider=lane.name, error=text, next_attempt_at=self._later(attempts)
                )
            self.metrics.count("unknown", lane.name)
            return Outcome(row["id"], "unknown", provider=lane.name, provider_status=code, error=text)
        if isinstance(error, PermanentError):
            # a definite refusal: another provider may take it (credit, account, content rules)
            return Outcome(
                row["id"],
                "queued",
                provider=lane.name,
                provider_status=code,
                error=text,
                refused_by=lane.name,
            )
        lane.candidate.breaker.failure()  # transient, and the provider did not take it
        others = self.router.order(
            row["recipient"],
            row["text"],
            row["options"] or {},
            requested=row["requested_provider"],
            exclude=[*(row["tried"] or []), lane.name],
        )
        if others:  # never taken, so never sent: the next eligible provider can send it now
            return Outcome(row["id"], "queued", provider=lane.name, error=text, refused_by=lane.name)
        if attempts < self.settings.max_attempts:
            return Outcome(row["id"], "queued", provider=lane.name, error=text, next_attempt_at=self._later(attempts))
        return Outcome(row["id"], "queued", provider=lane.name, error=text, refused_by=lane.name)

    def _later(self, attempts: int) -> float:
        return time.time() + backoff(attempts, base=0.5, cap=60.0, rng=self.random)

    def _cost(self, provider: Any, row: dict[str, Any]) -> Decimal | None:
        # the same text to domestic numbers costs the same: estimate once per text (a
        # per-row estimate was 6 % of the gateway's time, bench/gateway_e2e.py profile)
        recipient = str(row["recipient"])
        key = (provider.name, row["text"], "TW" if recipient.startswith("+8869") else recipient)
        if key not in self._costs:
            if len(self._costs) > 10_000:
                self._costs.clear()
            try:
                self._costs[key] = Decimal(provider.estimate([recipient], row["text"]).points)
            except (FormosmsError, NotImplementedError):
                self._costs[key] = None
        return self._costs[key]


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Chunks of at most ``size`` rows with each number at most once: a client sends a text
    once per number, so two rows for one number must go in two requests."""
    chunks: list[list[dict[str, Any]]] = []
    numbers: list[set[str]] = []
    for row in rows:
        for chunk, seen in zip(chunks, numbers, strict=True):
            if len(chunk) < size and row["recipient"] not in seen:
                break
        else:
            chunk, seen = [], set()
            chunks.append(chunk)
            numbers.append(seen)
        chunk.append(row)
        seen.add(row["recipient"])
    return chunks


def _options_key(options: dict[str, Any] | None) -> str:
    import json

    return json.dumps(options or {}, sort_keys=True, default=str)


def poll_after(candidate: Candidate, settings: Settings) -> float | None:
    """Seconds after which a ``submitted`` message of this provider is polled (None: never).

    Without callbacks reaching us, every ``poll_interval``; with them, only messages whose
    callback is overdue (``callback_grace``), e.g. lost while the gateway was down.
    """
    if Feature.STATUS_QUERY not in candidate.provider.features:
        return None
    if settings.public_url and candidate.settings.callbacks:
        return candidate.settings.callback_grace
    return candidate.settings.poll_interval
