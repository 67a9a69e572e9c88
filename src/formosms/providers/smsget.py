"""SMS-Get (sms-get.com) 商務簡訊 HTTP API.

Follows ``specs/smsget-api.txt`` (sections 一 send, 二 delivery callback, 三 two-way
send, 四 two-way reply callback, 五 credit query) and the SMS-Get part of
``specs/provider-notes.md``.

On the wire:

* ``/api_send.php`` (``/api_send_twoway.php`` with the ``two_way=True`` send option) is
  POSTed as a form: ``username``, ``password``, ``method`` (1 now, 2 scheduled),
  ``sms_msg``, ``phone`` (up to 250 numbers, comma-separated: "單次送大量收件人名單請用
  POST 的方式") and, when scheduled, ``send_date`` ``YYYY/MM/DD``, ``hour``, ``min``
  in Taiwan time. Long texts are split by SMS-Get itself.
* ``/api_query_credit.php`` answers the remaining points.
* Replies are JSON ``{"stats": true, "error_code": "000", "error_msg": "..."}``. The
  document's table lost the separators inside ``error_msg`` (it shows spaces); they are
  ``|``: ``msgid|points_used|points_left`` on a send, ``account|points`` on the credit
  query. Both forms are read. ``stats`` may be a boolean or a ``"true"`` string.
* Numbers travel in SMS-Get's own forms (section 一, ``phone``): Taiwan ``0912345678``,
  China ``13512345678``, Hong Kong 8 digits, the USA ``001`` + 10 digits, the other
  listed countries their country code and number without ``+``. Countries outside the
  document's list are refused locally.

Quirks:

* There is no status query: delivery is known only through the callbacks, whose URLs
  are set in SMS-Get's web console (API 設定), not per request.
* One message id covers the whole request, so every recipient of a request gets the
  same ``message_id``; the callback's per-recipient id lands in ``record_no``.
* Schedules have minute precision; a time with seconds is rounded *up* to the next
  minute, so a message never leaves before the time asked for.
* The document shows only ``http://sms-get.com``; the default here is HTTPS on the same
  host (``base_url`` is configurable).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import unquote_to_bytes

from formosms import phone, segments
from formosms.errors import (
    ConfigurationError,
    InvalidRecipient,
    InvalidRequest,
    InvalidWebhook,
    MalformedResponse,
)
from formosms.formdata import decode, split_form
from formosms.model import (
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    MessageResult,
    SendResult,
    WebhookAck,
    WebhookResult,
)
from formosms.providers.base import BatchOutcome, OutboundSMS, Provider, register, to_decimal
from formosms.providers.smsget_codes import (
    COUNTRIES,
    ERRORS,
    PROVIDER,
    STATUS,
    error_for,
    number_from_wire,
    region,
    status_of,
    wire_number,
)
from formosms.redact import redact
from formosms.timefmt import TAIPEI, parse_taipei_any
from formosms.transport import Exchange, HttpRequest, HttpResponse, one

__all__ = [
    "ERRORS",
    "STATUS",
    "SMSGet",
    "error_for",
    "number_from_wire",
    "parse_credit_reply",
    "parse_send_reply",
    "parse_webhook",
    "schedule_fields",
    "webhook_ack",
    "wire_number",
]

SEND_PATH = "/api_send.php"
TWO_WAY_PATH = "/api_send_twoway.php"
CREDIT_PATH = "/api_query_credit.php"
_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M")


@register
class SMSGet(Provider):
    """SMS-Get: 250 recipients per request, scheduling, two-way SMS, callbacks, balance.

    Delivery is known only through the delivery callback (configured in SMS-Get's web
    console): ``status()`` raises ``UnsupportedFeature``. ``two_way_code`` is the
    account's two-digit two-way code (e.g. ``"03"``), stripped from replies by
    ``parse_webhook``.
    """

    name: ClassVar[str] = PROVIDER
    features: ClassVar[frozenset[Feature]] = frozenset(
        {
            Feature.SEND,
            Feature.SCHEDULE,
            Feature.LONG_SMS,
            Feature.TWO_WAY,
            Feature.DELIVERY_CALLBACK,
            Feature.BALANCE,
            Feature.INTERNATIONAL,
        }
    )
    max_recipients: ClassVar[int] = 250
    default_base_url: ClassVar[str] = "https://sms-get.com"
    send_options: ClassVar[frozenset[str]] = frozenset({"two_way"})
    rate_limit: ClassVar[float | None] = None
    dsn_options: ClassVar[frozenset[str]] = frozenset({"two_way_code"})

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
        two_way_code: str | None = None,
    ):
        super().__init__(username, password, base_url=base_url, timeout=timeout)
        if two_way_code is not None and not (isinstance(two_way_code, str) and re.fullmatch(r"[0-9]{2}", two_way_code)):
            raise ConfigurationError(f"{self.name}: two_way_code must be two digits, like '03'")
        self.two_way_code = two_way_code

    # -- local checks and pricing ---------------------------------------------------------
    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        """Points by section 一: 160/153 GSM characters or 70/67 otherwise per part;
        Taiwan and Hong Kong 1 point a part, China 2 (other countries: assumed 1)."""
        info = segments.analyze(text)
        points = sum((info.parts * COUNTRIES.get(region(r), Decimal(1)) for r in recipients), Decimal(0))
        return Estimate(self.name, info.encoding, info.parts, points, len(recipients), info.characters)

    def validate(self, message: OutboundSMS) -> None:
        two_way = _two_way(message.options)
        for recipient in message.recipients:
            wire_number(recipient)
            if two_way and not phone.is_taiwan(recipient):
                # Section 三: "雙向簡訊僅台灣手機門號可送達".
                raise InvalidRecipient(
                    f"two-way SMS reaches Taiwan numbers only, not {recipient}",
                    recipient=recipient,
                    provider=self.name,
                )

    # -- requests ---------------------------------------------------------------------------
    def build_send(
        self,
        recipients: Sequence[str],
        text: str,
        schedule_at: datetime | None = None,
        *,
        two_way: bool = False,
    ) -> HttpRequest:
        form = [
            ("username", self.username),
            ("password", self.password),
            ("method", "2" if schedule_at is not None else "1"),
            ("sms_msg", text),
            ("phone", ",".join(wire_number(r) for r in recipients)),
        ]
        if schedule_at is not None:
            form += schedule_fields(schedule_at)
        path = TWO_WAY_PATH if two_way else SEND_PATH
        return self.request(path, method="POST", form=form, operation="send_twoway" if two_way else "send")

    def build_balance(self) -> HttpRequest:
        form = [("username", self.username), ("password", self.password)]
        return self.request(CREDIT_PATH, method="POST", form=form, operation="balance")

    # -- operations -------------------------------------------------------------------------
    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        self.validate(message)
        two_way = _two_way(message.options)

        def build(group: tuple[str, ...]) -> HttpRequest:
            return self.build_send(group, message.text, message.schedule_at, two_way=two_way)

        def parse(group: tuple[str, ...], response: HttpResponse) -> BatchOutcome:
            return parse_send_reply(response.text, group, secrets=self.secrets)

        return (yield from self.batched_send(message.recipients, build, parse))

    def balance(self) -> Exchange[Decimal]:
        response = yield from one(self.build_balance())
        return parse_credit_reply(response.text, secrets=self.secrets)

    def parse_webhook(self, *, method: str, query: bytes, body: bytes, content_type: str) -> WebhookResult:
        """``parse_webhook`` with this account's ``two_way_code``."""
        return parse_webhook(
            method=method, query=query, body=body, content_type=content_type, two_way_code=self.two_way_code
        )


