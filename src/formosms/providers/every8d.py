"""EVERY8D (互動資通) enterprise SMS, HTTP API 2.1 (``every8d-http-api-2.1.txt``).

``Every8d("UID", "PWD")`` sends SMS (1.1) and MMS (1.2) to comma lists of numbers, queries
delivery status by batch id (2.2, 2.3), the balance (3.1), cancels scheduled batches (3.2,
3.3), and ``parse_webhook`` reads the status/reply callback (2.1). Codes, reply formats and
pricing shared with the SOAP API live in ``every8d_codes``.

Quirks and decisions:

* Host: the document's HTTPS host ``oms.every8d.com``; the 2.1.5 edition moved to
  ``api.e8d.tw`` and dedicated customers get their own, so ``base_url`` is configurable.
* Every request is a POST form ("The newer edition says POST only"; 2.1 took both).
* The document gives no recipient limit per request: 1000 is our choice (the status query
  pages by 1000, 2.2), so one ``send`` to more numbers becomes several batches.
* Send option ``callback_url`` goes in ``StatusReportURL`` ("在發送簡訊時填入 StatusReportURL
  值", 2.1); ``record_no`` in ``MR``, echoed by callbacks; ``subject`` in ``SB`` (a note
  that is not sent to the handset).
* EVERY8D has no per-recipient id: each recipient's ``message_id`` is its batch id, the
  same in send results, status reports and callbacks, so (batch id, number) matches them.
* Status rows have 5 TAB columns in 2.1 and 6 (``RECEIVED_TIME``) in 2.1.5: both are read;
  ``done_at`` is RECEIVED_TIME when given, else SEND_TIME.
* MMS: images base64 in ``ATTACHMENT`` (jpg/jpeg/png/gif), Taiwan numbers only, subject
  required (error -303) and ≤ 15 CJK / 95 alphanumeric characters; 1.2 says "圖加文大小 50KB"
  but the 2.1.5 edition and the SOAP document allow 300 KB, which we accept.
* Callbacks are GET with names whose case varies (``BatchID``/``BATCHID``): matched
  case-insensitively; values UTF-8 (Big5 accepted as a fallback). ``STATUS=999`` is a reply.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from decimal import Decimal

from formosms import phone
from formosms.errors import FormosmsError, InvalidRequest, InvalidWebhook, MalformedResponse
from formosms.formdata import decode, split_form
from formosms.model import (
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    SendResult,
    Status,
    WebhookAck,
    WebhookResult,
)
from formosms.providers.base import MessageRef, OutboundMMS, OutboundSMS, Provider, register
from formosms.providers.every8d_codes import (
    ERRORS,
    STATUS,
    batch_ids,
    check_mms,
    check_options_values,
    check_text,
    decimal,
    error_for,
    estimate,
    merge_cancels,
    parse_balance,
    parse_cancel,
    parse_send_reply,
    parse_status_text,
    parse_time,
    retry_minutes,
    wire_time,
)
from formosms.transport import Exchange, HttpRequest, HttpResponse, one

NAME = "every8d"
PAGE_SIZE = 1000  # 2.2: "本查詢功能每次最多回傳 1000 筆資料"
MMS_TYPES = frozenset({"jpg", "jpeg", "png", "gif"})
SMS_PATHS = {
    "send": "/API21/HTTP/sendSMS.ashx",
    "status": "/API21/HTTP/getDeliveryStatus.ashx",
    "cancel": "/API21/HTTP/eraseBooking.ashx",
}
MMS_PATHS = {
    "send": "/API21/HTTP/MMS/sendMMS.ashx",
    "status": "/API21/HTTP/MMS/getDeliveryStatus.ashx",
    "cancel": "/API21/HTTP/MMS/eraseBooking.ashx",
}
CREDIT_PATH = "/API21/HTTP/getCredit.ashx"
ACK = WebhookAck(200, b"", "text/plain")


@register
class Every8d(Provider):
    """EVERY8D over HTTP API 2.1: ``Every8d(uid, password)``; DSN ``every8d://UID:PWD@``."""

    name = NAME
    features = frozenset(
        {
            Feature.SEND,
            Feature.SCHEDULE,
            Feature.VALIDITY,
            Feature.LONG_SMS,
            Feature.MMS,
            Feature.STATUS_QUERY,
            Feature.DELIVERY_CALLBACK,
            Feature.BALANCE,
            Feature.CANCEL,
            Feature.INTERNATIONAL,
        }
    )
    max_recipients = 1000
    default_base_url = "https://oms.every8d.com"
    send_options = frozenset({"subject", "callback_url", "record_no"})
    rate_limit = None
    dsn_options = frozenset()

    def __init__(self, uid: str, password: str, *, base_url: str | None = None, timeout: float = 10.0):
        super().__init__(uid, password, base_url=base_url, timeout=timeout)

    def _auth(self) -> list[tuple[str, str]]:
        return [("UID", self.username), ("PWD", self.password)]

    # -- local checks and pricing ---------------------------------------------------------------
    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        return estimate(self.name, recipients, text)

    def validate(self, message: OutboundSMS) -> None:
        check_options_values(message.options, self.name)
        check_text(message.text, self.name)

    # -- send -----------------------------------------------------------------------------------
    def build_send(self, message: OutboundSMS, recipients: Sequence[str]) -> HttpRequest:
        """1.1 sendSMS.ashx: UID, PWD, SB, MSG, DEST (comma list), ST, [RETRYTIME, MR, StatusReportURL]."""
        options = message.options
        form = [
            *self._auth(),
            ("SB", str(options.get("subject", ""))),
            ("MSG", message.text),
            ("DEST", ",".join(recipients)),
            ("ST", wire_time(message.schedule_at)),
        ]
        if message.validity is not None:
            form.append(("RETRYTIME", retry_minutes(message.validity)))
        if options.get("record_no") not in (None, ""):
            form.append(("MR", str(options["record_no"])))
        if options.get("callback_url"):
            form.append(("StatusReportURL", str(options["callback_url"])))
        return self.request(SMS_PATHS["send"], method="POST", form=form, operation="sendSMS")

    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        return (
            yield from self.batched_send(
                message.recipients,
                lambda group: self.build_send(message, group),
                lambda group, response: parse_send_reply(response.text, group, self.name),
            )
        )

    def build_mms(self, message: OutboundMMS, recipients: Sequence[str], kind: str) -> HttpRequest:
        """1.2 sendMMS.ashx: as sendSMS plus ATTACHMENT (base64) and TYPE."""
        form = [
            *self._auth(),
            ("SB", message.subject),
            ("MSG", message.text),
            ("DEST", ",".join(recipients)),
            ("ST", wire_time(message.schedule_at)),
        ]
        if message.validity is not None:
            form.append(("RETRYTIME", retry_minutes(message.validity)))
        form += [("ATTACHMENT", base64.b64encode(message.attachment.data).decode("ascii")), ("TYPE", kind)]
        return self.request(MMS_PATHS["send"], method="POST", form=form, operation="sendMMS")

    def send_mms(self, message: OutboundMMS) -> Exchange[SendResult]:
        self.require(Feature.MMS)
        kind = check_mms(message, self.name, types=MMS_TYPES)
        return (
            yield from self.batched_send(
                message.recipients,
                lambda group: self.build_mms(message, group, kind),
                lambda group, response: parse_send_reply(response.text, group, self.name),
            )
        )

    # -- status, balance, cancel ----------------------------------------------------------------
    def build_status(self, batch_id: str, page: int, *, mms: bool = False) -> HttpRequest:
        """2.2/2.3 getDeliveryStatus.ashx: BID and PNO ("" for the first page, then "2", "3"…)."""
        form = [*self._auth(), ("BID", batch_id), ("PNO", "" if page <= 1 else str(page))]
        path = (MMS_PATHS if mms else SMS_PATHS)["status"]
        return self.request(path, method="POST", form=form, operation="getDeliveryStatus")

    def status(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[list[DeliveryReport]]:
        """Every row of each batch, all pages (batches concurrently, pages in turn)."""
        self.require(Feature.STATUS_QUERY)
        batches = batch_ids(refs, self.name)
        got: dict[str, list[DeliveryReport]] = {b: [] for b in batches}
        page = dict.fromkeys(batches, 1)
        pending = list(batches)
        while pending:
            outcomes = yield [self.build_status(b, page[b], mms=mms) for b in pending]
            following = []
            for batch, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, FormosmsError):
                    raise outcome
                total, rows = parse_status_text(outcome.text, batch, self.name)
                got[batch] += rows
                if rows and len(got[batch]) < total and page[batch] * PAGE_SIZE < total:
                    page[batch] += 1
                    following.append(batch)
            pending = following
        return [report for b in batches for report in got[b]]

    def balance(self) -> Exchange[Decimal]:
        """3.1 getCredit.ashx -> ``2310.00``."""
        self.require(Feature.BALANCE)
        response = yield from one(self.request(CREDIT_PATH, method="POST", form=self._auth(), operation="getCredit"))
        return parse_balance(response.text, self.name)

    def build_cancel(self, batch_id: str, *, mms: bool = False) -> HttpRequest:
        path = (MMS_PATHS if mms else SMS_PATHS)["cancel"]
        return self.request(path, method="POST", form=[*self._auth(), ("BID", batch_id)], operation="eraseBooking")

    def cancel(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[CancelResult]:
        """3.2/3.3 eraseBooking.ashx per batch; ``NotFound`` when no batch had anything scheduled."""
        self.require(Feature.CANCEL)
        batches = batch_ids(refs, self.name)
        if not batches:
            raise InvalidRequest("no batch id to cancel", field="batch_id", provider=self.name)
        outcomes = yield [self.build_cancel(b, mms=mms) for b in batches]
        results: list[CancelResult | FormosmsError] = []
        for batch, outcome in zip(batches, outcomes, strict=True):
            try:
                results.append(_cancel_outcome(outcome, batch, self.name))
            except FormosmsError as exc:
                results.append(exc)
        return merge_cancels(self.name, results)


def _cancel_outcome(outcome: HttpResponse | FormosmsError, batch: str, provider: str) -> CancelResult:
    if isinstance(outcome, FormosmsError):
        raise outcome
    return parse_cancel(outcome.text, batch, provider)


# -- callbacks (2.1) ----------------------------------------------------------------------------


def parse_webhook(*, method: str, query: bytes, body: bytes, content_type: str, provider: str = NAME) -> WebhookResult:
    """The status/reply callback: ``?BatchID=…&RM=…&RT=…&STATUS=…&SM=…&MR=…[&USERID=…]``.

    ``STATUS=999`` is a reply (``InboundMessage``); any other value a ``DeliveryReport``.
    EVERY8D expects HTTP 200 and reads no body ("若連線不成功(HTTP 連線狀態碼非 200)…Retry").
    """
    try:
        return _parse_webhook(method, query, body, content_type, provider)
    except InvalidWebhook:
        raise
    except (ValueError, TypeError, LookupError, ArithmeticError) as exc:
        raise InvalidWebhook(f"unreadable callback ({type(exc).__name__})") from None


def _text(value: bytes, name: str) -> str:
    try:
        return decode(value, name)
    except InvalidWebhook:
        return decode(value, name, "cp950")  # Big5, the local legacy charset


def _parse_webhook(method: str, query: bytes, body: bytes, content_type: str, provider: str) -> WebhookResult:
    verb = method.upper()
    if verb not in ("GET", "POST"):
        raise InvalidWebhook(f"method {verb} not expected (EVERY8D calls with GET)")
    pairs = split_form(query)
    kind = content_type.lower()
    if verb == "POST" and body and (not kind or "x-www-form-urlencoded" in kind):
        pairs += split_form(body)
    raw: dict[str, str] = {}
    fields: dict[str, str] = {}
    for key, value in pairs:
        text = _text(value, key)
        raw.setdefault(key, text)
        fields.setdefault(key.lower(), text.strip())
    status = fields.get("status", "")
    number = fields.get("rm", "")
    if not status:
        raise InvalidWebhook("STATUS missing")
    if not number:
        raise InvalidWebhook("RM missing")
    batch = fields.get("batchid") or None
    record = fields.get("mr") or None
    when = parse_time(fields.get("rt", ""))
    if status == "999":
        reply = InboundMessage(
            provider=provider,
            sender=phone.from_wire(number),
            text=raw_value(raw, "sm"),
            received_at=when,
            reply_to=batch or record,
            raw=raw,
        )
        return WebhookResult(provider=provider, replies=(reply,), ack=ACK)
    charge = fields.get("charge", "")
    try:
        cost = decimal(charge, what="CHARGE", provider=provider) if charge else None
    except MalformedResponse:
        cost = None
    report = DeliveryReport(
        provider=provider,
        status=STATUS.get(status, Status.UNKNOWN),
        provider_status=status,
        recipient=phone.from_wire(number),
        message_id=batch,
        batch_id=batch,
        done_at=when,
        cost=cost,
        record_no=record,
        raw=raw,
    )
    return WebhookResult(provider=provider, reports=(report,), ack=ACK)


def raw_value(raw: dict[str, str], name: str) -> str:
    """A field by case-insensitive name, unstripped (reply text keeps its spaces)."""
    return next((v for k, v in raw.items() if k.lower() == name), "")


def webhook_ack() -> WebhookAck:
    """HTTP 200, empty ``text/plain``: anything else makes EVERY8D retry up to 10 times."""
    return ACK


__all__ = [
    "ERRORS",
    "STATUS",
    "Every8d",
    "batch_ids",
    "error_for",
    "parse_balance",
    "parse_cancel",
    "parse_send_reply",
    "parse_status_text",
    "parse_webhook",
    "webhook_ack",
]
