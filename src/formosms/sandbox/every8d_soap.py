"""EVERY8D Web Services (SOAP) API 2.1 emulator.

Written from ``shared/specs/every8d-soap-api-2.1.txt`` ("Web Services API
Specifications-2.1", version 2.0.4, 2020-01-30) and the "EVERY8D SOAP" / "EVERY8D HTTP"
sections of ``shared/specs/provider-notes.md``. Section numbers below are the document's.

Two ASMX services, both in the namespace ``http://tempuri.org/``:

* ``POST /API21/SOAP/SMS.asmx`` — getConnection, sendSMS, sendMessage, sendParamSMS,
  getDeliveryStatus, getCredit, eraseBooking, closeConnection (§1–§4);
* ``POST /API21/SOAP/MMS.asmx`` — sendMMS, getMMSDeliveryStatus, eraseMMSBooking (§4.3,
  §5), plus getConnection, getCredit and closeConnection sharing the same sessions.

§0: "藉由 SOAP(SOAP 1.1, SOAP 1.2)標準方式" — both versions are accepted (1.2 by
``Content-Type: application/soap+xml``, 1.1 by ``text/xml`` + ``SOAPAction``) and answered
in the version asked. Every ``…Result`` is a *string* holding XML (getConnection,
getDeliveryStatus) or CSV/plain text (the rest), escaped inside the envelope: clients parse
twice (provider notes). Envelopes are parsed with defusedxml: a DTD (XML bomb, external
entity) or a malformed envelope is a SOAP Fault with HTTP 500, as ASP.NET answers.
``GET …asmx?WSDL`` serves a WSDL generated from the operation table (not in the document;
ASMX services publish one and SOAP toolkits need it).

Decisions where the document is silent are marked "Decision:" in the comments; the
rationale for each follows the provider notes where they say something.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import unquote
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from formosms.sandbox.core import Accepted, Account, Engine, ProviderState, deliver_with_retries, taipei
from formosms.sandbox.emulator import Emulator
from formosms.timefmt import TAIPEI

log = logging.getLogger("formosms.sandbox.every8d_soap")

TEMPURI = "http://tempuri.org/"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
_CONTENT_TYPE = {"1.1": "text/xml; charset=utf-8", "1.2": "application/soap+xml; charset=utf-8"}
_ENVELOPE_NS = {"1.1": SOAP11, "1.2": SOAP12}
_XML_DECL = '<?xml version="1.0" encoding="utf-8"?>'
#: ASP.NET's default maxRequestLength (4 MB); an MMS of 300 KB is ~550 KB once base64 +
#: URL-encoded (§5.1 "binary base64 encoded + urlEncode")
MAX_BODY = 4 * 1024 * 1024

# -- codes and texts -------------------------------------------------------------------------
#: §1.1 getConnection CODE table
CONNECTION_TEXT = {
    0: "取得連線成功",
    -97: "系統忙碌中，請稍後再試",
    -100: "取得連線失敗，無此帳號",
    -101: "取得連線失敗，密碼錯誤",
    -999: "帳號已封鎖，請洽服務窗口。認證錯誤超過 10 次將封鎖此服務。",
}
#: negative answers of the other operations, ``-<code>,<text>`` (§1.2 註 1 for -301/-99;
#: provider notes "EVERY8D HTTP" for -24/-41/-303/-304/-305/-306/-314; §3.2 status table
#: for -4/-5/-6, used here as request errors — Decision, see ``_parse_send_time``)
ERROR_TEXT = {
    -4: "訊息預計發送時間已逾期 24 小時以上",
    -5: "Short Message 內容長度超過限制",
    -6: "DT(預計發送時間)格式錯誤",
    -24: "簡訊內容不得為空值。",
    -41: "接收人手機號碼不得為空值。",
    -97: "系統忙碌中，請稍後再試",
    -99: "主機端發生不明錯誤，請與廠商窗口聯繫。",
    -301: "Session 資料不存在，請重新登入。",
    -303: "MMS 主旨格式錯誤",
    -304: "MMS 圖檔不得為空值",
    -305: "MMS 圖檔格式錯誤",
    -306: "手機格式不符",
    -314: "MMS 圖檔大小超過限制",
}
#: §3.2 "接收狀態代碼表": neutral outcome -> STATUS. "rejected" has no exact twin; -3
#: ("受話方手機號碼錯誤或是簡訊黑名單，該訊息傳送失敗") is the closest.
SMS_STATUS = {"delivered": "100", "undeliverable": "101", "expired": "107", "rejected": "-3"}
#: MMS: the HTTP document's table has "700 MMS 已發送"; MMS carries no handset receipt, so
#: 700 is the final "delivered" answer for MMS (Decision).
MMS_STATUS = {**SMS_STATUS, "delivered": "700"}
STATUS_PENDING = "0"  # 訊息已成功傳送給電信端 …溝通中
STATUS_SCHEDULED = "300"  # 預約簡訊
STATUS_CANCELED = "303"  # 取消預約
STATUS_NO_INTERNATIONAL = "500"  # 表該門號為國際門號，請至系統設定開啟國際簡訊發送功能
STATUS_NO_CREDIT = "301"  # HTTP document: 無額度(或額度不足)無法發送
STATUS_REPLY = "999"  # §3.1 "STATUS=999 時，即為回覆簡訊"

PAGE_SIZE = 1000  # §3.2 "本查詢功能每次最多回傳 1000 筆資料"
MMS_MAX_BYTES = 300 * 1024  # §5.1 "圖加文大小 300KB 之限制"
MMS_SMALL_BYTES = 50 * 1024  # provider notes (newer edition): 3 points up to 50 KB, 5 up to 300 KB
MMS_MAX_CHARS = 4000  # §5.1 "內容最大可發至 4000 字"
MMS_TYPES = ("jpg", "jpeg", "png")  # §5.1 "支援 jpg/jpeg/png"

_TW_LOCAL = re.compile(r"09\d{8}")
_TW_E164 = re.compile(r"\+8869\d{8}")
_E164 = re.compile(r"\+[1-9]\d{7,14}")
_SCHEDULE = re.compile(r"\d{14}")


class OperationError(Exception):
    """A documented negative answer, rendered in the operation's own reply format."""

    def __init__(self, code: int, detail: str = ""):
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


