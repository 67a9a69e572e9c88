"""SMSGo (簡訊購, HOLDEN International): HTTP GET API v6.4 under ``/sms_gw/``.

Follows ``shared/specs/smsgo-api.md``, the clean reading of the v6.4 document (the OCR
scan ``smsgo-api-6.4.ocr.txt`` is mostly unreadable; where they differ it is noted here).

Wire facts and decisions:

* Every field is UTF-8 percent-encoded once, whatever ``encoding`` says (the official
  example sends 簡訊測試 as ``%E7%B0%A1…`` with ``encoding=BIG5``). ``password`` may be the
  account's API key. Taiwan numbers go as ``09xxxxxxxx``, others as ``+<cc><number>``
  (``%2B86…`` on the wire). Up to 50 numbers per request (``dstaddr`` comma list); the
  request gets ONE msgid, used as the batch id and every recipient's message id.
* ``encoding`` is chosen so SMSGo never truncates: "BIG5/ASCII/UCS2 are single-part only:
  text beyond the limit is truncated by SMSGo" (§1 note 1). Pure ASCII → ``ASCII`` (160),
  else Big5-encodable → ``BIG5`` (70), else ``UCS2`` (70); longer → ``LASCII``/``LBIG5``/
  ``LUCS2`` (≤ 330 characters). International and ``replyurl`` sends may only use the three
  single-part encodings (§1 notes 4–5), Chinese to China must use ``UCS2``: text that does
  not fit is refused locally. One encoding serves the whole send (UCS2 carries everything
  BIG5 does), so a mixed Taiwan/China send is never split by destination.
* Replies are requested as ``rtype=JSON``; the plain ``key=value`` form (``\\n`` or
  ``\\r\\n``, spaces around values) is parsed too. Errors come with HTTP 200 and a negative
  ``statuscode`` (table 1, ``smsgo_codes.ERRORS``).
* Cost: one point per part per recipient; ``replyurl`` adds 1 point per 10 messages. The
  document lists no international multiplier, so none is applied.
* Where the OCR scan and the clean reading differ, the clean reading wins: the scan's
  samples use ``http://ssl.smsgo.com.tw`` (replaced by ``https://www`` in v6.1), print the
  query JSON as ``…},1}}`` (a trailing comma: parsed leniently), and show
  ``msgid= 100101121234567`` / ``msgid=…567 &statusstr`` with stray spaces (trimmed).
* ``www2.smsgo.com.tw`` is a documented backup host for sends; ``api.smsgo.com.tw`` (v6.3)
  another host: pass either as ``base_url``. The FAQ says sent messages cannot be recalled:
  ``cancel`` is for scheduled (``dlvtime``) sends.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_from_bytes

from formosms import phone
from formosms.errors import (
    FormosmsError,
    InvalidRequest,
    InvalidWebhook,
    MalformedResponse,
    Rejected,
)
from formosms.formdata import split_form
from formosms.model import (
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    MessageResult,
    SendResult,
    WebhookAck,
    WebhookResult,
)
from formosms.providers.base import (
    BatchOutcome,
    MessageRef,
    OutboundSMS,
    Provider,
    register,
    to_decimal,
)
from formosms.providers.smsgo_codes import (
    ENCODINGS,
    ERRORS,
    PROVIDER,
    STATUS,
    air_encoding,
    choose_encoding,
    error_for,
    normalize_code,
    parts_of,
    status_of,
)
from formosms.timefmt import TAIPEI, parse_taipei_any
from formosms.transport import Exchange, HttpRequest, HttpResponse, Outcome, one

__all__ = [
    "ERRORS",
    "STATUS",
    "SMSGo",
    "SendOptions",
    "choose_encoding",
    "error_for",
    "parse_balance",
    "parse_cancel",
    "parse_query",
    "parse_send",
    "parse_webhook",
    "send_fields",
    "webhook_ack",
]

_MSGID = re.compile(r"\d{1,30}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


# -- options and encoding ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendOptions:
    """The ``Client.send`` keyword options SMSGo takes, checked."""

    callback_url: str | None = None
    flash: bool = False
    wap_url: str | None = None
    reply_url: str | None = None
    reply_days: int | None = None
    encoding: str | None = None

    @classmethod
    def parse(cls, options: dict[str, Any]) -> SendOptions:
        def url(name: str, *, web: bool = True, limit: int = 2000) -> str | None:
            value = options.get(name)
            if value is None:
                return None
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise InvalidRequest(f"{name} must be a URL of 1 to {limit} characters", field=name)
            if web and not value.lower().startswith(("http://", "https://")):
                raise InvalidRequest(f"{name} must be an http(s) URL", field=name)
            return value

        flash = options.get("flash")
        flash = False if flash is None else flash
        if not isinstance(flash, bool):
            raise InvalidRequest("flash must be True or False", field="flash")
        reply_url = url("reply_url", limit=300)  # "at most 300 characters" (§1 replyurl)
        days = options.get("reply_days")
        if days is not None:
            if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 30:
                raise InvalidRequest("reply_days must be a whole number from 1 to 30", field="reply_days")
            if reply_url is None:
                raise InvalidRequest("reply_days needs reply_url", field="reply_days")
        encoding = options.get("encoding")
        if encoding is not None:
            if not isinstance(encoding, str) or encoding.strip().upper() not in ENCODINGS:
                raise InvalidRequest(f"encoding must be one of {', '.join(ENCODINGS)}", field="encoding")
            encoding = encoding.strip().upper()
        # The document's PUSH example sends ``wapurl=www.test.com``: no scheme required.
        return cls(url("callback_url"), flash, url("wap_url", web=False), reply_url, days, encoding)

    def encoding_for(self, text: str, recipients: Sequence[str], *, push_limit: bool = True) -> str:
        """One encoding for the whole send (UCS2 carries whatever BIG5 does, so a mixed
        Taiwan/China send needs no split by destination)."""
        return choose_encoding(
            text,
            international=not all(phone.is_taiwan(r) for r in recipients),
            china=any(phone.is_china(r) for r in recipients),
            flash=self.flash,
            wap_url=self.wap_url,
            reply=self.reply_url is not None,
            explicit=self.encoding,
            push_limit=push_limit,
        )


# -- requests ------------------------------------------------------------------------------------


def wire_number(e164: str) -> str:
    """``+886912345678`` -> ``0912345678``; others keep ``+`` (``%2B86…`` once encoded)."""
    return phone.national(e164) if phone.is_taiwan(e164) else "+" + phone.digits(e164)


def send_fields(
    recipients: Sequence[str],
    text: str,
    encoding: str,
    options: SendOptions,
    schedule_at: datetime | None = None,
) -> list[tuple[str, str]]:
    """The ``sendsms.aspx`` fields after the credentials, raw (encoded once by the transport)."""
    fields = [
        ("dstaddr", ",".join(wire_number(r) for r in recipients)),
        ("encoding", encoding),
        ("smbody", text),
    ]
    if schedule_at is not None:
        fields.append(("dlvtime", schedule_at.astimezone(TAIPEI).strftime("%Y/%m/%d %H:%M:%S")))
    if options.wap_url is not None:
        # smbody is the push title, UTF-8 like every field. (The scan's PUSH example shows
        # ``smbody=%7c%21%8a%0a%00%23%00%40``, OCR debris; the clean reading: the title.)
        fields.append(("wapurl", options.wap_url))
    if options.reply_url is not None:
        fields.append(("replyurl", options.reply_url))
        if options.reply_days is not None:
            fields.append(("replydays", str(options.reply_days)))
    if options.callback_url is not None:
        fields.append(("response", options.callback_url))
    fields.append(("rtype", "JSON"))
    return fields


# -- replies -------------------------------------------------------------------------------------


def _malformed(what: str, body: str) -> MalformedResponse:
    return MalformedResponse(f"unreadable {what} reply", body=body, provider=PROVIDER)


def _records(data: Any, body: str, depth: int = 0) -> list[dict[str, str]]:
    """``{"result": {...}}`` / ``{"results": {"result": [...]}}`` -> flat records, keys lowered."""
    if depth > 4:
        raise _malformed("JSON", body)
    if isinstance(data, list):
        return [r for item in data for r in _records(item, body, depth + 1)]
    if not isinstance(data, dict):
        raise _malformed("JSON", body)
    lowered = {str(k).strip().lower(): v for k, v in data.items()}
    for key in ("results", "result"):
        if key in lowered:
            return _records(lowered[key], body, depth + 1)
    scalars = {k: v for k, v in lowered.items() if not isinstance(v, dict | list)}
    return [{k: "" if v is None else str(v).strip() for k, v in scalars.items()}]


def _json_records(text: str) -> list[dict[str, str]]:
    data: Any = None
    # The query sample ends ``},]}}``: a trailing comma, not JSON. Retry without it.
    for candidate in (text, re.sub(r",\s*([\]}])", r"\1", text)):
        try:
            data = json.loads(candidate, parse_int=str, parse_float=str)
        except (ValueError, RecursionError):
            continue
        return _records(data, text)
    raise _malformed("JSON", text)


def reply_fields(body: str) -> dict[str, str]:
    """One record from a JSON reply or plain ``key=value`` lines (``\\n`` or ``\\r\\n``)."""
    text = body.strip().lstrip("\ufeff")
    if text.startswith("{"):
        records = _json_records(text)
        if not records:
            raise _malformed("JSON", body)
        return records[0]
    fields: dict[str, str] = {}
    for line in re.split(r"\r\n|\n|\r", text):
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields.setdefault(key.strip().lower(), value.strip())
    if not fields:
        raise _malformed("key=value", body)
    return fields


def _check(fields: dict[str, str], body: str) -> None:
    """Raise the table-1 error of a reply whose ``statuscode`` is not 0."""
    code = fields.get("statuscode", "")
    if not re.fullmatch(r"[-+]?\d{1,6}", code):
        raise _malformed("statuscode", body)
    if int(code) != 0:
        raise error_for(code, fields.get("statusstr", ""))


def parse_send(body: str) -> tuple[str, Decimal | None]:
    """``sendsms.aspx`` reply -> (msgid, points charged); raises the table-1 error."""
    fields = reply_fields(body)
    _check(fields, body)
    msgid = fields.get("msgid", "")
    if not _MSGID.fullmatch(msgid):
        raise _malformed("msgid", body)
    point = fields.get("point", "")
    cost = to_decimal(point, provider=PROVIDER, what="point", body=body) if _NUMBER.fullmatch(point) else None
    return msgid, cost


def parse_balance(body: str) -> Decimal:
    """``query_point.asp`` reply (JSON, ``key=value`` or the bare number) -> points."""
    text = body.strip().lstrip("\ufeff")
    if _NUMBER.fullmatch(text):
        # A bare negative table-1 code is an error, not a balance.
        if text.startswith("-") and normalize_code(text) in ERRORS:
            raise error_for(text)
        return to_decimal(text, provider=PROVIDER, what="point", body=body)
    fields = reply_fields(body)
    _check(fields, body)
    point = fields.get("point", "")
    if not _NUMBER.fullmatch(point):
        raise _malformed("point", body)
    return to_decimal(point, provider=PROVIDER, what="point", body=body)


def parse_cancel(body: str) -> None:
    """``sendsms_cancel.asp`` (reply undocumented): ``statuscode=0`` is success, else raise."""
    try:
        fields = reply_fields(body)
    except MalformedResponse:
        fields = {}
    code = fields.get("statuscode", "")
    if re.fullmatch(r"[-+]?\d{1,6}", code):
        if int(code) == 0:
            return
        raise error_for(code, fields.get("statusstr", ""))
    raise Rejected(f"cancel not confirmed: {body.strip()[:200]!r}", provider=PROVIDER)


def _rows(body: str) -> list[tuple[str, str, str, str]]:
    """(statuscode, statusstr, phone, msgid) rows of a query reply, JSON or ``a|b|c[|d]``."""
    text = body.strip().lstrip("\ufeff")
    if text.startswith("{"):
        return [
            (
                r.get("statuscode", ""),
                r.get("statusstr", ""),
                r.get("cellphone") or r.get("dstaddr", ""),
                r.get("msgid", ""),
            )
            for r in _json_records(text)
        ]
    if "|" not in text:
        _check(reply_fields(body), body)  # an error in send-reply form
        raise _malformed("query", body)
    rows = []
    for line in re.split(r"\r\n|\n|\r", text):
        if not line.strip():
            continue
        cols = [c.strip() for c in line.split("|")] + ["", ""]
        if len(cols) < 4:
            raise _malformed("query", body)
        rows.append((cols[0], cols[1], cols[2], cols[3]))
    return rows


def parse_query(body: str, refs: Sequence[MessageRef] = ()) -> list[DeliveryReport]:
    """``query.asp`` / ``queryBulk.asp`` reply -> one report per row.

    The table-2 ``statusstr`` decides a row's status whatever its ``statuscode`` (the
    document does not say which code comes with a failed final state). A row without a
    table-2 state and with a negative code is a table-1 error: when every row is one, the
    query itself failed and that error is raised; otherwise the row is reported unknown.
    A row without a msgid (``query.asp``) takes it from the ref with the same number.
    Repeated (msgid, number) rows are reported once: §3 does not say whether the two comma
    lists pair up or filter each other, so a reply may repeat rows.
    """
    rows = _rows(body)
    if not rows:
        raise _malformed("query", body)
    for code, *_ in rows:
        if not re.fullmatch(r"[-+]?\d{1,6}", code):
            raise _malformed("statuscode", body)
    errors = [r for r in rows if int(r[0]) < 0 and r[1].strip().upper() not in STATUS]
    if len(errors) == len(rows):
        raise error_for(rows[0][0], rows[0][1])
    by_number = {phone.from_wire(r.recipient): r for r in refs if r.recipient}
    reports: list[DeliveryReport] = []
    seen: set[tuple[str, str | None]] = set()
    for code, text, number, msgid in rows:
        raw = {"statuscode": code, "statusstr": text, "phone": number, "msgid": msgid}
        recipient = phone.from_wire(number) if number else None
        ref = by_number.get(recipient) if recipient else None
        if ref is None and len(refs) == 1:
            ref = refs[0]
        if ref is not None:
            recipient = recipient or ref.recipient
            msgid = msgid or ref.message_id or ref.batch_id or ""
        if (msgid, recipient) in seen:
            continue
        seen.add((msgid, recipient))
        reports.append(
            DeliveryReport(
                provider=PROVIDER,
                status=status_of(text),
                provider_status=text or code,
                recipient=recipient,
                message_id=msgid or None,
                batch_id=msgid or None,
                raw=raw,
            )
        )
    return reports


# -- the provider --------------------------------------------------------------------------------


@register
class SMSGo(Provider):
    """SMSGo HTTP API v6.4: send (≤ 50 numbers per request), query, points, cancel, callbacks."""

    name = "smsgo"
    features = frozenset(
        {
            Feature.SEND,
            Feature.SCHEDULE,
            Feature.LONG_SMS,
            Feature.FLASH,
            Feature.WAP_PUSH,
            Feature.TWO_WAY,
            Feature.STATUS_QUERY,
            Feature.DELIVERY_CALLBACK,
            Feature.BALANCE,
            Feature.CANCEL,
            Feature.INTERNATIONAL,
        }
    )
    max_recipients = 50
    default_base_url = "https://www.smsgo.com.tw"
    send_options = frozenset({"callback_url", "flash", "wap_url", "reply_url", "reply_days", "encoding"})
    rate_limit = None
    dsn_options = frozenset()

    def __init__(self, username: str, password: str, *, base_url: str | None = None, timeout: float = 10.0):
        super().__init__(username, password, base_url=base_url, timeout=timeout)

    def _get(self, path: str, fields: Sequence[tuple[str, str]], operation: str) -> HttpRequest:
        credentials = [("username", self.username), ("password", self.password)]
        return self.request(path, [*credentials, *fields], operation=operation)

    # -- send ---------------------------------------------------------------------------------
    def plan(self, message: OutboundSMS) -> tuple[str, SendOptions]:
        """The one ``encoding`` for this send and its options; raises naming the field."""
        options = SendOptions.parse(message.options)
        return options.encoding_for(message.text, message.recipients), options

    def validate(self, message: OutboundSMS) -> None:
        self.plan(message)

    def build_send(
        self, recipients: Sequence[str], message: OutboundSMS, plan: tuple[str, SendOptions] | None = None
    ) -> HttpRequest:
        encoding, options = plan or self.plan(message)
        fields = send_fields(recipients, message.text, encoding, options, message.schedule_at)
        return self._get("/sms_gw/sendsms.aspx", fields, "send")

    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        plan = self.plan(message)

        def parse(group: tuple[str, ...], response: HttpResponse) -> BatchOutcome:
            msgid, cost = parse_send(response.text)
            results = [MessageResult(recipient=r, message_id=msgid, provider_status="0") for r in group]
            return BatchOutcome(results, batch_id=msgid, cost=cost, raw=response.text)

        build = lambda group: self.build_send(group, message, plan)  # noqa: E731
        return (yield from self.batched_send(message.recipients, build, parse))

    def estimate(
        self,
        recipients: Sequence[str],
        text: str,
        *,
        flash: bool = False,
        wap_url: str | None = None,
        reply_url: str | None = None,
        encoding: str | None = None,
    ) -> Estimate:
        """Points by SMSGo's published rules: one per part per recipient (single: 1; long:
        153/67 characters per part; WAP push over 88 bytes becomes a long SMS), plus 1 point
        per 10 messages with ``reply_url``. SMSGo's document gives no international price
        multiplier, so none is invented here."""
        given = {"flash": flash, "wap_url": wap_url, "reply_url": reply_url, "encoding": encoding}
        options = SendOptions.parse({k: v for k, v in given.items() if v})
        chosen = options.encoding_for(text, recipients, push_limit=False)
        parts = parts_of(text, chosen, options.wap_url)
        points = parts * len(recipients)
        if options.reply_url is not None:
            points += math.ceil(len(recipients) / 10)  # "1 more point per 10 messages"
        return Estimate(
            provider=self.name,
            encoding=air_encoding(chosen, text),
            parts=parts,
            points=Decimal(points),
            recipients=len(recipients),
            characters=len(text),
        )

    # -- status, balance, cancel -----------------------------------------------------------------
    def _pair(self, ref: MessageRef) -> tuple[str, str]:
        msgid = ref.message_id or ref.batch_id
        if not msgid:
            raise InvalidRequest("SMSGo needs the message id to query a status", field="message_id")
        if not ref.recipient:
            raise InvalidRequest("SMSGo queries need the recipient with the message id", field="recipient")
        return msgid, wire_number(phone.normalize(ref.recipient))

    def build_status(self, refs: Sequence[MessageRef]) -> HttpRequest:
        pairs = [self._pair(r) for r in refs]
        if len(pairs) == 1:
            msgid, number = pairs[0]
            fields = [("msgid", msgid), ("dstaddr", number), ("rtype", "JSON")]
            return self._get("/sms_gw/query.asp", fields, "status")
        # queryBulk (§3): comma lists, paired by position; its JSON form is undocumented, so
        # it is asked in plain text. (The scan's query.asp sample URL omits dstaddr, which its
        # own field table and the clean reading require: it is always sent.)
        fields = [("msgid", ",".join(p[0] for p in pairs)), ("dstaddr", ",".join(p[1] for p in pairs))]
        return self._get("/sms_gw/queryBulk.asp", fields, "status")

    def status(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[list[DeliveryReport]]:
        if mms:
            self.require(Feature.MMS)
        groups = [tuple(refs[i : i + self.max_recipients]) for i in range(0, len(refs), self.max_recipients)]
        requests = [self.build_status(g) for g in groups]
        if not requests:
            return []
        outcomes: list[Outcome] = yield requests
        reports: list[DeliveryReport] = []
        for group, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, FormosmsError):
                raise outcome
            reports += parse_query(outcome.text, group)
        return reports

    def balance(self) -> Exchange[Decimal]:
        response = yield from one(self._get("/sms_gw/query_point.asp", [("rtype", "JSON")], "balance"))
        return parse_balance(response.text)

    def cancel(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[CancelResult]:
        """Cancel scheduled sends, one request per msgid. ``canceled`` counts the msgids
        SMSGo confirmed; when only some were, the others' replies are in ``raw``. When none
        was, the first error is raised."""
        if mms:
            self.require(Feature.MMS)
        ids = list(dict.fromkeys(i for r in refs if (i := r.message_id or r.batch_id)))
        if not ids:
            raise InvalidRequest("nothing to cancel: no message id given", field="message_id")
        requests = [self._get("/sms_gw/sendsms_cancel.asp", [("msgid", i)], "cancel") for i in ids]
        outcomes: list[Outcome] = yield requests
        canceled, errors, raws = 0, list[FormosmsError](), list[str]()
        for msgid, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, FormosmsError):
                errors.append(outcome)
                raws.append(f"{msgid}: {outcome}")
                continue
            raws.append(f"{msgid}: {outcome.text.strip()}")
            try:
                parse_cancel(outcome.text)
            except FormosmsError as exc:
                errors.append(exc)
                continue
            canceled += 1
        if errors and not canceled:
            raise errors[0]
        return CancelResult(provider=self.name, canceled=canceled, raw="\n".join(raws))


# -- callbacks -------------------------------------------------------------------------------------

_MAGIC = "magicid=tccrd_sms_gateway_rpack"
_HEX_UCS2 = re.compile(rb"(?:[0-9A-Fa-f]{4})+")
# §7: "the timestamp format is not documented": the shapes seen in SMSGo's other fields.
_TIME_FORMATS = ("%Y%m%d%H%M%S", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S")
MAX_WEBHOOK_BYTES = 64 * 1024


def webhook_ack(msgid: str | None = None) -> WebhookAck:
    """The answer SMSGo expects. A delivery report (§6) needs HTTP 200, ``text/plain`` and
    exactly ``magicid=tccrd_sms_gateway_rpack\\nmsgid=<msgid>\\n`` or it is retried 3 times;
    the reply callback's ack is undocumented (§7): ``OK``."""
    if msgid is None:
        return WebhookAck(200, b"OK", "text/plain")
    return WebhookAck(200, f"{_MAGIC}\nmsgid={msgid}\n".encode("ascii"), "text/plain")


