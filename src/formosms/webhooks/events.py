"""The pure part: dispatch to the provider's parser, and stable event ids."""

from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from formosms.errors import ConfigurationError, InvalidWebhook
from formosms.model import DeliveryReport, InboundMessage, WebhookResult
from formosms.providers.base import registry

log = logging.getLogger("formosms.webhooks")

Parser = Callable[..., WebhookResult]


def parser_for(provider: str) -> Parser:
    """The ``parse_webhook`` function of a registered provider's module."""
    cls = registry().get(provider)
    if cls is None:
        raise ConfigurationError(f"unknown provider {provider!r}")
    module = importlib.import_module(cls.__module__)
    parser: Parser | None = getattr(module, "parse_webhook", None)
    if parser is None:
        raise ConfigurationError(f"{provider} has no callback parser")
    return parser


def parse(
    provider: str,
    *,
    method: str,
    query: bytes | str,
    body: bytes,
    content_type: str = "",
    **options: Any,
) -> WebhookResult:
    """Parse one callback. Raises only ``InvalidWebhook`` (or ``ConfigurationError``).

    ``options`` go to the provider's parser (SMS-Get: ``two_way_code``).
    """
    parser = parser_for(provider)
    raw_query = query.encode("latin-1", errors="replace") if isinstance(query, str) else query
    try:
        return parser(method=method.upper(), query=raw_query, body=body, content_type=content_type, **options)
    except InvalidWebhook:
        raise
    except Exception as exc:  # a parser bug must not become a 500 that makes providers retry forever
        log.warning("%s callback parser raised %s", provider, type(exc).__name__)
        raise InvalidWebhook(f"unreadable callback ({type(exc).__name__})", provider=provider) from None


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """A report or a reply with its stable id (the same callback twice: the same id)."""

    id: str
    kind: Literal["report", "reply"]
    provider: str
    report: DeliveryReport | None = None
    reply: InboundMessage | None = None


def event_id(event: DeliveryReport | InboundMessage) -> str:
    """provider + ids + status + time, hashed: equal for the same event delivered twice."""
    if isinstance(event, DeliveryReport):
        parts = [
            "report",
            event.provider,
            event.message_id or "",
            event.batch_id or "",
            event.record_no or "",
            event.recipient or "",
            event.provider_status,
            event.done_at.isoformat() if event.done_at else "",
        ]
    else:
        parts = [
            "reply",
            event.provider,
            event.provider_id or "",
            event.reply_to or "",
            event.sender,
            event.text,
            event.received_at.isoformat() if event.received_at else "",
        ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def events_of(result: WebhookResult) -> list[WebhookEvent]:
    out = [WebhookEvent(event_id(r), "report", result.provider, report=r) for r in result.reports]
    out += [WebhookEvent(event_id(r), "reply", result.provider, reply=r) for r in result.replies]
    return out


class MemoryEventStore:
    """Keeps each event once (by id): a minimal handler target for scripts and tests."""

    def __init__(self) -> None:
        self.events: dict[str, WebhookEvent] = {}
        self.duplicates = 0

    def add(self, events: Iterable[WebhookEvent]) -> list[WebhookEvent]:
        new = []
        for event in events:
            if event.id in self.events:
                self.duplicates += 1
                continue
            self.events[event.id] = event
            new.append(event)
        return new

    @property
    def reports(self) -> list[DeliveryReport]:
        return [e.report for e in self.events.values() if e.report is not None]

    @property
    def replies(self) -> list[InboundMessage]:
        return [e.reply for e in self.events.values() if e.reply is not None]