class SoapFault(Exception):
    """A SOAP Fault (HTTP 500): the request never reached an operation."""

    def __init__(self, version: str, code: str, reason: str):
        super().__init__(reason)
        self.version = version
        self.code = code  # Client | Server | VersionMismatch
        self.reason = reason


@dataclass(frozen=True)
class Operation:
    name: str
    params: tuple[str, ...]
    #: how a negative answer looks: "connection" (§1.1 XML), "log" (§3.2 XML), "csv"
    #: (``-code,text``), "close" (§1.3 "1"/"-1")
    reply: str


def _op(name: str, reply: str, *params: str) -> Operation:
    return Operation(name, params, reply)


#: the documented signatures, parameter names exactly as written (case matters to ASP.NET)
SMS_OPERATIONS = {
    op.name: op
    for op in (
        _op("getConnection", "connection", "userID", "password"),  # §1.1
        _op("sendSMS", "csv", "sessionKey", "subject", "content", "mobile", "sendTime"),  # §1.2
        _op("closeConnection", "close", "sessionKey"),  # §1.3
        _op("sendMessage", "csv", "sessionKey", "subject", "content", "mobile", "sendTime", "retryTime"),
        _op("sendParamSMS", "csv", "sessionKey", "subject", "contentXML", "sendTime"),  # §2.3
        _op("getDeliveryStatus", "log", "sessionKey", "batchID", "pageNo"),  # §3.2
        _op("getCredit", "csv", "sessionKey"),  # §4.1
        _op("eraseBooking", "csv", "sessionKey", "batchID"),  # §4.2
    )
}
MMS_OPERATIONS = {
    op.name: op
    for op in (
        SMS_OPERATIONS["getConnection"],
        SMS_OPERATIONS["getCredit"],
        SMS_OPERATIONS["closeConnection"],
        _op(
            "sendMMS",
            "csv",
            *("sessionKey", "subject", "content", "mobile", "sendTime", "retryTime", "attachment", "type"),
        ),  # §5.1
        _op("getMMSDeliveryStatus", "log", "sessionKey", "batchID", "pageNo"),  # §5.2
        _op("eraseMMSBooking", "csv", "sessionKey", "batchID"),  # §4.3
    )
}
SERVICES = {"SMS": SMS_OPERATIONS, "MMS": MMS_OPERATIONS}


@dataclass
class Session:
    key: str
    username: str
    day: date  # §1.1 "SessionKey 有效期為單日，隔日即失效" (Taiwan date)


@dataclass
class _Recipient:
    raw: str  # as received
    mobile: str  # as shown in status queries and callbacks (RM)
    international: bool
    text: str
    send_at: float | None = None
    name: str = ""
    email: str = ""


@dataclass
class _LoginRecord:
    account: Account  # the Account object the failures were counted against
    failures: int = 0
    locked: bool = False


# -- pure helpers ----------------------------------------------------------------------------
def sms_points(text: str) -> int:
    """§1.2 Taiwan pricing: 1–70 字 1 點, 71–134 2, 135–201 3, 202–268 4, 269–333 5.

    The tiers are 67 characters per part after the first 70 (134 = 2×67, 201 = 3×67 …);
    beyond 333 "系統將自動拆則" and the same 67-per-part rule continues. Characters are
    counted as the .NET service counts a string: UTF-16 code units (an emoji counts 2).
    """
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def classify_mobile(raw: str, *, param_sms: bool = False) -> tuple[str, bool] | None:
    """(mobile as reported, international?) or None when the format is refused (-306).

    §1.2: "格式為: +886912345678 或 09123456789" (the 11-digit sample is a typo: Taiwan
    mobiles are 09 + 8 digits); "國際簡訊(非+886 開頭)則需以三倍點數計價之". §2.3 MOBILE:
    "若傳送電話為國內手機時，如 0933123456。請務必轉為+886933123456，避免點數計算錯誤" — in
    sendParamSMS a ``09…`` number is *not* recognised as Taiwan and is priced ×3, the
    pitfall the document warns about (``param_sms=True``).
    """
    if _TW_LOCAL.fullmatch(raw):
        return (raw, True) if param_sms else ("+886" + raw[1:], False)
    if _TW_E164.fullmatch(raw):
        return raw, False
    if raw.startswith("+886"):
        return None  # a Taiwan landline or a short number: no SMS
    if _E164.fullmatch(raw):
        return raw, True
    return None


def _fmt_points(value: Decimal) -> str:
    """Whole points print as integers (5-field sample ``1230.00,4,4,0,<uuid>``)."""
    return str(int(value)) if value == value.to_integral_value() else f"{value:.2f}"


