"""The base of every emulator, and the fault-injection middleware in front of it.

An emulator subclass implements the provider's documented endpoints as Starlette routes
and the provider-specific pieces: codes for outcomes, the busy answer, the callback
format and its acknowledgement rule, and how a handset reply reaches the sender.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Sequence
from typing import ClassVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from formosms.sandbox.core import Accepted, Account, Engine, ProviderState, taipei

log = logging.getLogger("formosms.sandbox")
_SECRET_FIELDS = re.compile(r"((?:password|pwd|sessionkey|apikey)=)[^&]*", re.IGNORECASE)


class Emulator:
    """One provider API. Subclasses set ``name``/``prefix`` and implement the hooks."""

    name: ClassVar[str]
    prefix: ClassVar[str]
    #: documented requests/s limit (None: undocumented)
    rate_limit: ClassVar[float | None] = None

    def __init__(self, state: ProviderState, engine: Engine):
        self.state = state
        self.engine = engine

    # -- to implement -------------------------------------------------------------------
    def routes(self) -> Sequence[BaseRoute]:
        raise NotImplementedError

    def busy_response(self) -> Response:
        """HTTP 200 with the provider's own "busy, try later" answer."""
        return PlainTextResponse("busy", status_code=200)

    def malformed_response(self) -> Response:
        """HTTP 200 with a body that does not follow the documented format."""
        return PlainTextResponse("<html><body>Service Unavailable</body>", status_code=200)

    def rate_limited_response(self) -> Response:
        return PlainTextResponse("Too Many Requests", status_code=429)

    def on_final(self, message: Accepted) -> None:
        """A message reached its final state: make the provider's callback if it has one."""

    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        """A handset replied: deliver it through the provider's own channel."""

    def reset(self) -> None:
        """Forget emulator-specific state (sessions, lockouts) on ``/_sandbox/reset``."""

    # -- lifecycle shared by all ----------------------------------------------------------
    def release(self, message: Accepted) -> None:
        """Start a message's life: wait for its schedule, then for delivery."""
        if message.send_at is not None and message.send_at > time.time():
            message.state = "scheduled"
            self.engine.at(message.timer, message.send_at, lambda: self._submit(message))
        else:
            self._submit(message)

    def _submit(self, message: Accepted) -> None:
        if message.state == "canceled":
            return
        message.state = "submitted"
        if self.state.roll(self.state.faults.lost_rate):
            message.lost = True  # accepted, then never a report: the gateway must cope
            return
        delay = self.state.config.delivery_delay
        self.engine.at(message.timer, time.time() + delay, lambda: self._finalize(message))

    def _finalize(self, message: Accepted) -> None:
        if message.state != "submitted":
            return
        outcome = self.state.pick_outcome()
        if (
            outcome == "delivered"
            and message.validity is not None
            and self.state.config.delivery_delay > message.validity
        ):
            outcome = "expired"
        message.state = outcome
        message.final_at = time.time()
        self.on_final(message)

    def cancel(self, message: Accepted) -> bool:
        """Cancel a scheduled message; True when it was still waiting."""
        if message.state not in ("scheduled", "accepted"):
            return False
        self.engine.cancel(message.timer)
        message.state = "canceled"
        message.final_at = time.time()
        return True

    def reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        from formosms.sandbox.core import Reply

        self.state.replies.append(
            Reply(len(self.state.replies) + 1, sender, text, time.time(), to_message, account.username)
        )
        self.on_reply(sender, text, to_message, account)

    @staticmethod
    def taipei(epoch: float) -> str:
        return taipei(epoch).isoformat()

    def app(self) -> ASGIApp:
        return FaultInjection(Starlette(routes=list(self.routes())), self)


class FaultInjection:
    """ASGI middleware: latency, 5xx, held connections, malformed and busy answers, rate limit.

    5xx, busy and rate-limited requests are refused before the emulator sees them; a held
    (timeout) or malformed answer comes AFTER the emulator processed the request, so the
    message may have been accepted: exactly the ambiguity a real timeout leaves.
    """

    def __init__(self, app: ASGIApp, emulator: Emulator):
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = self.emulator.state
        faults = state.faults
        status_box = [0]

        async def logged_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            if faults.latency:
                await asyncio.sleep(faults.latency)
            if state.rate_limited():
                await self.emulator.rate_limited_response()(scope, receive, logged_send)
            elif state.roll(faults.error_rate):
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, logged_send)
            elif state.roll(faults.busy_rate):
                await self.emulator.busy_response()(scope, receive, logged_send)
            elif state.roll(faults.timeout_rate):
                await self.app(scope, receive, _discard)
                await asyncio.sleep(faults.hold)
                await PlainTextResponse("Gateway Timeout", status_code=504)(scope, receive, logged_send)
            elif state.roll(faults.malformed_rate):
                await self.app(scope, receive, _discard)
                await self.emulator.malformed_response()(scope, receive, logged_send)
            else:
                await self.app(scope, receive, logged_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                query = _SECRET_FIELDS.sub(r"\1***", scope.get("query_string", b"").decode("latin-1"))
                log.info(
                    "%s %s %s%s -> %s (%.1f ms)",
                    self.emulator.name,
                    scope["method"],
                    scope["path"],
                    "?" + query if query else "",
                    status_box[0],
                    (time.perf_counter() - started) * 1000,
                )


async def _discard(message: Message) -> None:
    return None


async def form_fields(request: Request) -> dict[str, str]:
    """Query string and form body merged (GET and POST alike), UTF-8, decoded once."""
    from urllib.parse import parse_qsl

    fields = dict(request.query_params)
    if request.method == "POST":
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if body and ("x-www-form-urlencoded" in ctype or not ctype):
            fields.update(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return fields
