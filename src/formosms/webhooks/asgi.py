"""A mountable ASGI app: ``/{provider}/{secret}`` for GET and POST.

The secret is compared in constant time; a wrong one gets 404 and nothing is parsed.
The handler is called with the parsed events; the provider's ack goes out only after the
handler returned (it has stored them), and a handler failure answers 503 so the provider
retries. Bodies over ``max_body`` get 413; unreadable callbacks 400 with a one-line reason.
"""

from __future__ import annotations

import dataclasses
import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import Receive, Scope, Send

from formosms.errors import ConfigurationError, InvalidWebhook
from formosms.model import WebhookResult
from formosms.webhooks.events import WebhookEvent, events_of, parse

log = logging.getLogger("formosms.webhooks")

Handler = Callable[[WebhookResult, list[WebhookEvent]], Awaitable[None] | None]
DEFAULT_MAX_BODY = 256 * 1024


class BodyTooLarge(Exception):
    pass


def asgi_app(
    handler: Handler,
    *,
    secret: str,
    providers: set[str] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    aliases: Mapping[str, str] | None = None,
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Build the receiver. ``options[provider]`` are passed to that provider's parser.

    ``aliases`` maps path names to provider keys (a gateway's ``/e8d/…`` is ``every8d``);
    the handler then sees ``result.provider`` as the path name. With aliases, only those
    names are served.
    """
    if not secret or len(secret) < 16:
        raise ConfigurationError("webhook secret must be at least 16 characters")
    expected = secret.encode()
    parser_options = {k: dict(v) for k, v in (options or {}).items()}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root + "/"):
            path = path[len(root) :]  # mounted (Starlette keeps the prefix in ``path``)
        segments = [s for s in path.split("/") if s]
        if len(segments) != 2:
            await _answer(send, 404, b"not found")
            return
        name, given = segments
        provider = aliases.get(name, "") if aliases is not None else name
        if (
            not hmac.compare_digest(given.encode(), expected)
            or not provider
            or (providers and provider not in providers)
        ):
            await _answer(send, 404, b"not found")
            return
        if scope["method"] not in ("GET", "POST"):
            await _answer(send, 405, b"method not allowed")
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            body = await _read_body(receive, max_body, headers)
        except BodyTooLarge:
            log.warning("%s callback over %d bytes refused", provider, max_body)
            await _answer(send, 413, b"body too large")
            return
        try:
            result = parse(
                provider,
                method=scope["method"],
                query=scope.get("query_string", b""),
                body=body,
                content_type=headers.get("content-type", ""),
                **parser_options.get(name, parser_options.get(provider, {})),
            )
            if name != provider:
                result = dataclasses.replace(result, provider=name)
        except ConfigurationError:
            await _answer(send, 404, b"not found")
            return
        except InvalidWebhook as exc:
            reason = exc.message.splitlines()[0][:200] if exc.message else "invalid callback"
            log.warning("%s callback refused: %s", provider, reason)
            await _answer(send, 400, reason.encode("utf-8", errors="replace"))
            return
        events = events_of(result)
        try:
            outcome = handler(result, events)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as exc:
            log.error(
                "%s callback not stored (%s): answering 503 so the provider retries",
                provider,
                type(exc).__name__,
            )
            await _answer(send, 503, b"could not store the event, retry later")
            return
        await _answer(send, result.ack.status, result.ack.body, result.ack.content_type)

    return app


async def _read_body(receive: Receive, limit: int, headers: Mapping[str, str]) -> bytes:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, content_type: str = "text/plain") -> None:
    ctype = content_type if "charset" in content_type else f"{content_type}; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
