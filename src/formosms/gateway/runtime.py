"""Put a gateway together from settings: store (migrated), providers, router."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from formosms.gateway.config import Settings
from formosms.gateway.routing import Candidate, CircuitBreaker, Router
from formosms.gateway.store import Store
from formosms.redact import protect_logs

#: loggers that may see a URL carrying the webhook secret (callback URLs sent to providers)
GATEWAY_LOGGERS = ("formosms.http", "formosms.gateway", "httpx", "httpcore", "aiohttp.client")


@dataclass
class Gateway:
    settings: Settings
    store: Store
    router: Router


def open_gateway(settings: Settings, *, migrate: bool = True) -> Gateway:
    """Open the database (creating or upgrading the schema) and build the providers."""
    store = Store(settings.database)
    if migrate:
        store.migrate()
    if not settings.webhook_secret:
        settings.webhook_secret = store.setting("webhook_secret", lambda: secrets.token_urlsafe(24))
    # the secret travels in the callback URLs given to providers (``formosms worker`` too)
    protect_logs([settings.webhook_secret], GATEWAY_LOGGERS)
    candidates = [Candidate(p, p.build(), CircuitBreaker()) for p in settings.providers.values()]
    return Gateway(settings, store, Router(candidates, settings.routes))