def _two_way(options: dict[str, Any]) -> bool:
    value = options.get("two_way", False)
    if not isinstance(value, bool):
        raise InvalidRequest("two_way must be True or False", field="two_way", provider=PROVIDER)
    return value


# -- wire forms -------------------------------------------------------------------------------


def schedule_fields(when: datetime) -> list[tuple[str, str]]:
    """``send_date`` ``YYYY/MM/DD``, ``hour`` and ``min`` in Taiwan time, rounded up to the minute."""
    local = when.astimezone(TAIPEI)
    if local.second or local.microsecond:
        local = local.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return [
        ("send_date", local.strftime("%Y/%m/%d")),
        ("hour", f"{local.hour:02d}"),
        ("min", f"{local.minute:02d}"),
    ]


# -- replies ----------------------------------------------------------------------------------


def _reply(body: str, secrets: Sequence[str]) -> tuple[str, list[str]]:
    """(error_code, error_msg fields) of a successful reply; raises the mapped error otherwise."""
    safe = redact(body, secrets)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedResponse("reply is not JSON", body=safe, provider=PROVIDER) from None
    if not isinstance(data, dict) or "stats" not in data:
        raise MalformedResponse("reply has no stats", body=safe, provider=PROVIDER)
    stats = data["stats"]
    if isinstance(stats, str) and stats.strip().lower() in ("true", "false"):
        stats = stats.strip().lower() == "true"
    elif isinstance(stats, int) and stats in (0, 1):
        stats = bool(stats)
    if not isinstance(stats, bool):
        raise MalformedResponse(f"stats is not a boolean: {str(stats)[:20]!r}", body=safe, provider=PROVIDER)
    raw_code = data.get("error_code", "")
    if isinstance(raw_code, bool) or not isinstance(raw_code, str | int):
        raise MalformedResponse("error_code is not a code", body=safe, provider=PROVIDER)
    code = str(raw_code).strip()
    if code.isdigit():
        code = code.zfill(3)  # a JSON number 9 stands for "009"
    raw_msg = data.get("error_msg", "")
    message = redact(str(raw_msg if raw_msg is not None else "").strip(), secrets)
    if not stats or (code and code != "000"):
        raise error_for(code, message)
    fields = message.split("|") if "|" in message else message.split()
    fields = [f.strip() for f in fields]
    while fields and not fields[-1]:
        fields.pop()  # a trailing "|"
    return code, fields


