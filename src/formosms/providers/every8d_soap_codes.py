"""EVERY8D SOAP API 2.1 wire codec: envelopes, the two layers of replies, contentXML.

Pure functions used by ``every8d_soap.Every8dSoap`` (see that module for the quirks):
each ``…Result`` element holds a string that is itself XML (getConnection,
getDeliveryStatus) or CSV (sends); both layers are parsed with defusedxml, DTDs
forbidden, and every input is XML-escaped exactly once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from formosms import phone
from formosms.errors import FormosmsError, MalformedResponse, Rejected
from formosms.model import DeliveryReport, MessageResult, Personalized, SendResult, Status
from formosms.providers.every8d_codes import (
    STATUS,
    count,
    decimal,
    error_for,
    parse_send_reply,
    parse_time,
    raise_if_error,
    wire_time,
)

NAME = "every8d-soap"
SOAP_NS = "http://tempuri.org/"
SOAP12_NS = "http://www.w3.org/2003/05/soap-envelope"
CONTENT_TYPE = "application/soap+xml; charset=utf-8"
SMS_ENDPOINT = "/API21/SOAP/SMS.asmx"
MMS_ENDPOINT = "/API21/SOAP/MMS.asmx"
#: MMS.asmx (5): sendMMS, getMMSDeliveryStatus, and eraseMMSBooking — printed as 4.3 but missing
#: from the table of contents, i.e. added with the MMS web service (2.0.4); the rest: SMS.asmx
ENDPOINTS = {"sendMMS": MMS_ENDPOINT, "getMMSDeliveryStatus": MMS_ENDPOINT, "eraseMMSBooking": MMS_ENDPOINT}
_TEXT = {"\r": "&#13;"}  # escape() leaves CR, which XML parsers turn into LF
_ATTR = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.S)
_SPACED_TAG = re.compile(r"<\s+(?=/?[A-Za-z_])")


@dataclass(frozen=True, slots=True)
class Call:
    """One SOAP operation; ``sessionKey`` is put first when the call is made."""

    operation: str
    params: tuple[tuple[str, str], ...] = ()


# -- wire: envelopes and the two layers of replies ---------------------------------------------


def envelope(operation: str, params: Sequence[tuple[str, str]]) -> bytes:
    """A SOAP 1.2 request; every value XML-escaped once."""
    fields = "".join(f"<{name}>{escape(value, _TEXT)}</{name}>" for name, value in params)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<soap12:Envelope xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:soap12="{SOAP12_NS}">'
        f'<soap12:Body><{operation} xmlns="{SOAP_NS}">{fields}</{operation}></soap12:Body>'
        "</soap12:Envelope>"
    ).encode()


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def parse_xml(text: str, provider: str, *, what: str = "reply") -> Element:
    """defusedxml, DTDs forbidden; the XML declaration is dropped (the sample's ``" 1.0"``
    is not well-formed); one retry with ``< TAG`` repaired (the 3.2 sample's ``< NAME>``)."""
    body = _DECLARATION.sub("", text, count=1).strip()
    for attempt in (body, _SPACED_TAG.sub("<", body)):
        try:
            root: Element = SafeET.fromstring(attempt, forbid_dtd=True)
        except (ParseError, DefusedXmlException, ValueError):
            continue
        return root
    raise MalformedResponse(f"{what} is not well-formed XML", body=text, provider=provider)


def soap_result(body: str, operation: str, provider: str = NAME) -> str:
    """The string inside ``<{operation}Result>`` (a SOAP 1.1 or 1.2 envelope)."""
    root = parse_xml(body, provider, what=f"{operation} envelope")
    wanted = operation + "Result"
    for element in root.iter():
        if _local(element.tag) == wanted:
            return element.text or ""
    for element in root.iter():
        if _local(element.tag) == "Fault":
            reason = " ".join(" ".join(element.itertext()).split())[:200]
            raise Rejected(f"SOAP fault: {reason}", provider=provider, code="soap:Fault")
    raise MalformedResponse(f"no {wanted} in the reply", body=body, provider=provider)


def _child(element: Element, name: str) -> str:
    for child in element:
        if _local(child.tag).strip() == name:
            return "".join(child.itertext()).strip()
    return ""


def parse_connection(text: str, provider: str = NAME) -> str:
    """1.1 ``<SMS><GET_CONNECTION><CODE>0</CODE><SESSION_KEY>…`` -> the session key."""
    if not text.strip().startswith("<"):
        raise_if_error(text, provider)
        raise MalformedResponse("getConnection reply is not XML", body=text, provider=provider)
    root = parse_xml(text, provider, what="getConnection result")
    node = (
        root
        if _local(root.tag) == "GET_CONNECTION"
        else next((e for e in root.iter() if _local(e.tag) == "GET_CONNECTION"), root)
    )
    code = _child(node, "CODE")
    if code != "0":
        if not code:
            raise MalformedResponse("getConnection reply has no CODE", body=text, provider=provider)
        raise error_for(code, _child(node, "DESCRIPTION"), provider=provider)
    key = _child(node, "SESSION_KEY")
    if not key or any(c.isspace() for c in key):
        raise MalformedResponse("getConnection gave no SESSION_KEY", provider=provider)
    return key


def parse_status_xml(text: str, batch_id: str, provider: str = NAME) -> tuple[int, list[DeliveryReport]]:
    """3.2/5.2 ``<SMS_LOG><CODE>0</CODE><GET_DELIVERY_STATUS COUNT="…"><SMS>…``: (COUNT, rows)."""
    if not text.strip():
        return 0, []  # nothing recorded (yet) for this batch
    if not text.strip().startswith("<"):
        raise_if_error(text, provider)
        raise MalformedResponse("status reply is not XML", body=text, provider=provider)
    root = parse_xml(text, provider, what="getDeliveryStatus result")
    code = _child(root, "CODE")
    if code and code != "0":
        raise error_for(code, _child(root, "DESCRIPTION"), provider=provider)
    listing = next((e for e in root.iter() if _local(e.tag) == "GET_DELIVERY_STATUS"), None)
    if listing is None:
        if code != "0":
            raise MalformedResponse("status reply has neither CODE nor rows", body=text, provider=provider)
        return 0, []
    reports = []
    for sms in (e for e in listing if _local(e.tag) == "SMS"):
        mobile, status = _child(sms, "MOBILE"), _child(sms, "STATUS")
        if not mobile and not status:
            continue  # the document's "...." placeholder
        replies = [
            {"time": _child(r, "REPLY_TIME"), "message": _child(r, "MESSAGE")}
            for r in sms
            if _local(r.tag) == "REPLY_SMS"
        ]
        cost = _child(sms, "COST")
        raw: dict[str, Any] = {
            _local(c.tag).strip(): "".join(c.itertext()).strip() for c in sms if _local(c.tag) != "REPLY_SMS"
        }
        raw["replies"] = replies
        reports.append(
            DeliveryReport(
                provider=provider,
                status=STATUS.get(status, Status.UNKNOWN),
                provider_status=status,
                recipient=phone.from_wire(mobile) if mobile else None,
                message_id=batch_id,
                batch_id=batch_id,
                done_at=parse_time(_child(sms, "SENT_TIME")),
                cost=decimal(cost, what="COST", provider=provider, body=text) if cost else None,
                raw=raw,
            )
        )
    total_text = listing.get("COUNT", "").strip()
    total = count(total_text, what="COUNT", provider=provider, body=text) if total_text else len(reports)
    return total, reports


def cdata(text: str) -> str:
    """A CDATA section; ``]]>`` inside is split across two sections."""
    # a CR inside CDATA would be read back as LF (XML line-end handling): carry it as &#13;
    body = text.replace("]]>", "]]]]><![CDATA[>").replace("\r", "]]>&#13;<![CDATA[")
    return "<![CDATA[" + body + "]]>"


def content_xml(items: Sequence[Personalized]) -> str:
    """2.3 contentXML: ``<REPS><USER NAME="" MOBILE="+886…" EMAIL="" SENDTIME=""><![CDATA[…]]></USER>…``."""
    users = "".join(
        f'<USER NAME="{escape(item.name, _ATTR)}" MOBILE="{escape(item.to, _ATTR)}" '
        f'EMAIL="{escape(item.email, _ATTR)}" SENDTIME="{wire_time(item.send_at)}">{cdata(item.text)}</USER>'
        for item in items
    )
    return f"<REPS>{users}</REPS>"


def merge_sends(provider: str, groups: Sequence[Sequence[str]], results: Sequence[str | FormosmsError]) -> SendResult:
    """Like ``Provider.batched_send``: every recipient's fate, batches kept."""
    messages: list[MessageResult] = []
    batches: list[str] = []
    raws: list[str] = []
    cost: Decimal | None = None
    balance: Decimal | None = None
    for group, result in zip(groups, results, strict=True):
        if isinstance(result, str):
            try:
                parsed = parse_send_reply(result, group, provider)
            except FormosmsError as exc:
                result = exc
            else:
                messages += parsed.messages
                raws.append(parsed.raw)
                if parsed.batch_id:
                    batches.append(parsed.batch_id)
                cost = (cost or Decimal(0)) + (parsed.cost or Decimal(0))
                balance = parsed.balance
                continue
        messages += [MessageResult(recipient=r, error=result) for r in group]
    return SendResult(
        provider=provider,
        batch_id=batches[0] if len(batches) == 1 else None,
        messages=tuple(messages),
        cost=cost,
        balance=balance,
        raw="\n".join(raws),
        batch_ids=tuple(batches),
    )