def decode_smbody(raw: bytes, encoding: str) -> str:
    """A reply's text: UTF-8 normally; Big5 bytes when ``encoding=BIG5`` and not UTF-8;
    with ``encoding=UCS2`` also the hex of UTF-16BE (``4F60597D`` = 你好). A UCS2 reply that
    is itself only hex digits in groups of four is read as hex: the ambiguity is SMSGo's."""
    if encoding == "UCS2" and _HEX_UCS2.fullmatch(raw):
        try:
            return bytes.fromhex(raw.decode("ascii")).decode("utf-16-be")
        except (UnicodeDecodeError, ValueError):
            pass
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if encoding == "BIG5":
            try:
                return raw.decode("cp950")
            except UnicodeDecodeError:
                pass
    raise InvalidWebhook("smbody is not valid UTF-8" + (" or Big5" if encoding == "BIG5" else ""))


def _callback_fields(method: str, query: bytes, body: bytes, content_type: str) -> dict[str, bytes]:
    if method.upper() not in ("GET", "POST"):
        raise InvalidWebhook(f"unexpected method {method[:10]!r}")
    if len(query) + len(body) > MAX_WEBHOOK_BYTES:
        raise InvalidWebhook("callback too large")
    pairs = split_form(query)
    if body.strip():
        kind = content_type.split(";")[0].strip().lower()
        if kind not in ("", "application/x-www-form-urlencoded", "text/plain"):
            raise InvalidWebhook(f"unsupported content type {kind[:40]!r}")
        pairs += split_form(body)
    fields: dict[str, bytes] = {}
    for key, value in pairs:
        fields.setdefault(key.strip().lower(), value)
    return fields