def parse_send_reply(body: str, recipients: Sequence[str], *, secrets: Sequence[str] = ()) -> BatchOutcome:
    """Send / two-way send reply -> one id for the request, points used and left."""
    code, fields = _reply(body, secrets)
    safe = redact(body, secrets)
    if not fields or not fields[0] or len(fields) > 3:
        raise MalformedResponse("error_msg is not msgid|points|balance", body=safe, provider=PROVIDER)
    msgid = fields[0]
    cost = to_decimal(fields[1], provider=PROVIDER, what="points used", body=safe) if len(fields) > 1 else None
    left = to_decimal(fields[2], provider=PROVIDER, what="points left", body=safe) if len(fields) > 2 else None
    messages = [MessageResult(recipient=r, message_id=msgid, provider_status=code or "000") for r in recipients]
    return BatchOutcome(messages, batch_id=msgid, cost=cost, balance=left, raw=safe)


def parse_credit_reply(body: str, *, secrets: Sequence[str] = ()) -> Decimal:
    """Credit reply ``account|points`` -> the points left."""
    _code, fields = _reply(body, secrets)
    if not fields:
        raise MalformedResponse("error_msg holds no points", body=redact(body, secrets), provider=PROVIDER)
    return to_decimal(fields[-1], provider=PROVIDER, what="points", body=redact(body, secrets))


# -- callbacks --------------------------------------------------------------------------------

