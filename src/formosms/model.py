"""The one model every provider maps into: statuses, features and result records.

Everything here is a frozen dataclass or a ``str`` enum, so results can be logged,
compared, pickled and turned into JSON (``dataclasses.asdict``) without surprises.
Every record keeps what the provider actually said (``raw`` / ``provider_status``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


class Status(enum.StrEnum):
    """Normalized delivery status of one message to one recipient."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"
    REJECTED = "rejected"
    CANCELED = "canceled"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """True when no later report can change this status."""
        return self in FINAL_STATUSES

    def __str__(self) -> str:
        return self.value


FINAL_STATUSES = frozenset(
    {
        Status.DELIVERED,
        Status.UNDELIVERABLE,
        Status.EXPIRED,
        Status.REJECTED,
        Status.CANCELED,
        Status.FAILED,
    }
)


class Feature(enum.StrEnum):
    """What a provider API can do; asking for a missing one raises ``UnsupportedFeature``."""

    SEND = "send"
    SCHEDULE = "schedule"
    VALIDITY = "validity"
    LONG_SMS = "long_sms"
    FLASH = "flash"
    WAP_PUSH = "wap_push"
    PERSONALIZED = "personalized"
    MMS = "mms"
    TWO_WAY = "two_way"
    REPLIES_POLL = "replies_poll"
    STATUS_QUERY = "status_query"
    DELIVERY_CALLBACK = "delivery_callback"
    BALANCE = "balance"
    CANCEL = "cancel"
    INTERNATIONAL = "international"

    def __str__(self) -> str:
        return self.value


class Encoding(enum.StrEnum):
    """How a text travels on the air interface."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class MessageResult:
    """One recipient of a send: accepted with an id, or refused with an error."""

    recipient: str
    message_id: str | None = None
    error: Exception | None = None
    provider_status: str | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a provider answered to one ``send`` (possibly several HTTP requests)."""

    provider: str
    batch_id: str | None
    messages: tuple[MessageResult, ...]
    cost: Decimal | None = None
    balance: Decimal | None = None
    raw: str = ""
    batch_ids: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[MessageResult, ...]:
        return tuple(m for m in self.messages if m.accepted)

    @property
    def failed(self) -> tuple[MessageResult, ...]:
        return tuple(m for m in self.messages if not m.accepted)

    @property
    def message_ids(self) -> list[str]:
        return [m.message_id for m in self.messages if m.message_id]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """The state of one message to one recipient, from a query or a callback."""

    provider: str
    status: Status
    provider_status: str
    recipient: str | None = None
    message_id: str | None = None
    batch_id: str | None = None
    done_at: datetime | None = None
    cost: Decimal | None = None
    record_no: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A reply from a handset (two-way SMS)."""

    provider: str
    sender: str
    text: str
    received_at: datetime | None = None
    reply_to: str | None = None
    recipient: str | None = None
    provider_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a send would cost by the provider's published rules, before sending."""

    provider: str
    encoding: Encoding
    parts: int
    points: Decimal
    recipients: int = 1
    characters: int = 0


@dataclass(frozen=True, slots=True)
class CancelResult:
    """Answer to a cancel: how many messages were removed and points refunded."""

    provider: str
    canceled: int
    refunded: Decimal | None = None
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Personalized:
    """One recipient with its own text (``send_personalized``)."""

    to: str
    text: str
    name: str = ""
    email: str = ""
    send_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    """An MMS image: bytes plus the file type the provider expects (jpg/jpeg/png/gif)."""

    data: bytes
    type: str

    def __repr__(self) -> str:
        return f"Attachment(type={self.type!r}, {len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class WebhookAck:
    """The exact HTTP answer a provider expects to a callback."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """A callback, parsed: delivery reports, replies, and the acknowledgement to send back."""

    provider: str
    reports: tuple[DeliveryReport, ...] = ()
    replies: tuple[InboundMessage, ...] = ()
    ack: WebhookAck = field(default_factory=WebhookAck)
