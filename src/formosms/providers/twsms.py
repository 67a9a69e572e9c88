"""TwSMS (台灣簡訊, www.twsms.com): the JSON API 4.0 (20211130).

Follows ``shared/specs/twsms-json-api-4.0.txt`` and the TwSMS section of
``provider-notes.md``. One number per request (``sms_send.php`` takes one ``mobile``),
so a send to N numbers is N requests yielded together; ``AsyncClient`` runs them with
bounded concurrency. Every request here is a POST with a form body (§2: "GET 或 POST"):
the password and the text stay out of URLs (and so out of proxy and access logs), and a
765-character UTF-8 text needs no 8 KB URL.

Quirks and decisions:

- Business errors come with HTTP 200 and ``code != "00000"`` (§6, tables in
  ``twsms_codes``). ``00001`` (no final status yet) and ``00310`` (reservation not sent
  yet) are normal answers to a status query: submitted / scheduled.
- Numbers: ``09xxxxxxxx`` in Taiwan, country code + number without ``+`` abroad (§3).
  International costs 3 points per message, Taiwan 1 (§3 mobile row); long SMS cannot
  go abroad (§2 note 5, code 00120).
- Length (§3 message row): "English" 160 / 153 per part / 765 at most, "Chinese" 70 /
  67 / 335. English is read as ASCII that GSM-7 carries; anything else counts as Chinese,
  so cost is never under-estimated. Long SMS is automatic (``lmsg=N`` turns it off).
  Emoji are refused (00180); the text is sent as UTF-8 with ``\\n`` newlines (§2 note 6).
- ``sendtime`` is ``YYYYMMDDHHII`` Taiwan time (minutes: seconds are dropped);
  ``expirytime`` 300–28800 s per this document (the XML edition says up to 86400).
- ``rate_limit`` is the document's 500 requests/s (§1); the XML edition of the same API
  says 40–50/s, so treat 500 as optimistic.
- ``drurl`` is probed at send time and must answer HTTP 200 (§3, code 00170): the
  callback endpoint answers any request without ``smsresp`` with 200 and no events.
- The callback (§4 主動式) is a GET with ``smsresp`` = URL-encoded JSON using ``downtime``;
  the query reply uses ``donetime`` (both accepted). ``msgid`` is a JSON number in
  replies and a string in the callback sample (both accepted).
- Status and cancel are one ``sms_query.php`` request per message (``mobile`` + ``msgid``).
  A ``00300`` (msgid not found) is asked once more with ``outrange=Y`` (records older
  than three days). Cancel (``delttime=Y``) counts only a ``00000`` that is not a plain
  status answer; ``00310``/``00001`` after a cancel mean it was NOT deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar
from urllib.parse import unquote_to_bytes

from formosms import phone
from formosms.errors import (
    ConfigurationError,
    FormosmsError,
    InvalidRequest,
    InvalidSchedule,
    InvalidWebhook,
    MalformedResponse,
    NotFound,
)
from formosms.formdata import decode, split_form
from formosms.model import (
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    MessageResult,
    SendResult,
    Status,
    WebhookAck,
    WebhookResult,
)
from formosms.providers.base import BatchOutcome, MessageRef, OutboundSMS, Provider, register, to_decimal
from formosms.providers.twsms_codes import (
    ERRORS,
    INTERNATIONAL_FACTOR,
    NO_REPLIES,
    NOT_SENT_YET,
    OK,
    PENDING,
    PROVIDER,
    STATUS,
    VALIDITY_RANGE,
    check_options,
    check_text,
    error_for,
    text_info,
)
from formosms.timefmt import TAIPEI, parse_taipei
from formosms.transport import Exchange, HttpRequest, HttpResponse, Outcome, one

__all__ = [
    "ERRORS",
    "STATUS",
    "TwSMS",
    "error_for",
    "parse_balance",
    "parse_cancel",
    "parse_replies",
    "parse_send",
    "parse_status",
    "parse_webhook",
    "text_info",
    "webhook_ack",
]

SEND_PATH = "/json/sms_send.php"
QUERY_PATH = "/json/sms_query.php"
MO_PATH = "/json/smsmo_query.php"

TIME_FORMAT = "%Y%m%d%H%M%S"  # donetime / downtime / mo date (§5, §7)
SENDTIME_FORMAT = "%Y%m%d%H%M"  # sendtime, 12 digits (§3)
MAX_SMSRESP = 16384

_TWO_WAY_CODE = re.compile(r"\d{5}")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")

P = ParamSpec("P")
T = TypeVar("T")


# -- text, numbers, times ------------------------------------------------------------------


def wire_text(text: str) -> str:
    """The text as sent: newlines are ``\\n`` (§2 note 6)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def wire_number(number: str) -> str:
    """``+886912345678`` -> ``0912345678``; ``+8613512345678`` -> ``8613512345678`` (§3)."""
    e164 = phone.normalize(number)
    return phone.national(e164) if phone.is_taiwan(e164) else phone.digits(e164)