_RECORD_SPLIT = re.compile(r"[,\r\n]+")
_SPACED_REPLY = re.compile(r"^(\S+)\s+(\S+)\s+(\d{4}[-/]\d{1,2}[-/]\d{1,2}\s+\d{1,2}:\d{2}(?::\d{2})?)\s+(.*)$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def webhook_ack() -> WebhookAck:
    """Sections 二 and 四: "您接收的 URL 僅需要回應"ok"字串即可"."""
    return WebhookAck(200, b"ok", "text/plain")


def parse_webhook(
    *, method: str, query: bytes, body: bytes, content_type: str, two_way_code: str | None = None
) -> WebhookResult:
    """A delivery callback (``sms_id`` + ``content``) or a two-way reply (``content`` only).

    SMS-Get POSTs (GET is accepted too); fields are read from the body and the query.
    """
    if method.upper() not in ("GET", "POST"):
        raise InvalidWebhook(f"method {method[:10]} not allowed")
    fields: dict[str, str] = {}
    kind = content_type.split(";")[0].strip().lower()
    if body.strip() and kind not in ("multipart/form-data", "application/json"):
        for key, value in split_form(body.strip()):
            fields.setdefault(key, decode(value, key))
    elif body.strip():
        raise InvalidWebhook(f"unsupported content type {kind[:40]}")
    for key, value in split_form(query):
        fields.setdefault(key, decode(value, key))
    content = fields.get("content")
    if content is None:
        raise InvalidWebhook("content is missing")
    records = [r.strip() for r in _RECORD_SPLIT.split(content) if r.strip()]
    if not records:
        raise InvalidWebhook("content is empty")
    if "sms_id" in fields:
        sms_id = fields["sms_id"].strip()
        if not sms_id:
            raise InvalidWebhook("sms_id is empty")
        reports = tuple(_delivery(sms_id, record) for record in records)
        return WebhookResult(PROVIDER, reports=reports, ack=webhook_ack())
    replies = tuple(_inbound(record, two_way_code) for record in records)
    return WebhookResult(PROVIDER, replies=replies, ack=webhook_ack())


def _delivery(sms_id: str, record: str) -> DeliveryReport:
    # Section 二 shows "0912xxxxxx 59c4e123 2013-01-01 21:08:07 DELIVRD"; the real form is
    # "phone|id|time|STATUS". The time holds a space, so the spaced form is read from the ends.
    parts = [p.strip() for p in record.split("|")] if "|" in record else record.split()
    if len(parts) < 4 or ("|" in record and len(parts) != 4):
        raise InvalidWebhook("delivery record is not phone|id|time|STATUS")
    number, record_id, status = parts[0], parts[1], parts[-1]
    when = " ".join(parts[2:-1])
    if not number or not record_id or not status:
        raise InvalidWebhook("delivery record has an empty field")
    return DeliveryReport(
        provider=PROVIDER,
        status=status_of(status),
        provider_status=status,
        recipient=number_from_wire(number),
        message_id=sms_id,
        batch_id=sms_id,
        done_at=parse_taipei_any(when, _TIME_FORMATS),
        record_no=record_id,
        raw={"sms_id": sms_id, "content": record, "phone": number, "id": record_id, "time": when},
    )


def _inbound(record: str, two_way_code: str | None) -> InboundMessage:
    if "|" in record:
        parts = record.split("|", 3)
        if len(parts) != 4:
            raise InvalidWebhook("reply record is not phone|id|time|text")
        number, record_id, when, encoded = (p.strip() for p in parts)
    else:
        spaced = _SPACED_REPLY.match(record)
        if spaced is None:
            raise InvalidWebhook("reply record is not phone id time text")
        number, record_id, when, encoded = spaced.groups()
    if not number:
        raise InvalidWebhook("reply record has no phone number")
    text = _strip_code(_reply_text(encoded), two_way_code)
    return InboundMessage(
        provider=PROVIDER,
        sender=number_from_wire(number),
        text=text,
        received_at=parse_taipei_any(when, _TIME_FORMATS),
        provider_id=record_id or None,
        raw={"content": record, "phone": number, "id": record_id, "time": when, "text": encoded},
    )


def _reply_text(encoded: str) -> str:
    """Section 四: the reply is "UTF-8 格式,且經過 URL ENCODE" inside the content field.

    Percent-encoded text is pure ASCII (``+`` is a space, PHP ``urlencode``) and is decoded
    strictly. Text already holding non-ASCII characters came as the document's URL shows
    it, encoded once only, so the outer decoding already produced it: it is taken as is.
    """
    if not encoded.isascii():
        return encoded
    if _BAD_PERCENT.search(encoded):
        raise InvalidWebhook("reply text has a bad percent-escape")
    return decode(unquote_to_bytes(encoded.replace("+", " ")), "content")


def _strip_code(text: str, two_way_code: str | None) -> str:
    # Section 四: replies must start with the account's two-way code ("【03雙向簡訊回傳】");
    # the code and any space typed after it are removed, nothing else.
    if two_way_code is not None:
        if text.startswith(two_way_code):
            return text[len(two_way_code) :].lstrip()
        return text
    if len(text) >= 2 and text[:2].isascii() and text[:2].isdigit():
        return text[2:].lstrip()
    return text