def _cdata(text: str) -> str:
    """A CDATA section; ``]]>`` inside the text is split across two sections."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _sent_time(epoch: float) -> str:
    """§3.2 SENT_TIME sample ``2010/3/20 03:27:50``: month and day not zero-padded."""
    t = taipei(epoch)
    return f"{t.year}/{t.month}/{t.day} {t:%H:%M:%S}"


def _reply_time(epoch: float) -> str:
    """§3.2 REPLY_TIME sample ``2010/03/23 12:05:09 `` (padded, with the trailing space)."""
    return f"{taipei(epoch):%Y/%m/%d %H:%M:%S} "


def _rt(epoch: float) -> str:
    """§3.1 RT: ``20090210120000`` (yyyyMMddHHmmss, Taiwan time)."""
    return f"{taipei(epoch):%Y%m%d%H%M%S}"


def _parse_send_time(raw: str, now: float) -> float | None:
    """§1.2 sendTime: empty = now; ``YYYYMMDDhhmmss`` Taiwan time.

    The document says both "若傳送時間小於系統接單時間，將不予傳送" and "若傳遞時間已逾現在之
    時間，將立即發送"; the status table reconciles them: -4 "訊息預計發送時間已逾期 24 小時以
    上". So a time up to 24 h in the past sends at once, older is refused with -4, and an
    unreadable one with -6 ("DT(預計發送時間)格式錯誤"). Decision: both are answered as
    request errors (nothing accepted, nothing charged) rather than per-message statuses.
    Returns the epoch for a future time, None for "now".
    """
    raw = raw.strip()
    if not raw:
        return None
    if not _SCHEDULE.fullmatch(raw):
        raise OperationError(-6)
    try:
        when = datetime.strptime(raw, "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI).timestamp()
    except ValueError:
        raise OperationError(-6) from None
    if when < now - 86400:
        raise OperationError(-4)
    return when if when > now else None


def _parse_retry_time(raw: str) -> float:
    """§2.2 retryTime: validity in minutes, "若未指定，則以該簡訊平台之預設 1440 分鐘帶出".

    Decision: a value that is not a positive whole number is -99 (the only error the
    section documents; the .NET service fails to read it).
    """
    raw = raw.strip()
    if not raw:
        return 1440 * 60.0
    if not raw.isdigit() or int(raw) <= 0:
        raise OperationError(-99)
    return int(raw) * 60.0


def _mms_subject_ok(subject: str) -> bool:
    """§5.1 "主旨中英文限制 15 字，純英數限制 95 字": ASCII-only subjects get 95."""
    limit = 95 if subject.isascii() else 15
    return len(subject) <= limit


# -- SOAP envelopes ----------------------------------------------------------------------------
def soap_envelope(version: str, operation: str, result: str) -> str:
    """``<{op}Response xmlns="http://tempuri.org/"><{op}Result>…`` as ASP.NET writes it."""
    inner = f"<{operation}Result>{escape(result)}</{operation}Result>" if result else f"<{operation}Result />"
    return (
        f'{_XML_DECL}<soap:Envelope xmlns:soap="{_ENVELOPE_NS[version]}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{operation}Response xmlns="{TEMPURI}">{inner}</{operation}Response>'
        "</soap:Body></soap:Envelope>"
    )


def soap_fault(fault: SoapFault) -> Response:
    ns = _ENVELOPE_NS[fault.version]
    if fault.version == "1.1":
        content = (
            f"<soap:Fault><faultcode>soap:{fault.code}</faultcode>"
            f"<faultstring>{escape(fault.reason)}</faultstring><detail /></soap:Fault>"
        )
    else:
        code = {"Client": "Sender", "Server": "Receiver"}.get(fault.code, fault.code)
        content = (
            f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value></soap:Code>"
            f'<soap:Reason><soap:Text xml:lang="en">{escape(fault.reason)}</soap:Text></soap:Reason>'
            "<soap:Detail /></soap:Fault>"
        )
    body = (
        f'{_XML_DECL}<soap:Envelope xmlns:soap="{ns}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soap:Body>{content}</soap:Body></soap:Envelope>'
    )
    return Response(body, status_code=500, media_type=_CONTENT_TYPE[fault.version])


def _version_of(content_type: str) -> str | None:
    media = content_type.split(";", 1)[0].strip().lower()
    return {"application/soap+xml": "1.2", "text/xml": "1.1"}.get(media)


def _action_of(content_type: str) -> str | None:
    """SOAP 1.2 carries the action as a ``action="…"`` media-type parameter (optional)."""
    match = re.search(r';\s*action\s*=\s*"?([^";]*)"?', content_type, re.IGNORECASE)
    return match.group(1) if match else None


def parse_request(
    headers: Mapping[str, str], body: bytes, operations: Mapping[str, Operation]
) -> tuple[str, Operation, dict[str, str]]:
    """(SOAP version, operation, parameters) of one request, or a ``SoapFault``.

    ``headers`` is case-insensitive (Starlette's), keys in lower case.
    """
    content_type = headers.get("content-type", "")
    version = _version_of(content_type)
    if version is None:  # ASP.NET answers this before any SOAP processing
        raise SoapFault("1.2", "Client", f"Request format is invalid: {content_type or '(none)'}.")
    if len(body) > MAX_BODY:
        raise SoapFault(version, "Client", "Maximum request length exceeded.")
    try:
        # forbid_dtd: any DOCTYPE (XML bomb, external entity) is refused outright, as .NET's
        # XmlReader does by default ("DTD is prohibited in this XML document").
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise SoapFault(version, "Client", "DTD is prohibited in this XML document.") from None
    except (ParseError, ValueError) as exc:
        raise SoapFault(version, "Client", f"Server was unable to read request. ---> {exc}") from None
    envelope_ns = {f"{{{SOAP11}}}Envelope": "1.1", f"{{{SOAP12}}}Envelope": "1.2"}.get(root.tag)
    if envelope_ns is None:
        raise SoapFault(version, "VersionMismatch", "Possible SOAP version mismatch: unknown envelope.")
    if envelope_ns != version:
        raise SoapFault(
            version,
            "VersionMismatch",
            f"Possible SOAP version mismatch: Envelope namespace {_ENVELOPE_NS[envelope_ns]} "
            f"was unexpected. Expecting {_ENVELOPE_NS[version]}.",
        )
    soap_body = root.find(f"{{{_ENVELOPE_NS[version]}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise SoapFault(version, "Client", "Server was unable to read request: no SOAP Body element.")
    call = soap_body[0]
    name = call.tag.rsplit("}", 1)[-1]
    if not call.tag.startswith(f"{{{TEMPURI}}}") or name not in operations:
        raise SoapFault(version, "Client", f"Server did not recognize the request element: {call.tag}.")
    # SOAP 1.1 dispatches on SOAPAction (ASP.NET's default routing); 1.2 on the element,
    # checking the optional action parameter.
    action = headers.get("soapaction") if version == "1.1" else _action_of(content_type)
    if version == "1.1" and action is None:
        raise SoapFault(version, "Client", "Server did not recognize the value of HTTP Header SOAPAction: .")
    if action is not None and action.strip().strip('"') != TEMPURI + name:
        raise SoapFault(version, "Client", f"Server did not recognize the value of HTTP Header SOAPAction: {action}.")
    operation = operations[name]
    params: dict[str, str] = {}
    for child in call:
        # Parameters must be in the tempuri namespace (document/literal); an unqualified
        # element is ignored by ASP.NET and the parameter reads as missing.
        local = child.tag.rsplit("}", 1)[-1]
        if child.tag != f"{{{TEMPURI}}}{local}" or local not in operation.params:
            continue
        if len(child):
            # a string parameter with element content: a client that did not escape its
            # XML (provider notes: "One public client built envelopes without escaping")
            raise SoapFault(
                version,
                "Client",
                f"Server was unable to read request. ---> There is an error in XML document: "
                f"<{local}> holds elements, expected a string.",
            )
        params[local] = child.text or ""
    return version, operation, params


def _service_of(path: str) -> str:
    return "MMS" if path.lower().rstrip("/").endswith("mms.asmx") else "SMS"


# -- the emulator -------------------------------------------------------------------------------
class Every8dSoapEmulator(Emulator):
    """EVERY8D Web Services API 2.1 (SMS.asmx and MMS.asmx)."""

    name: ClassVar[str] = "every8d-soap"
    prefix: ClassVar[str] = "/every8d-soap"
    rate_limit: ClassVar[float | None] = None  # the document states none
    #: §3.1 "Retry 次數最多 10 次，錯誤超過 10 次後將不再傳送"
    callback_retries: ClassVar[int] = 10
    callback_backoff: float = 0.2
    #: §1.1 "-999 … 認證錯誤超過 10 次將封鎖此服務"
    lockout_after: ClassVar[int] = 10

    def __init__(self, state: ProviderState, engine: Engine) -> None:
        super().__init__(state, engine)
        self.sessions: dict[str, Session] = {}
        self._session_of: dict[str, str] = {}  # username -> key ("一個帳號只會有一個 SessionKey")
        self._logins: dict[str, _LoginRecord] = {}
        #: the clock that decides the session day; tests move it to "tomorrow"
        self.clock: Callable[[], float] = time.time

    # -- routes ----------------------------------------------------------------------------

    def reset(self) -> None:
        """``/_sandbox/reset``: sessions and login-failure counts go too."""
        self.sessions.clear()
        self._session_of.clear()
        self._logins.clear()

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route("/API21/SOAP/SMS.asmx", self._endpoint, methods=["GET", "POST"]),
            Route("/API21/SOAP/MMS.asmx", self._endpoint, methods=["GET", "POST"]),
        ]

    async def _endpoint(self, request: Request) -> Response:
        service = _service_of(request.url.path)
        operations = SERVICES[service]
        if request.method == "GET":
            if any(k.lower() == "wsdl" for k in request.query_params):
                return Response(wsdl(service, request), media_type="text/xml; charset=utf-8")
            return HTMLResponse(_help_page(service, operations))
        request_id = self.state.next_request_id()
        body = await request.body()
        try:
            version, operation, params = parse_request(request.headers, body, operations)
        except SoapFault as fault:
            return soap_fault(fault)
        client_ip = request.client.host if request.client else None
        try:
            result = self.call(operation, params, request_id=request_id, client_ip=client_ip)
        except OperationError as error:
            result = self.error_result(operation, error.code, error.detail)
        except Exception:  # §1.2 註 1 "-99 主機端發生不明錯誤"
            log.exception("every8d-soap %s failed", operation.name)
            result = self.error_result(operation, -99)
        return Response(soap_envelope(version, operation.name, result), media_type=_CONTENT_TYPE[version])

    def call(self, operation: Operation, params: dict[str, str], *, request_id: int, client_ip: str | None) -> str:
        p = {name: params.get(name, "") for name in operation.params}
        if operation.name == "getConnection":
            return self.get_connection(p["userID"], p["password"], client_ip)
        if operation.name == "closeConnection":
            return self.close_connection(p["sessionKey"])
        account = self.session_account(p["sessionKey"])
        if operation.name in ("sendSMS", "sendMessage"):
            return self.send_sms(account, p, request_id)
        if operation.name == "sendParamSMS":
            return self.send_param_sms(account, p, request_id)
        if operation.name == "sendMMS":
            return self.send_mms(account, p, request_id)
        if operation.name in ("getDeliveryStatus", "getMMSDeliveryStatus"):
            kind = "mms" if operation.name == "getMMSDeliveryStatus" else "sms"
            return self.delivery_status(account, p["batchID"], p["pageNo"], kind)
        if operation.name == "getCredit":
            return f"{account.points:.2f}"  # §4.1 "2310.00"
        if operation.name in ("eraseBooking", "eraseMMSBooking"):
            return self.erase_booking(account, p["batchID"], "mms" if "MMS" in operation.name else "sms")
        raise AssertionError(operation.name)

    @staticmethod
    def error_result(operation: Operation, code: int, detail: str = "") -> str:
        """A negative answer in the operation's own format."""
        if operation.reply == "connection":
            return connection_xml(code)
        if operation.reply == "log":
            text = ERROR_TEXT.get(code, ERROR_TEXT[-99])
            return f"{_XML_DECL}<SMS_LOG><CODE>{code}</CODE><DESCRIPTION>{escape(text)}</DESCRIPTION></SMS_LOG>"
        if operation.reply == "close":
            return "-1"
        return f"{code},{ERROR_TEXT.get(code, ERROR_TEXT[-99])}{detail}"

    # -- sessions (§1.1, §1.3) ----------------------------------------------------------------
    def _today(self) -> date:
        return taipei(self.clock()).date()

    def get_connection(self, user: str, password: str, client_ip: str | None) -> str:
        account = self.state.accounts.get(user)
        if account is None:
            return connection_xml(-100)
        record = self._logins.get(user)
        if record is None or record.account is not account:
            # a new or updated Account (control API ``POST /_sandbox/every8d-soap/accounts``)
            # clears the failure count and the lock: the sandbox's "服務窗口" unlocking it
            record = self._logins[user] = _LoginRecord(account)
        if record.locked or not account.enabled:
            return connection_xml(-999)
        if not account.authenticates(password):
            record.failures += 1
            # Decision: the 10th failure still answers -101; from then on -999, even with
            # the right password, until the account is updated through the control API.
            record.locked = record.failures >= self.lockout_after
            return connection_xml(-101)
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return connection_xml(-101)  # Decision: an IP off the allow-list, not counted
        record.failures = 0  # Decision: the count is of consecutive failures
        key = self._session_of.get(user)
        session = self.sessions.get(key) if key else None
        if session is None or session.day != self._today():
            if session is not None:
                self.sessions.pop(session.key, None)
            session = Session(f"{self.state.random.getrandbits(128):032x}", user, self._today())
            self.sessions[session.key] = session
            self._session_of[user] = session.key
        # "因一個帳號只會有一個 SessionKey": a second login gets the same key back
        return connection_xml(0, session.key)

    def session_account(self, key: str) -> Account:
        session = self.sessions.get(key.strip())
        if session is None or session.day != self._today():
            raise OperationError(-301)  # "Session 資料不存在，請重新登入。"
        account = self.state.accounts.get(session.username)
        if account is None:
            raise OperationError(-301)
        return account

    def close_connection(self, key: str) -> str:
        session = self.sessions.get(key.strip())
        if session is None or session.day != self._today():
            return "-1"
        # "於 closeConnection 後該 SessionKey 就會失效": for every system sharing the account
        del self.sessions[session.key]
        self._session_of.pop(session.username, None)
        return "1"

    # -- sending (§1.2, §2.2, §2.3, §5.1) -------------------------------------------------------
    def _recipients(self, mobiles: str, text: str, send_at: float | None) -> list[_Recipient]:
        """§1.2 mobile: "多筆接收人時，請以半形逗點隔開(,)"."""
        items = [m.strip() for m in mobiles.split(",")]
        items = [m for m in items if m]  # Decision: blanks (a trailing comma) are skipped
        if not items:
            raise OperationError(-41)
        recipients = []
        for raw in items:
            found = classify_mobile(raw)
            if found is None:
                raise OperationError(-306, ":" + raw)  # notes: "-306,手機格式不符:+1-202-895-1800"
            recipients.append(_Recipient(raw, found[0], found[1], text, send_at))
        return recipients

    def send_sms(self, account: Account, p: dict[str, str], request_id: int) -> str:
        if not p["content"]:
            raise OperationError(-24)
        recipients = self._recipients(p["mobile"], p["content"], _parse_send_time(p["sendTime"], time.time()))
        validity = _parse_retry_time(p.get("retryTime", ""))
        return self._accept(account, recipients, "sms", p["subject"], validity, request_id)

    def send_param_sms(self, account: Account, p: dict[str, str], request_id: int) -> str:
        """§2.3: ``<REPS><USER NAME MOBILE EMAIL SENDTIME><![CDATA[text]]></USER>…</REPS>``."""
        now = time.time()
        default_at = _parse_send_time(p["sendTime"], now)
        try:
            # the inner document is untrusted XML too: same DTD/entity ban
            reps = SafeET.fromstring(p["contentXML"], forbid_dtd=True)
        except (DefusedXmlException, ParseError, ValueError):
            raise OperationError(-99) from None  # Decision: no code is documented
        users: list[Element] = [] if reps.tag != "REPS" else list(reps.iter("USER"))
        if not users:
            raise OperationError(-41)
        recipients = []
        for user in users:
            # ElementTree joins adjacent CDATA sections, so a text split around "]]>" reads
            # back whole
            text = "".join(user.itertext())
            raw = (user.get("MOBILE") or "").strip()
            if not raw:
                raise OperationError(-41)
            if not text:
                raise OperationError(-24)
            found = classify_mobile(raw, param_sms=True)
            if found is None:
                raise OperationError(-306, ":" + raw)
            own = user.get("SENDTIME") or ""
            send_at = _parse_send_time(own, now) if own.strip() else default_at
            recipients.append(
                _Recipient(
                    raw,
                    found[0],
                    found[1],
                    text,
                    send_at,
                    name=(user.get("NAME") or "")[:50],  # §2.3 NAME 長度 50
                    email=user.get("EMAIL") or "",
                )
            )
        return self._accept(account, recipients, "sms", p["subject"], 1440 * 60.0, request_id)

    def send_mms(self, account: Account, p: dict[str, str], request_id: int) -> str:
        """§5.1 sendMMS; pricing from the provider notes (newer edition): 3 points ≤ 50 KB,
        5 points ≤ 300 KB of text + image."""
        if not _mms_subject_ok(p["subject"]):
            raise OperationError(-303)
        content = p["content"]
        # Decision: an MMS may be image-only (the image is the message), so no -24 here
        if len(content) > MMS_MAX_CHARS:
            raise OperationError(-5)
        recipients = self._recipients(p["mobile"], content, _parse_send_time(p["sendTime"], time.time()))
        for r in recipients:
            if r.international:
                raise OperationError(-306, ":" + r.raw)  # §5.1 "MMS 簡訊不支援國際門號"
        validity = _parse_retry_time(p["retryTime"])
        if not p["attachment"].strip():
            raise OperationError(-304)
        kind = p["type"].strip().lower()
        if kind not in MMS_TYPES:
            raise OperationError(-305)
        try:
            # §5.1 "binary base64 encoded + urlEncode": undo the URL layer (``unquote``, so a
            # client that forgot it and sent raw '+' still works), then base64
            image = base64.b64decode(unquote(p["attachment"].strip()), validate=True)
        except (binascii.Error, ValueError):
            raise OperationError(-304) from None
        size = len(image) + len(content.encode("utf-8"))
        if size > MMS_MAX_BYTES:
            raise OperationError(-314)
        points = 3 if size <= MMS_SMALL_BYTES else 5
        extra = {"image_type": kind, "image_bytes": len(image), "mms_bytes": size}
        return self._accept(
            account, recipients, "mms", p["subject"], validity, request_id, mms_points=points, extra=extra
        )

    def _accept(
        self,
        account: Account,
        recipients: list[_Recipient],
        kind: str,
        subject: str,
        validity: float,
        request_id: int,
        *,
        mms_points: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Store one ``Accepted`` per recipient, charge, release; ``CREDIT,SENDED,COST,UNSEND,BATCH_ID``.

        Insufficient credit (§1.2 UNSEND "無額度時發送的通數，當該值大於 0 而剩餘點數等於 0
        時表示有部份的簡訊因無額度而無法被發送"): recipients are taken in order and each is
        sent if the balance still covers it; the others are recorded with status 301 (the
        HTTP document's "無額度(或額度不足)無法發送"), charged nothing and counted in UNSEND.
        CREDIT is the balance actually left (0 when every message costs the same).
        A number abroad on an account whose international SMS is off gets status 500 (§3.2)
        and is neither sent, charged nor counted.
        """
        batch = self.state.uuid()
        sent, unsent, cost = 0, 0, Decimal(0)
        accepted: list[Accepted] = []
        for index, r in enumerate(recipients, 1):
            points = Decimal(mms_points if mms_points is not None else sms_points(r.text))
            if r.international:
                points *= 3  # §1.2 "國際簡訊(非+886 開頭)則需以三倍點數計價之"
            status = ""
            if r.international and not account.international:
                status, points = STATUS_NO_INTERNATIONAL, Decimal(0)
            elif not self.state.charge(account, points):
                status, points = STATUS_NO_CREDIT, Decimal(0)
                unsent += 1
            else:
                sent += 1
                cost += points
            message = self.state.accept(
                account=account.username,
                request_id=request_id,
                recipient=r.raw,
                text=r.text,
                message_id=f"{batch}#{index}",
                batch_id=batch,
                points=points,
                send_at=r.send_at,
                validity=validity,
                callback_url=account.callback_url,
                kind=kind,
                extra={
                    "mobile": r.mobile,
                    "name": r.name,
                    "email": r.email,
                    "subject": subject,
                    "international": r.international,
                    **(extra or {}),
                    **({"status": status} if status else {}),
                },
            )
            accepted.append(message)
        for message in accepted:
            if message.extra.get("status"):
                message.state = "rejected"
                message.final_at = time.time()
                self.on_final(message)
            else:
                self.release(message)
        return f"{account.points:.2f},{sent},{_fmt_points(cost)},{unsent},{batch}"

    # -- status (§3.2, §5.2) ---------------------------------------------------------------------
    def _batch(self, account: Account, batch_id: str, kind: str) -> list[Accepted]:
        return [
            m
            for m in self.state.find(batch_id.strip())
            if m.batch_id == batch_id.strip() and m.account == account.username and m.kind == kind
        ]

    @staticmethod
    def status_code(message: Accepted) -> str:
        fixed = message.extra.get("status")
        if fixed:
            return str(fixed)
        if message.state == "scheduled":
            return STATUS_SCHEDULED
        if message.state == "canceled":
            return STATUS_CANCELED
        table = MMS_STATUS if message.kind == "mms" else SMS_STATUS
        return table.get(message.state, STATUS_PENDING)

    def delivery_status(self, account: Account, batch_id: str, page_no: str, kind: str) -> str:
        """§3.2 ``<SMS_LOG><CODE>0</CODE>…<GET_DELIVERY_STATUS COUNT="n"><SMS>…``.

        Decisions: an unknown batch (or another account's) answers CODE 0 with COUNT="0";
        a page past the end answers the COUNT with no rows; a pageNo that is not a number
        answers -99. MOBILE is padded with trailing spaces to 20 characters (provider
        notes: "MOBILE values in delivery status come padded with trailing spaces"; 20 is
        the MOBILE column length of §2.3).
        """
        page_text = page_no.strip()
        if page_text and not page_text.isdigit():
            raise OperationError(-99)
        page = max(1, int(page_text or "1"))
        rows = self._batch(account, batch_id, kind)
        replies: dict[int, list[tuple[float, str]]] = {}
        for reply in self.state.replies:
            if reply.to_message is not None:
                replies.setdefault(reply.to_message.seq, []).append((reply.received_at, reply.text))
        parts = [
            f"{_XML_DECL}<SMS_LOG><CODE>0</CODE><DESCRIPTION>發送狀態查詢成功</DESCRIPTION>",
            f'<GET_DELIVERY_STATUS COUNT="{len(rows)}">',
        ]
        for m in rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]:
            sent_at = m.send_at if m.send_at is not None else m.received_at
            parts.append(
                f"<SMS><NAME>{escape(str(m.extra.get('name', '')))}</NAME>"
                f"<MOBILE>{escape(str(m.extra.get('mobile', m.recipient))).ljust(20)}</MOBILE>"
                f"<SENT_TIME>{_sent_time(sent_at)}</SENT_TIME>"
                f"<COST>{m.points:.2f}</COST><STATUS>{self.status_code(m)}</STATUS>"
            )
            for received_at, text in replies.get(m.seq, []):
                parts.append(
                    f"<REPLY_SMS><REPLY_TIME>{_reply_time(received_at)}</REPLY_TIME>"
                    f"<MESSAGE>{_cdata(text)}</MESSAGE></REPLY_SMS>"
                )
            parts.append("</SMS>")
        parts.append("</GET_DELIVERY_STATUS></SMS_LOG>")
        return "".join(parts)

    # -- cancel (§4.2, §4.3) ----------------------------------------------------------------------
    def erase_booking(self, account: Account, batch_id: str, kind: str) -> str:
        """``a,b`` = (deleted, refunded points); "空值 查無資料" = empty string.

        Only messages still waiting for their time can be deleted, and their points come
        back. Decision: a batch with nothing left to delete (all sent, or unknown) is
        "查無資料" too: the empty answer.
        """
        deleted, refund = 0, Decimal(0)
        for m in self._batch(account, batch_id, kind):
            if m.state == "scheduled" and self.cancel(m):
                deleted += 1
                refund += m.points
                account.points += m.points
        if not deleted:
            return ""
        return f"{deleted},{_fmt_points(refund)}"

    # -- callbacks (§3.1) ---------------------------------------------------------------------------
    def _callback(self, url: str, params: list[tuple[str, str]], label: str) -> None:
        """§3.1: HTTP GET ``<url>?BatchID=…&RM=…&RT=…&STATUS=…&SM=…&MR=…&USERID=…``; values
        URL-encoded once (UTF-8); retried while the answer is not HTTP 200, at most 10 times."""
        engine, state, retries, backoff = (
            self.engine,
            self.state,
            self.callback_retries,
            self.callback_backoff,
        )

        async def attempt() -> bool:
            return await deliver_with_retries(
                engine,
                state,
                method="GET",
                url=url,
                params=params,
                accept=lambda status, body: status == 200,  # "HTTP 連線狀態碼非 200" -> retry
                retries=retries,
                backoff=backoff,
            )

        self.engine.enqueue(label, attempt)

    def on_final(self, message: Accepted) -> None:
        # §3.1: the URL is set up by EVERY8D for the account ("請提供可此接收網頁之 URL 給我們
        # 做系統設定") — Account.callback_url, copied onto the message when it was accepted
        if not message.callback_url:
            return
        at = message.final_at or time.time()
        params = [
            ("BatchID", message.batch_id),
            ("RM", str(message.extra.get("mobile", message.recipient))),
            ("RT", _rt(at)),
            ("STATUS", self.status_code(message)),
            # provider notes: "on status reports SM holds the original text"
            ("SM", message.text),
            # MR: "若於發送時帶入此代碼" — the SOAP send operations take no record number,
            # so it is always empty here (correlate by BatchID + RM)
            ("MR", message.record_no),
            ("USERID", message.account),
        ]
        self._callback(message.callback_url, params, f"every8d-soap report {message.message_id}")

    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        """§3.1 "回覆簡訊之判斷": a reply reaches the same URL with STATUS=999, text in SM;
        it is also listed under its message as REPLY_SMS in the status query (§3.2)."""
        if to_message is None:
            # Decision: a reply with no message named goes to the latest message this
            # account sent to that number (what a two-way platform does)
            tail = re.sub(r"\D", "", sender)[-9:]
            for m in reversed(self.state.messages):
                if m.account == account.username and re.sub(r"\D", "", m.recipient)[-9:] == tail:
                    to_message = m
                    break
            if to_message is not None and self.state.replies and self.state.replies[-1].text == text:
                self.state.replies[-1].to_message = to_message
        url = account.reply_callback_url or account.callback_url
        if not url:
            return
        found = classify_mobile(sender.strip())
        params = [
            ("BatchID", to_message.batch_id if to_message else ""),
            ("RM", found[0] if found else sender),
            ("RT", _rt(time.time())),
            ("STATUS", STATUS_REPLY),
            ("SM", text),
            ("MR", to_message.record_no if to_message else ""),
            ("USERID", account.username),
        ]
        self._callback(url, params, f"every8d-soap reply from {sender}")

    # -- faults ---------------------------------------------------------------------------------------
    def busy_response(self) -> Response:
        """-97 "系統忙碌中，請稍後再試" in the reply format of the operation asked (§1.1).

        The document lists -97 for getConnection only; Decision: every operation answers
        its own -97 (``-97,系統忙碌中，請稍後再試`` for the CSV ones, an XML CODE for the XML
        ones, ``-1`` for closeConnection, whose only failure is -1).
        """
        return _BusyAnswer(self)

    def malformed_response(self) -> Response:
        """A truncated envelope: HTTP 200 that no XML parser accepts."""
        return Response(
            f'{_XML_DECL}<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><sendSMSResponse xmlns="{TEMPURI}">'
            "<sendSMSResult>1230.00,4,4,0,22047",
            status_code=200,
            media_type=_CONTENT_TYPE["1.2"],
        )


class _BusyAnswer(Response):
    """An ASGI response that reads the request first, to answer -97 in the right shape."""

    def __init__(self, emulator: Every8dSoapEmulator):
        super().__init__(b"", status_code=200)
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        operations = SERVICES[_service_of(scope.get("path", ""))]
        response: Response
        if scope.get("method") != "POST":
            response = PlainTextResponse("Service Unavailable", status_code=503)
        else:
            try:
                version, operation, _ = parse_request(headers, body, operations)
            except SoapFault as fault:
                response = soap_fault(fault)
            else:
                result = self.emulator.error_result(operation, -97)
                response = Response(soap_envelope(version, operation.name, result), media_type=_CONTENT_TYPE[version])
        await response(scope, receive, send)


def connection_xml(code: int, key: str = "") -> str:
    """§1.1 getConnection's XML string."""
    return (
        f"{_XML_DECL}<SMS><GET_CONNECTION><CODE>{code}</CODE><SESSION_KEY>{key}</SESSION_KEY>"
        f"<DESCRIPTION>{escape(CONNECTION_TEXT.get(code, ''))}</DESCRIPTION></GET_CONNECTION></SMS>"
    )


# -- WSDL and help page (ASMX publishes both; not in the document) ---------------------------------
def wsdl(service: str, request: Request) -> str:
    operations = SERVICES[service]
    location = quoteattr(str(request.url.replace(query="")))
    types: list[str] = []
    messages: list[str] = []
    port_ops: list[str] = []
    binding11: list[str] = []
    binding12: list[str] = []
    for op in operations.values():
        fields = "".join(f'<s:element minOccurs="0" maxOccurs="1" name="{p}" type="s:string" />' for p in op.params)
        types.append(
            f'<s:element name="{op.name}"><s:complexType><s:sequence>{fields}</s:sequence></s:complexType>'
            f'</s:element><s:element name="{op.name}Response"><s:complexType><s:sequence>'
            f'<s:element minOccurs="0" maxOccurs="1" name="{op.name}Result" type="s:string" />'
            "</s:sequence></s:complexType></s:element>"
        )
        messages.append(
            f'<wsdl:message name="{op.name}SoapIn"><wsdl:part name="parameters" element="tns:{op.name}" />'
            f'</wsdl:message><wsdl:message name="{op.name}SoapOut">'
            f'<wsdl:part name="parameters" element="tns:{op.name}Response" /></wsdl:message>'
        )
        port_ops.append(
            f'<wsdl:operation name="{op.name}"><wsdl:input message="tns:{op.name}SoapIn" />'
            f'<wsdl:output message="tns:{op.name}SoapOut" /></wsdl:operation>'
        )
        for target, prefix in ((binding11, "soap"), (binding12, "soap12")):
            target.append(
                f'<wsdl:operation name="{op.name}"><{prefix}:operation soapAction="{TEMPURI}{op.name}" '
                f'style="document" /><wsdl:input><{prefix}:body use="literal" /></wsdl:input>'
                f'<wsdl:output><{prefix}:body use="literal" /></wsdl:output></wsdl:operation>'
            )
    http = "http://schemas.xmlsoap.org/soap/http"
    return (
        f"{_XML_DECL}"
        '<wsdl:definitions xmlns:s="http://www.w3.org/2001/XMLSchema" '
        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
        'xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/" '
        f'xmlns:tns="{TEMPURI}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" targetNamespace="{TEMPURI}">'
        f'<wsdl:types><s:schema elementFormDefault="qualified" targetNamespace="{TEMPURI}">'
        f"{''.join(types)}</s:schema></wsdl:types>{''.join(messages)}"
        f'<wsdl:portType name="{service}Soap">{"".join(port_ops)}</wsdl:portType>'
        f'<wsdl:binding name="{service}Soap" type="tns:{service}Soap"><soap:binding transport="{http}" />'
        f"{''.join(binding11)}</wsdl:binding>"
        f'<wsdl:binding name="{service}Soap12" type="tns:{service}Soap"><soap12:binding transport="{http}" />'
        f"{''.join(binding12)}</wsdl:binding>"
        f'<wsdl:service name="{service}"><wsdl:port name="{service}Soap" binding="tns:{service}Soap">'
        f"<soap:address location={location} /></wsdl:port>"
        f'<wsdl:port name="{service}Soap12" binding="tns:{service}Soap12">'
        f"<soap12:address location={location} /></wsdl:port></wsdl:service></wsdl:definitions>"
    )


def _help_page(service: str, operations: Mapping[str, Operation]) -> str:
    items = "".join(f"<li>{op.name}({', '.join(op.params)})</li>" for op in operations.values())
    return (
        f"<html><head><title>{service} Web Service</title></head><body><h1>{service}</h1>"
        f"<p>The following operations are supported (namespace {TEMPURI}). "
        f'For a formal definition, please review the <a href="?WSDL">Service Description</a>.</p>'
        f"<ul>{items}</ul></body></html>"
    )
