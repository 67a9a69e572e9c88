"""Thin glue for frameworks: FastAPI/Starlette (mount the ASGI app) and Django (a view).

Both route through ``formosms.webhooks.parse`` and the same ack rules as ``asgi_app``.
"""

from __future__ import annotations

import hmac
import inspect
import logging
from collections.abc import Callable
from typing import Any

from formosms.errors import ConfigurationError, InvalidWebhook
from formosms.webhooks.asgi import DEFAULT_MAX_BODY, Handler, asgi_app
from formosms.webhooks.events import events_of, parse

log = logging.getLogger("formosms.webhooks")


def mount(app: Any, path: str, handler: Handler, *, secret: str, **kwargs: Any) -> None:
    """``mount(fastapi_app, "/webhooks", handler, secret=...)``: FastAPI or Starlette."""
    app.mount(path, asgi_app(handler, secret=secret, **kwargs))


def django_view(handler: Callable[..., Any], *, secret: str, max_body: int = DEFAULT_MAX_BODY) -> Callable[..., Any]:
    """A Django view for ``path("webhooks/<str:provider>/<str:secret>", view)``.

    Wrap it with ``csrf_exempt``: providers do not send CSRF tokens. ``handler`` must be
    synchronous here (Django's sync views).
    """
    if not secret or len(secret) < 16:
        raise ConfigurationError("webhook secret must be at least 16 characters")

    def view(request: Any, provider: str, secret_in_path: str) -> Any:
        from django.http import HttpResponse

        if not hmac.compare_digest(secret_in_path.encode(), secret.encode()):
            return HttpResponse(b"not found", status=404, content_type="text/plain")
        if request.method not in ("GET", "POST"):
            return HttpResponse(b"method not allowed", status=405, content_type="text/plain")
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > max_body:
            return HttpResponse(b"body too large", status=413, content_type="text/plain")
        try:
            result = parse(
                provider,
                method=request.method,
                query=request.META.get("QUERY_STRING", "").encode("latin-1", errors="replace"),
                body=request.body,
                content_type=request.META.get("CONTENT_TYPE", ""),
            )
        except ConfigurationError:
            return HttpResponse(b"not found", status=404, content_type="text/plain")
        except InvalidWebhook as exc:
            log.warning("%s callback refused: %s", provider, exc.message)
            return HttpResponse(exc.message.encode(), status=400, content_type="text/plain")
        try:
            outcome = handler(result, events_of(result))
            if inspect.isawaitable(outcome):
                raise ConfigurationError("django_view needs a synchronous handler")
        except ConfigurationError:
            raise
        except Exception:
            log.error("%s callback not stored: answering 503", provider)
            return HttpResponse(b"could not store the event", status=503, content_type="text/plain")
        return HttpResponse(result.ack.body, status=result.ack.status, content_type=result.ack.content_type)

    view.csrf_exempt = True  # type: ignore[attr-defined]
    return view
