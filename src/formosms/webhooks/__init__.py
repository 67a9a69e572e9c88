"""Provider callbacks -> delivery reports and replies, with the exact acknowledgement.

``parse()`` is pure and framework-free; each provider's format lives in its own module
(``formosms.providers.<name>.parse_webhook``). ``asgi_app()`` serves them at
``/{provider}/{secret}``; ``adapters`` has thin FastAPI and Django glue.
"""

from formosms.webhooks.events import (
    MemoryEventStore,
    WebhookEvent,
    event_id,
    events_of,
    parse,
)

__all__ = ["MemoryEventStore", "WebhookEvent", "asgi_app", "event_id", "events_of", "parse"]


def __getattr__(name: str) -> object:
    if name == "asgi_app":  # keep Starlette out of the import of the pure parser
        from formosms.webhooks.asgi import asgi_app

        return asgi_app
    raise AttributeError(name)