def _text(fields: dict[str, bytes], name: str) -> str:
    try:
        return fields.get(name, b"").decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InvalidWebhook(f"{name} is not valid UTF-8") from None


def _raw(fields: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        try:
            out[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            out[key] = quote_from_bytes(value)  # kept as it came, percent-encoded
    return out


def _report(fields: dict[str, bytes]) -> WebhookResult:
    # The scan's example reads ``msgid=100101121234567 &statusstr=…``: values are trimmed.
    msgid = _text(fields, "msgid")
    if not _MSGID.fullmatch(msgid):
        raise InvalidWebhook("msgid missing or not a number")
    text, code = _text(fields, "statusstr"), _text(fields, "statuscode")
    if not text and not code:
        raise InvalidWebhook("statusstr and statuscode missing")
    number = _text(fields, "dstaddr")
    report = DeliveryReport(
        provider=PROVIDER,
        status=status_of(text),
        provider_status=text or code,
        recipient=phone.from_wire(number) if number else None,
        message_id=msgid,
        batch_id=msgid,
        raw=_raw(fields),
    )
    return WebhookResult(provider=PROVIDER, reports=(report,), ack=webhook_ack(msgid))


def _reply(fields: dict[str, bytes]) -> WebhookResult:
    sender = _text(fields, "srcaddr")
    if not sender:
        raise InvalidWebhook("srcaddr missing")
    if "smbody" not in fields:
        raise InvalidWebhook("smbody missing")
    encoding = _text(fields, "encoding").upper()
    msgid, number = _text(fields, "msgid"), _text(fields, "dstaddr")
    reply = InboundMessage(
        provider=PROVIDER,
        sender=phone.from_wire(sender),
        text=decode_smbody(fields["smbody"], encoding),
        received_at=parse_taipei_any(_text(fields, "timestamp"), _TIME_FORMATS),
        reply_to=msgid or None,
        recipient=phone.from_wire(number) if number else None,
        raw=_raw(fields),
    )
    return WebhookResult(provider=PROVIDER, replies=(reply,), ack=webhook_ack())


def parse_webhook(*, method: str, query: bytes, body: bytes, content_type: str) -> WebhookResult:
    """A call to the ``response`` URL (delivery report, GET ``msgid, statuscode, statusstr
    [, dstaddr]``) or to the ``replyurl`` (a reply: ``msgid, srcaddr, dstaddr, smbody,
    encoding, timestamp`` by GET or form POST). Told apart by ``srcaddr``/``smbody``."""
    try:
        fields = _callback_fields(method, query, body, content_type)
        if "srcaddr" in fields or "smbody" in fields:
            return _reply(fields)
        return _report(fields)
    except InvalidWebhook:
        raise
    except (ValueError, LookupError, TypeError, UnicodeError, OverflowError) as exc:
        raise InvalidWebhook(f"unreadable callback ({type(exc).__name__})") from None
