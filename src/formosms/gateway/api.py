"""The REST API (FastAPI): submit, track, cancel; providers, health, metrics; webhooks.

``create_app(settings, store, router)`` builds it; ``with_workers=True`` also runs the
worker in the same process (``formosms serve``). Requests need ``Authorization: Bearer
<key>`` (``formosms keys create``); bad input gets 422 naming the field, before anything
is written; a database that cannot write answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi import Path as FastAPIPath
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from formosms.errors import FormosmsError
from formosms.gateway.config import Settings
from formosms.gateway.group import GroupCommit
from formosms.gateway.ingest import IngestBatcher
from formosms.gateway.metrics import Metrics
from formosms.gateway.models import MessageIn, validate_submission
from formosms.gateway.routing import Router
from formosms.gateway.runtime import GATEWAY_LOGGERS
from formosms.gateway.store import Store, StoreUnavailable, Submission
from formosms.model import Feature
from formosms.redact import protect_logs
from formosms.webhooks.asgi import asgi_app

MAX_BODY = 1024 * 1024
ID_MAX = 2**63 - 1  # the databases' BIGINT
MessageId = Annotated[int, FastAPIPath(ge=1, le=ID_MAX)]
Cursor = Annotated[int | None, Query(ge=1, le=ID_MAX)]
PUBLIC_STATUS = {"claimed": "queued", "sending": "sending"}


def create_app(settings: Settings, store: Store, router: Router, *, with_workers: bool = False) -> FastAPI:
    metrics = Metrics()
    batcher = IngestBatcher(store, settings.notify_url)
    # submissions arriving together share one transaction (see gateway/group.py); on
    # SQLite the same one as the callbacks waiting: one turn of the single writer and one
    # fsync for both, where they took turns (bench/gateway_e2e.py)
    group: GroupCommit[Submission, list[int]] | None = None
    if store.dialect == "sqlite":
        enqueue: Callable[[Submission], Awaitable[list[int]]] = batcher.submit
    else:
        enqueue = group = GroupCommit(lambda batch: store.enqueue_many(batch), weight=lambda s: len(s.items))
    balances: dict[str, tuple[float, str | None, str | None]] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        if with_workers:
            from formosms.gateway.worker import Worker

            worker = Worker(settings, store, router, metrics)
            task = asyncio.create_task(worker.run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task
            await batcher.close()
            if group is not None:
                await group.close()

    aliases = {name: c.provider.name for name, c in router.providers.items()}
    # open_gateway sets a stable one; else this one, in the settings the workers build URLs from
    secret = settings.webhook_secret = settings.webhook_secret or secrets.token_urlsafe(24)
    protect_logs([secret], GATEWAY_LOGGERS)  # it is in callback URLs: never in a log line
    webhooks = asgi_app(batcher.handle, secret=secret, aliases=aliases)

    app = _GatewayApp(title="formosms gateway", version="1", lifespan=lifespan)
    app.callback_receiver = webhooks
    app.add_middleware(_Limits, metrics=metrics)
    app.state.store = store
    app.state.keys = {}  # token -> (key id, valid until): see _api_key

    @app.exception_handler(StoreUnavailable)
    async def unavailable(request: Request, exc: StoreUnavailable) -> Response:
        return _unavailable()

    def submission_items(body: MessageIn) -> list[Any]:
        items = validate_submission(body, router)
        for item in items:  # the gateway's defaults: the app's URL gets every status change too
            item.callback_url = item.callback_url or settings.notify_url
            if "at_least_once" not in body.model_fields_set:
                item.at_least_once = settings.at_least_once
        return items

    async def accept(body: MessageIn, items: list[Any]) -> dict[str, Any]:
        ids = await enqueue(Submission(items))
        metrics.count("accepted", body.provider or "", len(ids))
        return _accepted(ids, items)

    app.fast_submit = _FastSubmit(app, submission_items, accept, metrics)

    @app.post("/v1/messages", status_code=202)
    async def submit(
        body: MessageIn,
        key_id: Auth,
        idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    ) -> Any:
        """Accept one text to many recipients, or a list of personalized messages."""
        items = submission_items(body)
        if idempotency_key is None:
            return await accept(body, items)
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        state, stored = await asyncio.to_thread(store.idempotency_begin, key_id, idempotency_key, digest)
        if state == "replay":
            status_code, answer = stored
            return JSONResponse(answer, status_code=status_code, headers={"Idempotent-Replayed": "true"})
        if state == "mismatch":
            raise HTTPException(422, "Idempotency-Key was used with a different request body")
        if state == "in_flight":
            raise HTTPException(409, "a request with this Idempotency-Key is still in progress")
        try:
            ids = await enqueue(Submission(items, (key_id, idempotency_key), lambda i: _accepted(i, items)))
        except BaseException:
            await asyncio.to_thread(store.idempotency_abort, key_id, idempotency_key)
            raise
        metrics.count("accepted", body.provider or "", len(ids))
        return _accepted(ids, items)

    @app.get("/v1/messages/{message_id}")
    async def get_message(message_id: MessageId, key_id: Auth) -> Any:
        row = await asyncio.to_thread(store.get, message_id)
        if row is None:
            raise HTTPException(404, "no such message")
        return _public(row, router)

    @app.get("/v1/messages")
    async def list_messages(
        key_id: Auth,
        status: str | None = None,
        recipient: str | None = None,
        since: float | None = None,
        until: float | None = None,
        metadata: Annotated[list[str] | None, Query(description="key=value, repeatable")] = None,
        cursor: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Any:
        filters = {}
        for pair in metadata or []:
            key, sep, value = pair.partition("=")
            if not sep:
                raise HTTPException(422, "metadata filter must be key=value")
            filters[key] = value
        if recipient:
            from formosms import phone

            try:
                recipient = phone.normalize(recipient)
            except FormosmsError as exc:
                raise HTTPException(422, f"recipient: {exc.message}") from None
        rows = await asyncio.to_thread(
            store.search,
            status=status,
            recipient=recipient,
            since=since,
            until=until,
            metadata=filters,
            after=cursor,
            limit=limit,
        )
        next_cursor = rows[-1]["id"] if len(rows) == limit else None
        return {"messages": [_public(r, router) for r in rows], "next_cursor": next_cursor}

    @app.delete("/v1/messages/{message_id}")
    async def cancel(message_id: MessageId, key_id: Auth) -> Any:
        outcome = await asyncio.to_thread(store.cancel, message_id)
        if outcome is None:
            raise HTTPException(404, "no such message")
        if outcome == "claimed":  # shown as queued, but a worker has it
            raise HTTPException(409, "cannot cancel: the message is being sent")
        if outcome not in ("queued", "scheduled"):  # what it was: canceled only from these
            raise HTTPException(409, f"cannot cancel a message that is {PUBLIC_STATUS.get(outcome, outcome)}")
        return {"id": message_id, "status": "canceled"}

    @app.get("/v1/replies")
    async def list_replies(
        key_id: Auth, cursor: Cursor = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> Any:
        rows = await asyncio.to_thread(store.replies_since, cursor, limit)
        return {"replies": rows, "next_cursor": rows[-1]["id"] if len(rows) == limit else None}

    @app.get("/v1/providers")
    async def providers(key_id: Auth) -> Any:
        out = []
        for name, candidate in router.providers.items():
            cached = balances.get(name)
            if cached is None or cached[0] < time.monotonic():
                balance, error = await _balance(candidate.provider)
                balances[name] = (time.monotonic() + 60, balance, error)
                cached = balances[name]
            provider = candidate.provider
            out.append(
                {
                    "name": name,
                    "provider": provider.name,
                    "priority": candidate.settings.priority,
                    "circuit": candidate.breaker.state,
                    "balance": cached[1],
                    "balance_error": cached[2],
                    "rate_limit": candidate.settings.rate_limit or provider.rate_limit,
                    "features": sorted(f.value for f in provider.features),
                    "status_tracking": _tracking(provider.features),
                    "webhook_path": f"/webhooks/{name}/<secret>",
                }
            )
        return {"providers": out}

    @app.get("/healthz")
    async def healthz() -> Any:
        try:
            version = await asyncio.to_thread(store.version)
        except StoreUnavailable as exc:
            return JSONResponse({"ok": False, "database": str(exc)}, status_code=503)
        return {"ok": True, "schema_version": version}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> str:
        counts = await asyncio.to_thread(store.counts)
        depth = await asyncio.to_thread(store.queue_depth)
        return metrics.render(counts, depth)

    app.state.metrics = metrics
    app.state.batcher = batcher
    return app


class _GatewayApp(FastAPI):
    """FastAPI, except that ``/webhooks/…`` goes straight to the webhook receiver (which
    has its own size limit and error handling): one callback per message is most of the
    gateway's requests, and FastAPI's middleware stack (error pages, telemetry, limits)
    and routing cost more than storing the event (bench/gateway_e2e.py profile)."""

    callback_receiver: ASGIApp | None = None
    fast_submit: _FastSubmit | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.callback_receiver is not None and scope["type"] == "http" and scope["path"].startswith("/webhooks/"):
            root = str(scope.get("root_path", ""))
            await self.callback_receiver({**scope, "root_path": root + "/webhooks"}, receive, send)
            return
        if self.fast_submit is not None and scope["type"] == "http" and scope["path"] == "/v1/messages":
            handed_on = await self.fast_submit(scope, receive, send)
            if handed_on is None:  # answered
                return
            receive = handed_on
        await super().__call__(scope, receive, send)


class _FastSubmit:
    """``POST /v1/messages`` without FastAPI's machinery, for the requests that need none
    of it: a known key, no ``Idempotency-Key``, a body that validates. Anything else (and
    every error answer) goes on to the FastAPI route with the body replayed, so answers
    and the OpenAPI schema stay the route's. At 500 single-message submissions a second,
    dependency solving, routing and the middleware stack were half the gateway's time and
    its p99 was 200 ms (bench/gateway_e2e.py latency phase, py-spy)."""

    def __init__(
        self,
        app: FastAPI,
        items: Callable[[MessageIn], list[Any]],
        accept: Callable[[MessageIn, list[Any]], Awaitable[dict[str, Any]]],
        metrics: Metrics,
    ) -> None:
        self.app = app
        self.items = items
        self.accept = accept
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer and return None, or return the ``receive`` to hand on (body replayed)."""
        if scope["method"] != "POST":
            return receive
        headers = dict(scope.get("headers", []))
        token = headers.get(b"authorization", b"").decode("latin-1")
        length = headers.get(b"content-length", b"")
        if (
            b"idempotency-key" in headers
            or not token.startswith("Bearer ")
            or not length.isdigit()
            or int(length) > MAX_BODY
            or b"application/json" not in headers.get(b"content-type", b"")
        ):
            return receive
        started = time.perf_counter()
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"".join(chunks), message, receive)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            if _known_key(self.app.state.keys, token.removeprefix("Bearer ").strip()) is None or len(body) > MAX_BODY:
                raise ValueError("not for the fast path")
            parsed = MessageIn.model_validate_json(body)
            items = self.items(parsed)
        except Exception:  # unknown key, bad body, bad field: the route answers it
            return _replay(body, None, receive)
        try:
            answer: Response = JSONResponse(await self.accept(parsed, items), status_code=202)
        except StoreUnavailable:
            answer = _unavailable()
        await answer(scope, receive, send)
        self.metrics.observe_api(time.perf_counter() - started)
        return None


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` again, then what ``receive`` gives."""
    queue: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    if pending is not None:
        queue = [pending]  # the client went away mid-body: tell the route the same

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay


class _Limits:
    """Pure ASGI (the decorator middleware costs a task per request): 413 for bodies over
    ``MAX_BODY`` — declared or, when chunked, as they are read — and API latency metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
                await JSONResponse({"detail": "request body too large"}, status_code=413)(scope, receive, send)
                return
        size = 0

        async def limited() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > MAX_BODY:  # raised while FastAPI reads the body: it answers this as is
                raise HTTPException(413, "request body too large")
            return message

        try:
            await self.app(scope, limited, send)
        finally:
            self.metrics.observe_api(time.perf_counter() - started)


async def _api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> int:
    """The ``Authorization: Bearer`` key's id, or 401 (checked before the body is used)."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not token or not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(401, "missing API key", headers={"WWW-Authenticate": "Bearer"})
    keys: dict[str, tuple[int, float]] = request.app.state.keys
    known = _known_key(keys, token)
    if known is not None:
        return known
    key_id = await asyncio.to_thread(request.app.state.store.verify_api_key, token)
    if key_id is None:
        raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
    keys[token] = (key_id, time.monotonic() + 30)
    return int(key_id)


def _known_key(keys: dict[str, tuple[int, float]], token: str) -> int | None:
    """The key id of ``token`` if it was verified within the last 30 s."""
    cached = keys.get(token)
    return cached[0] if cached and cached[1] > time.monotonic() else None


def _unavailable() -> JSONResponse:
    return JSONResponse({"detail": "storage unavailable, nothing was accepted"}, status_code=503)


# module level: with postponed annotations FastAPI resolves ``Auth`` in this module's
# namespace (inside create_app it stayed a forward reference: every endpoint broke)
Auth = Annotated[int, Depends(_api_key)]


def _accepted(ids: list[int], items: list[Any]) -> dict[str, Any]:
    return {
        "messages": [
            {"id": i, "to": m.recipient, "status": "scheduled" if m.schedule_at else "queued"}
            for i, m in zip(ids, items, strict=True)
        ]
    }


def _tracking(features: frozenset[Feature]) -> str:
    if Feature.STATUS_QUERY in features and Feature.DELIVERY_CALLBACK in features:
        return "callbacks, or status polling when no public URL is set"
    if Feature.DELIVERY_CALLBACK in features:
        return "callbacks only: this provider has no status query"
    return "status polling"


def _public(row: dict[str, Any], router: Router) -> dict[str, Any]:
    status = PUBLIC_STATUS.get(row["status"], row["status"])
    out = {
        "id": row["id"],
        "to": row["recipient"],
        "text": row["text"],
        "status": status,
        "provider": row["provider"],
        "provider_message_id": row["provider_message_id"],
        "batch_id": row["batch_id"],
        "provider_status": row["provider_status"],
        "error": row["error"],
        "cost": str(row["cost"]) if row["cost"] is not None else None,
        "attempts": row["attempts"],
        "schedule_at": row["schedule_at"],
        "validity": row["validity"],
        "metadata": row["metadata"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "final_at": row["final_at"],
    }
    candidate = router.providers.get(row["provider"] or "")
    if status == "submitted" and candidate and Feature.STATUS_QUERY not in candidate.provider.features:
        out["note"] = f"{candidate.provider.name} has no status query: the final state arrives by callback only"
    if status == "unknown":
        out["note"] = "the request left and no usable answer came back; not re-sent unless at_least_once"
    if "events" in row:
        out["events"] = [
            {k: e[k] for k in ("at", "status", "provider", "provider_status", "detail")} for e in row["events"]
        ]
    return out


async def _balance(provider: Any) -> tuple[str | None, str | None]:
    from formosms.client import AsyncClient

    if Feature.BALANCE not in provider.features:
        return None, "no balance query"
    client = AsyncClient(provider)
    try:
        return str(await asyncio.wait_for(client.balance(), timeout=5)), None
    except (FormosmsError, TimeoutError) as exc:
        return None, str(exc)[:200]
    finally:
        await client.close()
