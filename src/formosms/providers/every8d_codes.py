"""What EVERY8D's HTTP API 2.1 and SOAP API 2.1 share: codes, reply formats, pricing.

Both APIs answer sends with the same comma string ``CREDIT,SENDED,COST,UNSEND,BATCH_ID``,
errors with a negative first field (``-<code>,<message>``), balance with a bare number and
cancels with ``a,b``; delivery states use one table. Used by ``every8d`` (HTTP) and
``every8d_soap`` (SOAP).

Decisions (documents: ``every8d-http-api-2.1.txt``, ``every8d-soap-api-2.1.txt``):

* ``UNSEND`` (1.1: "當該值大於 0 而剩餘點數等於 0 時表示有部份的簡訊因無額度而無法被發送"):
  the reply never says *which* recipients were left out. When nothing was sent
  (``SENDED == 0``) every recipient fails with ``InsufficientCredit``; otherwise every
  recipient is reported accepted under the batch id (guessing which ones failed would be
  wrong) and the left-out ones show status ``301`` (no credit) in the status query and the
  callback, which is where the per-recipient truth arrives. The reply stays in ``raw``.
* Status ``888`` (test mode) → ``rejected``: the platform did not hand the message to a
  carrier; calling it delivered would make a test-mode account look healthy.
* Status ``999`` is a reply, not a delivery state: ``unknown`` here; callbacks turn it into
  an ``InboundMessage``.
* Pricing counts UTF-16 units (what the carrier splits on), so an emoji counts as two.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from formosms import phone
from formosms.errors import (
    AuthenticationError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRecipient,
    InvalidRequest,
    InvalidSchedule,
    MalformedResponse,
    NotFound,
    ProviderUnavailable,
    Rejected,
)
from formosms.model import CancelResult, DeliveryReport, Estimate, MessageResult, Status
from formosms.providers.base import BatchOutcome, MessageRef, OutboundMMS
from formosms.segments import analyze, utf16_length
from formosms.timefmt import TAIPEI, parse_taipei_any

#: One table for SMS and MMS, HTTP 2.2/2.3 and SOAP 3.2/5.2 (their wordings differ, codes agree).
STATUS: dict[str, Status] = {
    "0": Status.SUBMITTED,  # 已發送: handed to the carrier
    "100": Status.DELIVERED,
    "101": Status.UNDELIVERABLE,  # handset off / poor signal
    "102": Status.UNDELIVERABLE,  # carrier network fault
    "103": Status.UNDELIVERABLE,  # no such number / suspended
    "104": Status.UNDELIVERABLE,  # carrier blacklist
    "105": Status.UNDELIVERABLE,  # handset fault
    "106": Status.UNDELIVERABLE,  # carrier system error
    "107": Status.EXPIRED,  # 逾時收訊 (HTTP 2.1): validity ran out
    "300": Status.SCHEDULED,
    "301": Status.FAILED,  # no credit: never sent
    "303": Status.CANCELED,
    "500": Status.REJECTED,  # international SMS not enabled on the account
    "700": Status.SUBMITTED,  # MMS sent
    "888": Status.REJECTED,  # test mode: never reached a carrier (see module docstring)
    "999": Status.UNKNOWN,  # a reply, not a delivery state
    "-1": Status.REJECTED,  # parameter error
    "-2": Status.FAILED,  # API account or password wrong (the account, not the message)
    "-3": Status.REJECTED,  # invalid number or SMS blacklist
    "-4": Status.REJECTED,  # schedule more than 24 h in the past / bad DT
    "-5": Status.REJECTED,  # text too long
    "-6": Status.REJECTED,  # bad DT format
}

#: Every error code of both documents and provider-notes.md (the negative CREDIT values).
ERRORS: dict[str, tuple[type[FormosmsError], str]] = {
    "-1": (InvalidRequest, "parameter error"),
    "-2": (AuthenticationError, "API account or password wrong"),
    "-3": (InvalidRecipient, "invalid mobile number or SMS blacklist"),
    "-4": (InvalidSchedule, "bad send time, or send time more than 24 hours in the past"),
    "-5": (InvalidMessage, "message longer than allowed"),
    "-6": (InvalidSchedule, "bad send time (DT) format"),
    "-24": (InvalidMessage, "message content is empty"),
    "-41": (InvalidRecipient, "no mobile number given"),
    "-97": (ProviderUnavailable, "system busy, try again later"),
    "-99": (ProviderUnavailable, "unknown error on the provider's host"),
    "-100": (AuthenticationError, "no such account, or account or password wrong"),
    "-101": (AuthenticationError, "wrong password"),
    "-300": (AuthenticationError, "account and password must not be empty"),
    "-301": (AuthenticationError, "session does not exist, log in again"),
    "-303": (InvalidMessage, "MMS subject is required"),
    "-304": (InvalidMessage, "MMS image is missing"),
    "-305": (InvalidMessage, "MMS image type is missing"),
    "-306": (InvalidRecipient, "mobile number format invalid"),
    "-314": (InvalidMessage, "MMS image too large"),
    "-999": (AuthenticationError, "account locked after 10 authentication failures"),
}
_FIELDS = {"-303": "subject", "-304": "attachment", "-305": "attachment", "-314": "attachment"}

_ERROR = re.compile(r"(-\d{1,6})(?:\.\d*)?\s*(?:[,，:：]\s*(.*))?", re.S | re.A)
_DECIMAL = re.compile(r"[+-]?\d{1,15}(?:\.\d{0,8})?", re.A)
_COUNT = re.compile(r"\d{1,9}(?:\.0*)?", re.A)
_BATCH = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}", re.A)
_TIME_FORMATS = (
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y/%m/%d",
)

#: MMS limits (HTTP 1.2 / SOAP 5.1 and the 2.1.5 edition): subject 15 CJK / 95 alphanumeric.
MMS_SUBJECT_CJK = 15
MMS_SUBJECT_ASCII = 95
MMS_TEXT_MAX = 4000
MMS_MAX_BYTES = 300 * 1024


def error_for(code: str, text: str = "", *, provider: str = "every8d") -> FormosmsError:
    """The exception for an EVERY8D error code; unknown codes give ``Rejected``."""
    cls, meaning = ERRORS.get(code, (Rejected, "refused by the provider"))
    text = " ".join(text.split())[:200]
    message = f"{meaning}: {text}" if text else meaning
    if cls is InvalidRecipient:
        # "-306,手機格式不符:+1-202-895-1800": the number follows the colon
        number = text.replace("：", ":").partition(":")[2]
        return InvalidRecipient(message, recipient=number.strip() or None, provider=provider, code=code)
    if cls is InvalidMessage:
        return InvalidMessage(message, field=_FIELDS.get(code, "text"), provider=provider, code=code)
    return cls(message, provider=provider, code=code)


def clean(body: str) -> str:
    """The reply without a byte-order mark and surrounding whitespace."""
    return body.strip().lstrip("\ufeff").strip()


def raise_if_error(text: str, provider: str) -> None:
    """A reply whose first field is negative is an error (``-<code>,<message>``)."""
    text = clean(text)
    if not text.startswith("-"):
        return
    match = _ERROR.fullmatch(text)
    if match is None:
        raise MalformedResponse("unreadable error reply", body=text, provider=provider)
    raise error_for(match.group(1), match.group(2) or "", provider=provider)


def reply_code(text: str) -> str | None:
    """The negative code of an error reply (CSV or ``<CODE>`` XML), else None."""
    text = text.strip()
    if text.startswith("<"):
        found = re.search(r"<CODE\s*>\s*(-\d{1,6})\s*</CODE", text, re.A)
        return found.group(1) if found else None
    match = _ERROR.fullmatch(text)
    return match.group(1) if match else None


def decimal(text: str, *, what: str, provider: str, body: str = "") -> Decimal:
    """A plain decimal number (no NaN, no exponent, bounded), else ``MalformedResponse``."""
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise MalformedResponse(f"{what} is not a number: {value[:40]!r}", body=body, provider=provider)
    return Decimal(value)


def count(text: str, *, what: str, provider: str, body: str = "") -> int:
    value = text.strip()
    if not _COUNT.fullmatch(value):
        raise MalformedResponse(f"{what} is not a count: {value[:40]!r}", body=body, provider=provider)
    return int(value.split(".")[0])


@lru_cache(maxsize=256)
def parse_time(text: str) -> datetime | None:
    """``2010/03/03 14:25:55``, ``2010/3/20 03:27:50``, ``20090210120000`` (Taiwan time).

    Also the .NET zh-TW rendering ``2010/3/20 下午 03:27:50``. Unreadable -> None.
    Cached: a second's callbacks all carry the same few times (reading them was a twentieth
    of the gateway's time on callbacks, bench/gateway_e2e.py profile).
    """
    value = " ".join(text.split()).upper()
    afternoon: bool | None = None
    for mark, pm in (("上午", False), ("下午", True), ("AM", False), ("PM", True)):
        if mark in value:
            value, afternoon = value.replace(mark, " "), pm
    parsed = parse_taipei_any(" ".join(value.split()), _TIME_FORMATS)
    if parsed is not None and afternoon is not None and parsed.hour <= 12:
        parsed = parsed.replace(hour=parsed.hour % 12 + (12 if afternoon else 0))
    return parsed


def wire_time(when: datetime | None) -> str:
    """``yyyyMMddHHmmss`` in Taiwan time; empty means "now" (HTTP 1.1 ST, SOAP sendTime)."""
    return when.astimezone(TAIPEI).strftime("%Y%m%d%H%M%S") if when else ""


def retry_minutes(validity: timedelta | None) -> str:
    """RETRYTIME / retryTime: validity in whole minutes, rounded up, at least 1; empty = default."""
    if validity is None:
        return ""
    return str(max(1, math.ceil(validity.total_seconds() / 60)))


# -- replies ------------------------------------------------------------------------------------


def parse_send_reply(body: str, recipients: Sequence[str], provider: str) -> BatchOutcome:
    """``CREDIT,SENDED,COST,UNSEND,BATCH_ID`` (or the 2.1 sample's 4 fields without UNSEND)."""
    text = clean(body)
    raise_if_error(text, provider)
    fields = [f.strip() for f in text.split(",")]
    while fields and not fields[-1]:
        fields.pop()  # a trailing comma
    if len(fields) == 4:  # "1230.00,4,4.0,220478cc-…": the document's own sample
        credit, sended, cost, batch = fields
        unsend = "0"
    elif len(fields) == 5:  # "1230.00,4,4,0,<uuid>": the 2.1.5 edition
        credit, sended, cost, unsend, batch = fields
    else:
        raise MalformedResponse("send reply is not CREDIT,SENDED,COST,UNSEND,BATCH_ID", body=text, provider=provider)
    if not _BATCH.fullmatch(batch):
        raise MalformedResponse(f"bad BATCH_ID {batch[:40]!r}", body=text, provider=provider)
    balance = decimal(credit, what="CREDIT", provider=provider, body=text)
    sent = count(sended, what="SENDED", provider=provider, body=text)
    points = decimal(cost, what="COST", provider=provider, body=text)
    left = count(unsend, what="UNSEND", provider=provider, body=text)
    if sent == 0 and left > 0:
        error = InsufficientCredit(
            f"no credit: {left} message(s) not sent (UNSEND), balance {balance}",
            provider=provider,
            code="301",
        )
        messages = [MessageResult(r, error=error, provider_status="301") for r in recipients]
    else:
        messages = [MessageResult(r, message_id=batch) for r in recipients]
    return BatchOutcome(messages, batch_id=batch, cost=points, balance=balance, raw=text)


def parse_balance(body: str, provider: str) -> Decimal:
    """getCredit: ``2310.00``; a negative value is an error."""
    text = clean(body)
    raise_if_error(text, provider)
    return decimal(text.replace(",", ""), what="credit", provider=provider, body=text)


def parse_cancel(body: str, batch_id: str, provider: str) -> CancelResult:
    """eraseBooking: ``a,b`` = (deleted count, refunded points); empty = not found."""
    text = clean(body)
    if not text:
        raise NotFound(f"no scheduled message in batch {batch_id[:64]!r}", provider=provider)
    raise_if_error(text, provider)
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise MalformedResponse("cancel reply is not 'a,b'", body=text, provider=provider)
    canceled = count(parts[0], what="deleted count", provider=provider, body=text)
    refunded = decimal(parts[1] or "0", what="refunded points", provider=provider, body=text)
    return CancelResult(provider, canceled, refunded, raw=text)


def merge_cancels(provider: str, results: Sequence[CancelResult | FormosmsError]) -> CancelResult:
    """Several batches: sum the found ones; ``NotFound`` only when none was found."""
    found = [r for r in results if isinstance(r, CancelResult)]
    errors = [r for r in results if isinstance(r, FormosmsError)]
    serious = [e for e in errors if not isinstance(e, NotFound)]
    if serious:
        raise serious[0]
    if not found:
        raise errors[0] if errors else NotFound("no batch id given", provider=provider)
    return CancelResult(
        provider,
        sum(r.canceled for r in found),
        sum((r.refunded or Decimal(0) for r in found), Decimal(0)),
        raw="\n".join(r.raw for r in found),
    )


# -- pricing and local validation ---------------------------------------------------------------


def sms_points(text: str) -> int:
    """Points for one Taiwan recipient (1.1): 1–70 → 1, 71–134 → 2, 135–201 → 3, 202–268 → 4,
    269–333 → 5; "超過 333 字仍可發送，系統將自動拆則": beyond 333, one more per 67."""
    units = utf16_length(text)
    if units <= 70:
        return 1
    if units <= 333:
        return math.ceil(units / 67)
    return 5 + math.ceil((units - 333) / 67)


def estimate(provider: str, recipients: Sequence[str], text: str) -> Estimate:
    """Sum over recipients; "國際簡訊(非+886 開頭)則需以三倍點數計價之" (×3 outside Taiwan)."""
    parts = sms_points(text)
    points = sum(parts * (1 if phone.is_taiwan(r) else 3) for r in recipients)
    encoding = analyze(text).encoding
    return Estimate(provider, encoding, parts, Decimal(points), len(recipients), len(text))


def mms_points(size: int, *, edition: str = "2.1") -> Decimal:
    """MMS points per recipient: 4 in the 2.1 documents; 3 up to 50 KB, 5 up to 300 KB in 2.1.5."""
    if edition == "2.1":
        return Decimal(4)
    return Decimal(3 if size <= 50 * 1024 else 5)


def check_text(text: str, provider: str, *, field: str = "text", xml: bool = False) -> None:
    """Refuse what cannot travel: lone surrogates, and (SOAP) characters XML 1.0 forbids."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(
            f"{field} contains characters UTF-8 cannot carry", field=field, provider=provider
        ) from None
    if xml and re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", text):
        raise InvalidMessage(f"{field} contains control characters XML cannot carry", field=field, provider=provider)


def check_mms(message: OutboundMMS, provider: str, *, types: frozenset[str]) -> str:
    """HTTP 1.2 / SOAP 5.1 limits; returns the image type to send (``jpg``…)."""
    for number in message.recipients:
        if not phone.is_taiwan(number):
            raise InvalidRecipient(
                f"MMS cannot be sent to international numbers ({number})", recipient=number, provider=provider
            )
    subject = message.subject or ""
    if not subject.strip():
        raise InvalidMessage("MMS subject is required", field="subject", provider=provider)
    limit = MMS_SUBJECT_ASCII if subject.isascii() else MMS_SUBJECT_CJK
    if len(subject) > limit:
        raise InvalidMessage(
            f"MMS subject is {len(subject)} characters; at most {limit}", field="subject", provider=provider
        )
    if len(message.text) > MMS_TEXT_MAX:
        raise InvalidMessage(f"MMS text is longer than {MMS_TEXT_MAX} characters", provider=provider)
    kind = message.attachment.type.strip().lower().lstrip(".")
    if kind not in types:
        raise InvalidMessage(
            f"image type {kind!r} not supported (use {'/'.join(sorted(types))})",
            field="attachment",
            provider=provider,
        )
    size = len(message.attachment.data) + len(message.text.encode("utf-8", "replace"))
    if size > MMS_MAX_BYTES:
        raise InvalidMessage(
            f"image and text are {size} bytes; at most {MMS_MAX_BYTES}", field="attachment", provider=provider
        )
    check_text(message.text, provider)
    check_text(subject, provider, field="subject")
    return kind


# -- options and references ---------------------------------------------------------------------


def check_options_values(options: dict[str, object], provider: str) -> None:
    """``callback_url`` must be an http(s) URL; ``record_no`` text without commas or newlines."""
    url = options.get("callback_url")
    if url is not None and not (isinstance(url, str) and url.lower().startswith(("http://", "https://"))):
        raise InvalidRequest("callback_url must be an http:// or https:// URL", field="callback_url", provider=provider)
    record = options.get("record_no")
    if record is not None and (not isinstance(record, str | int) or any(c in str(record) for c in ",\r\n")):
        raise InvalidRequest("record_no must be text or a number", field="record_no", provider=provider)
    subject = options.get("subject")
    if subject is not None and not isinstance(subject, str):
        raise InvalidRequest("subject must be text", field="subject", provider=provider)


def batch_ids(refs: Sequence[MessageRef], provider: str) -> list[str]:
    """EVERY8D queries and cancels by batch id: the distinct ones, in order."""
    ids = [ref.batch_id or ref.message_id for ref in refs]
    if refs and not all(ids):
        raise InvalidRequest("EVERY8D needs the batch id of a send", field="batch_id", provider=provider)
    return list(dict.fromkeys(i for i in ids if i))


# -- the TAB-separated status text (HTTP 2.2/2.3) -------------------------------------------------


def parse_status_text(body: str, batch_id: str, provider: str = "every8d") -> tuple[int, list[DeliveryReport]]:
    """2.2: ``SMS_COUNT`` then ``NAME\\tMOBILE\\tSEND_TIME\\tCOST\\tSTATUS[\\tRECEIVED_TIME]`` rows.

    Returns (SMS_COUNT, the rows of this page). Rows with neither number nor status (the
    document's ``...`` line) are skipped; a row with fewer than 5 columns is malformed.
    """
    text = body.lstrip("\ufeff").strip(" \r\n")  # trailing TABs are empty columns, kept
    raise_if_error(text, provider)
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not lines:
        return 0, []  # nothing recorded (yet) for this batch
    total = count(lines[0].split("\t")[0], what="SMS_COUNT", provider=provider, body=text)
    reports = []
    for line in lines[1:]:
        cols = [c.strip() for c in line.split("\t")]
        if len(cols) < 5:
            raise MalformedResponse(f"status row has {len(cols)} columns", body=text, provider=provider)
        name, mobile, sent, cost, code = cols[:5]
        received = cols[5] if len(cols) > 5 else ""
        if not mobile and not code:
            continue
        raw = {"NAME": name, "MOBILE": mobile, "SEND_TIME": sent, "COST": cost, "STATUS": code}
        if len(cols) > 5:
            raw["RECEIVED_TIME"] = received
        reports.append(
            DeliveryReport(
                provider=provider,
                status=STATUS.get(code, Status.UNKNOWN),
                provider_status=code,
                recipient=phone.from_wire(mobile) if mobile else None,
                message_id=batch_id,
                batch_id=batch_id,
                done_at=parse_time(received) or parse_time(sent),
                cost=decimal(cost, what="COST", provider=provider, body=text) if cost else None,
                raw=raw,
            )
        )
    return total, reports


__all__ = [
    "ERRORS",
    "STATUS",
    "batch_ids",
    "check_mms",
    "check_options_values",
    "check_text",
    "error_for",
    "estimate",
    "mms_points",
    "parse_balance",
    "parse_cancel",
    "parse_send_reply",
    "parse_status_text",
    "parse_time",
    "sms_points",
]