def send_fields(recipient: str, message: OutboundSMS) -> list[tuple[str, str]]:
    """The ``sms_send.php`` fields after username/password, in the document's order (§3)."""
    fields: list[tuple[str, str]] = []
    if message.schedule_at is not None:
        fields.append(("sendtime", message.schedule_at.astimezone(TAIPEI).strftime(SENDTIME_FORMAT)))
    if message.validity is not None:
        fields.append(("expirytime", str(int(message.validity.total_seconds()))))
    fields += [("mobile", wire_number(recipient)), ("message", wire_text(message.text))]
    url = message.options.get("callback_url")
    if url:
        fields.append(("drurl", url))
        if message.options.get("callback_check") is False:
            fields.append(("drurl_check", "N"))
    if message.options.get("long") is False:
        fields.append(("lmsg", "N"))
    return fields


# -- replies -------------------------------------------------------------------------------


def _loads(text: str) -> dict[str, Any] | None:
    """A JSON object, tolerating a BOM, text around it and trailing commas; None if not."""
    body = text.strip().lstrip("\ufeff")
    candidates = [body]
    start, end = body.find("{"), body.rfind("}")
    if 0 <= start < end:
        candidates.append(body[start : end + 1])
    candidates.append(_TRAILING_COMMA.sub(r"\1", candidates[-1]))
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        return data if isinstance(data, dict) else None
    return None


def _str(value: object) -> str | None:
    """A JSON string or number as text (``msgid`` comes both ways); None otherwise."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return None


def _load(text: str, what: str) -> tuple[dict[str, Any], str]:
    """The reply object and its ``code`` (a number is padded back to five digits)."""
    data = _loads(text)
    if data is None:
        raise MalformedResponse(f"{what} reply is not a JSON object", body=text, provider=PROVIDER)
    code = _str(data.get("code"))
    if not code:
        raise MalformedResponse(f"{what} reply has no code", body=text, provider=PROVIDER)
    return data, code.zfill(5) if code.isdigit() else code


def _fail(data: dict[str, Any], code: str, recipient: str | None = None) -> FormosmsError:
    return error_for(code, _str(data.get("text")) or "", recipient=recipient)


def _time(data: dict[str, Any], *names: str) -> datetime | None:
    for name in names:
        value = _str(data.get(name))
        if value:
            return parse_taipei(value, TIME_FORMAT)
    return None


def parse_send(text: str, recipient: str) -> MessageResult:
    """``{"code":"00000","text":"Success","msgid":222160591}`` (§3) -> the accepted message."""
    data, code = _load(text, "send")
    if code != OK:
        raise _fail(data, code, recipient)
    msgid = _str(data.get("msgid"))
    if not msgid:
        raise MalformedResponse("send reply has no msgid", body=text, provider=PROVIDER)
    return MessageResult(recipient=recipient, message_id=msgid, provider_status=code)


def parse_status(text: str, *, recipient: str | None, message_id: str | None) -> DeliveryReport:
    """A ``sms_query.php`` reply (§4) -> one report; ``00001`` submitted, ``00310`` scheduled."""
    data, code = _load(text, "status")
    if code in (PENDING, NOT_SENT_YET):
        return DeliveryReport(PROVIDER, STATUS[code], code, recipient=recipient, message_id=message_id, raw=data)
    if code != OK:
        raise _fail(data, code, recipient)
    word = _str(data.get("statustext"))
    if not word:
        raise MalformedResponse("status reply has no statustext", body=text, provider=PROVIDER)
    return DeliveryReport(
        PROVIDER,
        STATUS.get(word.upper(), Status.UNKNOWN),
        word,
        recipient=recipient,
        message_id=_str(data.get("msgid")) or message_id,
        done_at=_time(data, "donetime", "downtime"),
        raw=data,
    )


def parse_cancel(text: str) -> bool:
    """A ``delttime=Y`` reply: True when the reservation was deleted."""
    data, code = _load(text, "cancel")
    if code in (PENDING, NOT_SENT_YET):
        return False  # a status answer: still pending or already sent, not deleted
    if code != OK:
        raise _fail(data, code)
    word = _str(data.get("statustext"))
    return not word or word.upper() == "DELETED"  # a DELIVRD etc. says it had already gone


def parse_balance(text: str) -> Decimal:
    """``checkpoint=Y`` reply -> the remaining points in ``point`` (provider-notes)."""
    data, code = _load(text, "balance")
    if code != OK:
        raise _fail(data, code)
    if data.get("point") is None or isinstance(data.get("point"), bool):
        raise MalformedResponse("balance reply has no point", body=text, provider=PROVIDER)
    points = to_decimal(data["point"], provider=PROVIDER, what="point", body=text)
    if not points.is_finite():
        raise MalformedResponse("point is not a number", body=text, provider=PROVIDER)
    return points


def parse_replies(text: str) -> list[InboundMessage]:
    """``smsmo_query.php`` reply (§5) -> replies; ``00410`` (no mo data) -> ``[]``."""
    data, code = _load(text, "reply query")
    if code == NO_REPLIES:
        return []
    if code != OK:
        raise _fail(data, code)
    items = data.get("moResp") or []
    if isinstance(items, dict):  # PHP encodes a non-list array as an object
        items = list(items.values())
    if not isinstance(items, list):
        raise MalformedResponse("moResp is not a list", body=text, provider=PROVIDER)
    out: list[InboundMessage] = []
    for item in items:
        mobile = _str(item.get("mobile")) if isinstance(item, dict) else None
        if not isinstance(item, dict) or not mobile:
            raise MalformedResponse("moResp entry has no mobile", body=text, provider=PROVIDER)
        message = item.get("message")
        out.append(
            InboundMessage(
                PROVIDER,
                sender=phone.from_wire(mobile),
                text=message if isinstance(message, str) else _str(message) or "",
                received_at=_time(item, "date"),
                provider_id=_str(item.get("seq")),
                raw=item,
            )
        )
    return out


# -- callback ------------------------------------------------------------------------------

ACK = WebhookAck(200, b"OK", "text/plain")


def webhook_ack() -> WebhookAck:
    """The document names no answer; TwSMS only checks for HTTP 200 (§3 drurl row)."""
    return ACK


def _smsresp(query: bytes, body: bytes) -> bytes | None:
    if body.lstrip()[:1] == b"{":  # a JSON body posted as is
        return body.strip()
    for source in (query, body):
        for name, value in split_form(source):
            if name.lower() == "smsresp" and value.strip():
                return value.strip()
    return None


def parse_webhook(*, method: str, query: bytes, body: bytes, content_type: str) -> WebhookResult:
    """§4 主動式: ``GET ?smsresp=<URL-encoded JSON>`` -> one ``DeliveryReport``.

    POST form bodies (and a bare JSON body) are accepted too. A request without
    ``smsresp`` is TwSMS's drurl probe: 200 and no events.
    """
    raw = _smsresp(query, body)
    if raw is None:
        return WebhookResult(PROVIDER, ack=ACK)
    if len(raw) > MAX_SMSRESP:
        raise InvalidWebhook("smsresp is too large")
    text = decode(raw, "smsresp").strip()
    if text[:3].upper() == "%7B":  # encoded twice ("收到 smsresp 請記得 urldecode 解碼")
        text = decode(unquote_to_bytes(text), "smsresp").strip()
    data = _loads(text)
    if data is None:
        raise InvalidWebhook("smsresp is not a JSON object")
    msgid = _str(data.get("msgid"))
    word = _str(data.get("statustext"))
    if not msgid:
        raise InvalidWebhook("smsresp has no msgid")
    if not word:
        raise InvalidWebhook("smsresp has no statustext")
    mobile = _str(data.get("mobile"))
    report = DeliveryReport(
        PROVIDER,
        STATUS.get(word.upper(), Status.UNKNOWN),
        word,
        recipient=phone.from_wire(mobile) if mobile else None,
        message_id=msgid,
        done_at=_time(data, "downtime", "donetime"),
        raw=data,
    )
    return WebhookResult(PROVIDER, reports=(report,), ack=ACK)


# -- the provider --------------------------------------------------------------------------


@register
class TwSMS(Provider):
    """TwSMS JSON API 4.0. ``two_way_code``: the account's 5-digit ``snumber`` for replies.

    ``rate_limit`` is the document's 500 requests/s; the XML edition says 40–50/s.
    """

    name = "twsms"
    features = frozenset(
        {
            Feature.SEND,
            Feature.SCHEDULE,
            Feature.VALIDITY,
            Feature.LONG_SMS,
            Feature.REPLIES_POLL,
            Feature.STATUS_QUERY,
            Feature.DELIVERY_CALLBACK,
            Feature.BALANCE,
            Feature.CANCEL,
            Feature.INTERNATIONAL,
        }
    )
    max_recipients = 1
    default_base_url = "https://api.twsms.com"
    send_options = frozenset({"callback_url", "callback_check", "long"})
    rate_limit = 500.0
    dsn_options = frozenset({"two_way_code"})

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
        if two_way_code and not _TWO_WAY_CODE.fullmatch(two_way_code):
            raise ConfigurationError("twsms: two_way_code must be 5 digits (the snumber)")
        self.two_way_code = two_way_code or None

    # -- requests ----------------------------------------------------------------------------
    def _auth(self) -> list[tuple[str, str]]:
        return [("username", self.username), ("password", self.password)]

    def _post(self, path: str, fields: list[tuple[str, str]], operation: str) -> HttpRequest:
        return self.request(path, method="POST", form=[*self._auth(), *fields], operation=operation)

    def build_send(self, recipient: str, message: OutboundSMS) -> HttpRequest:
        return self._post(SEND_PATH, send_fields(recipient, message), "send")

    def build_query(self, ref: MessageRef, *, cancel: bool = False, outrange: bool = False) -> HttpRequest:
        if not ref.recipient:
            raise InvalidRequest(
                "TwSMS needs the recipient with the msgid (use the SendResult or MessageRef)",
                field="recipient",
                provider=self.name,
            )
        if not ref.message_id:
            raise InvalidRequest("TwSMS needs the msgid", field="message_id", provider=self.name)
        fields = [("delttime", "Y")] if cancel else []
        fields += [("mobile", wire_number(ref.recipient)), ("msgid", ref.message_id)]
        if outrange:
            fields.append(("outrange", "Y"))
        return self._post(QUERY_PATH, fields, "cancel" if cancel else "status")

    def build_balance(self) -> HttpRequest:
        return self._post(QUERY_PATH, [("checkpoint", "Y")], "balance")

    def build_replies(self, *, day: date | None = None, code: str | None = None) -> HttpRequest:
        snumber = code or self.two_way_code
        if not snumber or not _TWO_WAY_CODE.fullmatch(snumber):
            raise InvalidRequest(
                "TwSMS replies need the 5-digit two-way code (code= or two_way_code=)",
                field="code",
                provider=self.name,
            )
        fields = [("snumber", snumber)]
        if day is not None:  # omitted: the server's today (§5)
            if isinstance(day, datetime):
                day = day.astimezone(TAIPEI).date() if day.tzinfo else day.date()
            fields.append(("sdate", day.isoformat()))
        return self._post(MO_PATH, fields, "replies")

    # -- parsing with secrets scrubbed ---------------------------------------------------------
    def _guard(self, parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return parse(*args, **kwargs)
        except FormosmsError as exc:
            clean = self.redact(exc.message)
            if clean != exc.message:
                exc.message, exc.args = clean, (clean,)
            if isinstance(exc, MalformedResponse):
                exc.body = self.redact(exc.body)
            raise

    # -- operations ------------------------------------------------------------------------
    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        info = text_info(wire_text(text))
        points = sum(info.parts * (1 if phone.is_taiwan(r) else INTERNATIONAL_FACTOR) for r in recipients)
        return Estimate(self.name, info.encoding, info.parts, Decimal(points), len(recipients), info.characters)

    def validate(self, message: OutboundSMS) -> None:
        self.check_options(message.options)
        check_options(message.options)
        check_text(wire_text(message.text), message.recipients, long=message.options.get("long", True))
        if message.validity is not None:
            seconds = message.validity.total_seconds()
            low, high = VALIDITY_RANGE
            if not low <= seconds <= high:
                raise InvalidSchedule(
                    f"TwSMS validity is {low}–{high} seconds, got {seconds:g}",
                    field="validity",
                    provider=self.name,
                )

    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        self.validate(message)

        def parse(group: tuple[str, ...], response: HttpResponse) -> BatchOutcome:
            text = response.text
            return BatchOutcome([self._guard(parse_send, text, group[0])], raw=text)

        return (
            yield from self.batched_send(message.recipients, lambda group: self.build_send(group[0], message), parse)
        )

    def _each(
        self, refs: Sequence[MessageRef], cancel: bool, parse: Callable[[MessageRef, str], T]
    ) -> Exchange[list[T | FormosmsError]]:
        """One query per ref, all at once; refs not found are asked again with outrange=Y."""
        requests = [self.build_query(ref, cancel=cancel) for ref in refs]
        if not requests:
            return []
        outcomes: list[Outcome] = yield requests
        results = [self._settle(ref, o, parse) for ref, o in zip(refs, outcomes, strict=True)]
        again = [i for i, r in enumerate(results) if isinstance(r, NotFound)]
        if again:
            outcomes = yield [self.build_query(refs[i], cancel=cancel, outrange=True) for i in again]
            for i, outcome in zip(again, outcomes, strict=True):
                results[i] = self._settle(refs[i], outcome, parse)
        return results

    def _settle(self, ref: MessageRef, outcome: Outcome, parse: Callable[[MessageRef, str], T]) -> T | FormosmsError:
        if isinstance(outcome, FormosmsError):
            return outcome
        try:
            return self._guard(parse, ref, outcome.text)
        except FormosmsError as exc:
            return exc

    def status(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[list[DeliveryReport]]:
        """Reports in ref order. Any error but "not found" raises (queries are free to
        repeat); refs not found become ``Status.UNKNOWN`` reports with provider_status
        ``00300``, unless none was found at all, which raises ``NotFound``."""
        if mms:
            self.require(Feature.MMS)
        results = yield from self._each(
            refs,
            False,
            lambda ref, text: parse_status(text, recipient=ref.recipient, message_id=ref.message_id),
        )
        missing = [r for r in results if isinstance(r, NotFound)]
        for result in results:
            if isinstance(result, FormosmsError) and not isinstance(result, NotFound):
                raise result
        if missing and len(missing) == len(results):
            raise missing[0]
        return [
            r
            if isinstance(r, DeliveryReport)
            else DeliveryReport(
                self.name, Status.UNKNOWN, r.code or "", recipient=ref.recipient, message_id=ref.message_id
            )
            for ref, r in zip(refs, results, strict=True)
        ]

    def cancel(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[CancelResult]:
        """``delttime=Y`` per ref. Raises the first error only when nothing was canceled."""
        if mms:
            self.require(Feature.MMS)
        results = yield from self._each(
            refs, True, lambda ref, text: (parse_cancel(text), f"{ref.message_id}: {text.strip()}")
        )
        canceled = sum(1 for r in results if isinstance(r, tuple) and r[0])
        errors = [r for r in results if isinstance(r, FormosmsError)]
        if errors and not canceled:
            raise errors[0]
        lines = [
            r[1] if isinstance(r, tuple) else f"{ref.message_id}: {r!r}" for ref, r in zip(refs, results, strict=True)
        ]
        return CancelResult(self.name, canceled=canceled, raw="\n".join(lines))

    def balance(self) -> Exchange[Decimal]:
        response = yield from one(self.build_balance())
        return self._guard(parse_balance, response.text)

    def replies(self, *, day: date | None = None, code: str | None = None) -> Exchange[list[InboundMessage]]:
        response = yield from one(self.build_replies(day=day, code=code))
        return self._guard(parse_replies, response.text)
