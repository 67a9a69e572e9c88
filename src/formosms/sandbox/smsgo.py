"""SMSGo (簡訊購, HOLDEN International) HTTP API emulator.

Written from ``shared/specs/smsgo-api.md`` (the clean reading of the v6.4 document; the
OCR scan ``smsgo-api-6.4.ocr.txt`` agrees wherever it is legible). Section numbers below
(§1 … §9) are the clean reading's.

Endpoints, all under ``/sms_gw/`` (IIS: page names are case-insensitive), GET or POST
(form body), every field URL-encoded once as UTF-8 whatever ``encoding`` says:

- ``sendsms.aspx``        send one text to up to 50 numbers (§1)
- ``query.asp``           status of one message (§2)
- ``queryBulk.asp``       status of several messages (§3)
- ``query_point.asp``     points balance (§4)
- ``sendsms_cancel.asp``  cancel a scheduled send (§5)

``password`` is the account password or one of its API keys (§1, v6.2). Errors come with
HTTP 200, a negative ``statuscode`` (table 1, §8) and a negative ``msgid``.

Decisions where the document is silent (each is repeated where it is implemented):

- ``dlvtime`` in the past is sent at once (§1: "Empty = now"; an elapsed time is "now"
  too); an unreadable one is ``-1``.
- Text beyond a single SMS is *truncated*, as §1 note 1 says: the stored text is what was
  really sent, with ``extra["truncated"] = True``. Long (``L…``) text beyond 330
  characters is truncated the same way (§1 note 2 gives only the ceiling).
- Characters are Unicode code points; "Chinese" means any non-ASCII character (§1
  ``smbody``: 70 with any Chinese, 160 pure English); long parts hold 67 / 153.
- International numbers cost what Taiwan numbers cost: the document gives no
  international price, and the library's estimate follows the document too (a guess on
  both sides would hide a misreading). Taiwan numbers must be written
  ``09`` + 8 digits (§1); ``+886…`` is refused with ``-5``.
- A ``replyurl`` with an encoding other than BIG5/ASCII/UCS2, or one that is not an
  http(s) URL, is ignored (§1: "Only with BIG5/ASCII/UCS2"; note 4: "A valid replyurl
  turns on replies"): no replies and no surcharge. Longer than 300 characters: ``-1``.
- Status before a final state (undocumented): ``statuscode`` ``0`` with ``statusstr``
  ``SCHEDULED`` (waiting for ``dlvtime``) or ``SENT`` (handed to the SMSC, no report
  yet). Final states use table 2 with ``statuscode`` ``0`` for ``DELIVRD`` and ``-10``
  ("send fail", table 1: the only code that says the message did not go through) for
  the others; a canceled reservation reads ``-10|DELETED`` ("message deleted", table 2).
- Unknown ``msgid`` in a query or a cancel: ``-1`` ("CGI string error **or Unknown**",
  table 1). A cancel of a message that is no longer waiting: ``-1`` too (never ``-10``,
  which a client would read as "try again").
- ``sendsms_cancel.asp`` answers in the send reply's shape, ``point`` = points refunded.
- ``query_point.asp`` errors (plain): ``statuscode=…`` / ``statusstr=…`` lines; JSON: the
  balance shape with a negative ``statuscode``.
- ``rtype=XML`` (shape undocumented) answers plain text; ``queryBulk.asp`` always answers
  plain text (no JSON shape documented).
- A disabled account with the right password gets ``-6`` ("Closed User", table 1).
- Busy (fault injection): ``-10`` "send fail" — §1: "if the reply shows a sending fault,
  you may resend through the backup URL", i.e. the code that means "try again".
- Replies (§7): GET to the message's ``replyurl`` within ``replydays`` (default 3, at most
  30), ``dstaddr`` = the SMSGo number the handset replied to (``REPLY_NUMBER``),
  ``encoding`` ``UCS2`` when the reply has non-ASCII text else ``ASCII``, ``smbody``
  UTF-8, ``timestamp`` ``YYYYMMDDHHMMSS`` Taiwan time. Any HTTP 200 acknowledges it;
  otherwise it is retried 3 times like a delivery report.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from formosms.sandbox.core import Accepted, Account, deliver_with_retries, taipei
from formosms.sandbox.emulator import Emulator, form_fields
from formosms.timefmt import TAIPEI

# -- table 1 (§8): statuscode -> statusstr (only -1's text is quoted by the document) ------
CGI_ERROR = -1
AUTH_ERROR = -2
B_NUMBER = -5
CLOSED_USER = -6
BAD_ENCODING = -7
NO_POINTS = -8
BAD_AMOUNT = -9
SEND_FAIL = -10

STATUSSTR: dict[int, str] = {
    CGI_ERROR: "CGI string error!!",  # FAQ 7, verbatim
    AUTH_ERROR: "Authorization error",
    B_NUMBER: "B Number error",
    CLOSED_USER: "Closed User",
    BAD_ENCODING: "Invalid Encoding",
    NO_POINTS: "Not enough points",
    BAD_AMOUNT: "Invalid msisdn amount",
    SEND_FAIL: "Send fail",
}

#: neutral outcome -> (statuscode, table-2 statusstr) in reports and queries
OUTCOMES: dict[str, tuple[str, str]] = {
    "delivered": ("0", "DELIVRD"),
    "undeliverable": ("-10", "UNDELIV"),
    "expired": ("-10", "EXPIRED"),
    "rejected": ("-10", "REJECTD"),
}
#: undocumented states before a final one (see the module docstring)
SCHEDULED = ("0", "SCHEDULED")
SENT = ("0", "SENT")
CANCELED = ("-10", "DELETED")

# -- §1 encoding and its rules ----------------------------------------------------------
ENCODINGS = frozenset({"BIG5", "ASCII", "UCS2", "PBIG5", "PASCII", "LBIG5", "LASCII", "LUCS2", "PUSH"})
PLAIN = frozenset({"BIG5", "ASCII", "UCS2"})  # notes 4, 5: replyurl and international only these
LONG = frozenset({"LBIG5", "LASCII", "LUCS2"})
LONG_MAX = 330  # note 2
PUSH_MAX_BYTES = 88  # note 3: smbody + wapurl, a Chinese character counting 3 bytes (UTF-8)
MAX_RECIPIENTS = 50  # §1 dstaddr, FAQ 2
INTERNATIONAL_FACTOR = 1  # undocumented: see the module docstring
REPLYURL_MAX = 300  # note 4
REPLYDAYS_DEFAULT, REPLYDAYS_MAX = 3, 30
DLVTIME_FORMAT = "%Y/%m/%d %H:%M:%S"  # §1: YYYY/MM/DD hh24:mm:ss, Taiwan time
#: the SMSGo number handsets reply to (sandbox choice; §7 only says "the number replied to")
REPLY_NUMBER = "0911510510"

ACK_MAGIC = "magicid=tccrd_sms_gateway_rpack"  # §6
CALLBACK_RETRIES = 3  # §6: "retries 3 times"

_TAIWAN = re.compile(r"09\d{8}")
# §1: "+" then country code then number; China: 86 then 11 digits starting 13/15/18 (the
# newer 14/16/17/19 ranges are accepted too: the document predates them).
_INTERNATIONAL = re.compile(r"\+[1-9]\d{7,14}")
_CHINA = re.compile(r"\+861[3-9]\d{9}")


def single_limit(text: str) -> int:
    """§1 smbody: 70 characters when any Chinese (non-ASCII) is present, else 160."""
    return 160 if text.isascii() else 70


def long_parts(text: str) -> int:
    """Points of a long SMS: one part if it fits a single one, else 153 / 67 per part."""
    if len(text) <= single_limit(text):
        return 1
    return math.ceil(len(text) / (153 if text.isascii() else 67))


def recipient_error(number: str) -> int | None:
    """§1 dstaddr: ``09`` + 8 digits, or ``+`` country code number; else -5."""
    if _TAIWAN.fullmatch(number):
        return None
    # a literal "+" in a query string decodes to a space: " 8613…" is the client's
    # encoding bug (§1: "%2b8613681912700 on the wire") and no number SMSGo can reach
    if not _INTERNATIONAL.fullmatch(number) or number.startswith("+886"):
        return B_NUMBER
    if number.startswith("+86") and not _CHINA.fullmatch(number):
        return B_NUMBER
    return None


def _points_text(points: Decimal) -> str:
    return str(int(points)) if points == points.to_integral_value() else str(points)


class SMSGoEmulator(Emulator):
    name = "smsgo"
    prefix = "/smsgo"
    rate_limit = None  # the document states no request rate

    def routes(self) -> Sequence[BaseRoute]:
        return [Route("/sms_gw/{page}", self._dispatch, methods=["GET", "POST"])]

    async def _dispatch(self, request: Request) -> Response:
        # IIS serves page names case-insensitively (queryBulk.asp == querybulk.asp)
        handlers = {
            "sendsms.aspx": self._send,
            "query.asp": self._query,
            "querybulk.asp": self._query_bulk,
            "query_point.asp": self._point,
            "sendsms_cancel.asp": self._cancel,
        }
        handler = handlers.get(request.path_params["page"].lower())
        if handler is None:
            return PlainTextResponse("Not Found", status_code=404)
        self.state.next_request_id()
        fields = await form_fields(request)
        return handler(fields, request.client.host if request.client else None)

    # -- shared pieces --------------------------------------------------------------------
    @staticmethod
    def _json(fields: dict[str, str]) -> bool:
        # §1 rtype: JSON, XML or omitted; the XML shape is undocumented: plain text
        return fields.get("rtype", "").strip().upper() == "JSON"

    def _authorize(self, fields: dict[str, str], client_ip: str | None) -> Account | int:
        username, password = fields.get("username", ""), fields.get("password", "")
        if not username or not password:
            return CGI_ERROR  # missing parameters (table 1: -1)
        account = self.state.accounts.get(username)
        # §8 -2: "authorisation error (account / password / IP not allowed)"; §1: the
        # password field takes the login password or an API Key
        if account is None or not account.authenticates(password):
            return AUTH_ERROR
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return AUTH_ERROR  # §9: "calls from a non-listed IP fail with -2"
        if not account.enabled:
            return CLOSED_USER
        return account

    def _send_reply(self, fields: dict[str, str], msgid: str, code: int, text: str, point: Decimal) -> Response:
        if self._json(fields):
            body = json.dumps(
                {"result": {"msgid": int(msgid), "statuscode": str(code), "statusstr": text, "point": point}},
                separators=(",", ":"),
                ensure_ascii=False,
                default=lambda d: int(d) if d == d.to_integral_value() else float(d),
            )
            return Response(body, media_type="application/json")
        # §1: lines separated by \n (the scan: "msgid=MsgId\nstatuscode=StatusCode\n…\n")
        lines = [f"msgid={msgid}", f"statuscode={code}", f"statusstr={text}", f"point={_points_text(point)}"]
        return PlainTextResponse("\n".join(lines) + "\n")

    def _send_error(self, fields: dict[str, str], code: int) -> Response:
        # §1: on error statuscode is negative and msgid is negative too; point=0
        return self._send_reply(fields, str(code), code, STATUSSTR[code], Decimal(0))

    # -- §1 send --------------------------------------------------------------------------
    def _send(self, fields: dict[str, str], client_ip: str | None) -> Response:
        encoding = (fields.get("encoding") or "BIG5").strip().upper()  # §1: BIG5 is the default
        smbody = fields.get("smbody", "")
        dstaddr = fields.get("dstaddr", "")
        wapurl = fields.get("wapurl", "")
        if not smbody or not dstaddr.strip():
            return self._send_error(fields, CGI_ERROR)  # FAQ 7: empty body -> -1
        authorized = self._authorize(fields, client_ip)
        if isinstance(authorized, int):
            return self._send_error(fields, authorized)
        account = authorized
        if encoding not in ENCODINGS:
            return self._send_error(fields, BAD_ENCODING)
        if encoding == "PUSH" and not wapurl:
            return self._send_error(fields, CGI_ERROR)  # the push link is the point of PUSH
        # §1 dstaddr: up to 50 numbers separated by commas (empty items from a trailing
        # comma are skipped; the items themselves are not trimmed: see recipient_error)
        recipients = [n for n in dstaddr.split(",") if n != ""]
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            return self._send_error(fields, BAD_AMOUNT)
        if any(recipient_error(n) is not None for n in recipients):
            return self._send_error(fields, B_NUMBER)
        international = [n.startswith("+") for n in recipients]
        if any(international) and encoding not in PLAIN:
            return self._send_error(fields, BAD_ENCODING)  # note 5

        send_at: float | None = None
        dlvtime = fields.get("dlvtime", "").strip()
        if dlvtime:
            try:
                when = datetime.strptime(dlvtime, DLVTIME_FORMAT).replace(tzinfo=TAIPEI)
            except ValueError:
                return self._send_error(fields, CGI_ERROR)
            # "Empty = now" (§1); a time already past is "now" as well: sent at once
            send_at = when.timestamp() if when.timestamp() > time.time() else None

        replyurl = fields.get("replyurl", "")
        replydays = REPLYDAYS_DEFAULT
        if replyurl:
            if len(replyurl) > REPLYURL_MAX:
                return self._send_error(fields, CGI_ERROR)
            raw_days = fields.get("replydays", "").strip()
            if raw_days:
                if not raw_days.isdigit():
                    return self._send_error(fields, CGI_ERROR)
                replydays = max(1, min(REPLYDAYS_MAX, int(raw_days)))  # "at most 30"
            if encoding not in PLAIN or not replyurl.lower().startswith(("http://", "https://")):
                # §1: "Only with BIG5/ASCII/UCS2"; note 4: "A valid replyurl turns on
                # replies": anything else is ignored (no replies, no surcharge)
                replyurl = ""

        # -- what goes out and what it costs --------------------------------------------
        text, truncated = smbody, False
        if encoding in LONG:
            if len(text) > LONG_MAX:  # note 2: at most 330 characters
                text, truncated = text[:LONG_MAX], True
            parts = long_parts(text)
        elif encoding == "PUSH":
            # note 3: beyond 88 bytes "the system converts it to a long SMS and charges
            # accordingly"
            combined = smbody + wapurl
            parts = 1 if len(combined.encode("utf-8")) <= PUSH_MAX_BYTES else long_parts(combined)
        else:
            # note 1: single-part encodings; "text beyond the limit is truncated by SMSGo"
            limit = single_limit(text)
            if len(text) > limit:
                text, truncated = text[:limit], True
            parts = 1
        per_recipient = [Decimal(parts * (INTERNATIONAL_FACTOR if intl else 1)) for intl in international]
        if replyurl:
            # note 4: "1 more point per 10 messages": charged on the 1st, 11th, 21st …
            per_recipient = [p + (1 if i % 10 == 0 else 0) for i, p in enumerate(per_recipient)]
        total = sum(per_recipient, Decimal(0))
        if not self.state.charge(account, total):
            return self._send_error(fields, NO_POINTS)

        # one msgid (15–16 digits) per request, shared by all its recipients (§1 reply)
        msgid = self.state.numeric_id(16)
        while self.state.find(msgid):
            msgid = self.state.numeric_id(16)
        request_id = self.state.requests
        extra: dict[str, object] = {"encoding": encoding}
        if truncated:
            extra["truncated"] = True
            extra["submitted_text"] = smbody
        if wapurl and encoding == "PUSH":
            extra["wapurl"] = wapurl
        if replyurl:
            extra["replyurl"] = replyurl
            extra["replydays"] = replydays
        for number, points in zip(recipients, per_recipient, strict=True):
            message = self.state.accept(
                account=account.username,
                request_id=request_id,
                recipient=number,
                text=text,
                message_id=msgid,
                batch_id=msgid,
                points=points,
                send_at=send_at,
                callback_url=fields.get("response", ""),
                extra=dict(extra),
            )
            self.release(message)
        return self._send_reply(fields, msgid, 0, "OK", total)

    # -- §2 / §3 status queries ------------------------------------------------------------
    @staticmethod
    def _status(message: Accepted) -> tuple[str, str]:
        if message.state in OUTCOMES:
            return OUTCOMES[message.state]
        if message.state == "canceled":
            return CANCELED
        if message.state == "scheduled":
            return SCHEDULED
        return SENT  # accepted / submitted (and lost): no report yet

    def _records(self, account: Account, msgid: str, dstaddr: str) -> list[Accepted]:
        found = [m for m in self.state.find(msgid) if m.account == account.username]
        return [m for m in found if m.recipient == dstaddr] if dstaddr else found

    def _query(self, fields: dict[str, str], client_ip: str | None) -> Response:
        msgid, dstaddr = fields.get("msgid", "").strip(), fields.get("dstaddr", "").strip()
        authorized = self._authorize(fields, client_ip)
        rows: list[tuple[str, str, str]]
        if isinstance(authorized, int):
            rows = [(str(authorized), STATUSSTR[authorized], dstaddr)]
        elif not msgid:
            rows = [(str(CGI_ERROR), STATUSSTR[CGI_ERROR], dstaddr)]
        else:
            # dstaddr narrows to one recipient; the v6.4 example queries by msgid alone
            records = self._records(authorized, msgid, dstaddr)
            if records:
                rows = [(*self._status(m), m.recipient) for m in records]
            else:
                rows = [(str(CGI_ERROR), "Unknown msgid", dstaddr)]
        if self._json(fields):
            # §2's JSON sample, trailing comma included: it is what SMSGo sends
            items = "".join(
                f'{{"statusCode": {json.dumps(c)},"statusStr":{json.dumps(s)},"cellphone":{json.dumps(p)}}},'
                for c, s, p in rows
            )
            return Response('{"results":{"result": [' + items + "]}}", media_type="application/json")
        # §2: statuscode|statusstr|phone (several recipients: one per line, as §3)
        return PlainTextResponse("\r\n".join("|".join(row) for row in rows))

    def _query_bulk(self, fields: dict[str, str], client_ip: str | None) -> Response:
        # §3: statuscode|statusstr|phone|msgid, lines separated by \r\n; plain text only
        msgids = [m.strip() for m in fields.get("msgid", "").split(",") if m.strip()]
        numbers = {n.strip() for n in fields.get("dstaddr", "").split(",") if n.strip()}
        authorized = self._authorize(fields, client_ip)
        if isinstance(authorized, int):
            return PlainTextResponse(f"{authorized}|{STATUSSTR[authorized]}||")
        if not msgids:
            return PlainTextResponse(f"{CGI_ERROR}|{STATUSSTR[CGI_ERROR]}||")
        lines: list[str] = []
        for msgid in msgids:
            records = [m for m in self._records(authorized, msgid, "") if not numbers or m.recipient in numbers]
            if not records:
                lines.append(f"{CGI_ERROR}|Unknown msgid||{msgid}")
            for m in records:
                code, text = self._status(m)
                lines.append(f"{code}|{text}|{m.recipient}|{msgid}")
        return PlainTextResponse("\r\n".join(lines))

    # -- §4 balance ------------------------------------------------------------------------
    def _point(self, fields: dict[str, str], client_ip: str | None) -> Response:
        authorized = self._authorize(fields, client_ip)
        json_mode = self._json(fields)
        if isinstance(authorized, int):
            if json_mode:
                text = json.dumps(STATUSSTR[authorized])
                item = f'{{"statuscode": "{authorized}","statusstr":{text},"point": "0"}}'
                return Response('{"results":{"result": [' + item + "]}}", media_type="application/json")
            return PlainTextResponse(f"statuscode={authorized}\nstatusstr={STATUSSTR[authorized]}\n")
        points = _points_text(authorized.points)
        if json_mode:
            # §4, verbatim shape: point is a string
            body = '{"results":{"result": [{"statuscode": "0","point": "' + points + '"}]}}'
            return Response(body, media_type="application/json")
        return PlainTextResponse(points)  # "the number itself"

    # -- §5 cancel -------------------------------------------------------------------------
    def _cancel(self, fields: dict[str, str], client_ip: str | None) -> Response:
        msgid = fields.get("msgid", "").strip()
        authorized = self._authorize(fields, client_ip)
        if isinstance(authorized, int):
            return self._send_error(fields, authorized)
        if not msgid.isdigit():
            return self._send_error(fields, CGI_ERROR)
        records = self._records(authorized, msgid, "")
        if not records:
            return self._send_reply(fields, str(CGI_ERROR), CGI_ERROR, "Unknown msgid", Decimal(0))
        canceled = [m for m in records if self.cancel(m)]
        if not canceled:
            # already handed to the SMSC (or canceled before): FAQ 6, no recall once sent
            return self._send_reply(fields, str(CGI_ERROR), CGI_ERROR, "Not cancelable", Decimal(0))
        refunded = sum((m.points for m in canceled), Decimal(0))
        authorized.points += refunded  # the reservation's points come back
        return self._send_reply(fields, msgid, 0, "OK", refunded)

    # -- §6 delivery report ----------------------------------------------------------------
    def on_final(self, message: Accepted) -> None:
        url = message.callback_url
        if not url:
            return  # §1 response: "Empty (default) = no report"
        code, text = OUTCOMES[message.state]
        params = [
            ("msgid", message.message_id),
            ("statuscode", code),
            ("statusstr", text),
            ("dstaddr", message.recipient),
        ]
        # §6: HTTP 200 and the body exactly "magicid=…\nmsgid=<MsgId>\n" (\n = chr(10))
        expected = f"{ACK_MAGIC}\nmsgid={message.message_id}\n".encode()

        def acknowledged(status: int, body: bytes) -> bool:
            return status == 200 and body == expected

        self.engine.enqueue(
            f"smsgo report {message.message_id} {message.recipient}",
            lambda: deliver_with_retries(
                self.engine,
                self.state,
                method="GET",
                url=url,
                params=params,
                accept=acknowledged,
                retries=CALLBACK_RETRIES,
            ),
        )

    # -- §7 replies ------------------------------------------------------------------------
    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        now = time.time()
        original = to_message
        if original is None:
            # SMSGo ties a reply to the latest message sent to that handset
            for candidate in reversed(self.state.messages):
                if candidate.account == account.username and candidate.recipient[-9:] == sender[-9:]:
                    original = candidate
                    break
        if original is None or not original.extra.get("replyurl"):
            return  # no replyurl: replies are off for that message (note 4)
        if now > original.received_at + int(original.extra.get("replydays", REPLYDAYS_DEFAULT)) * 86400:
            return  # outside replydays
        url = str(original.extra["replyurl"])
        params = [
            ("msgid", original.message_id),
            ("srcaddr", sender),
            ("dstaddr", REPLY_NUMBER),
            ("smbody", text),
            ("encoding", "ASCII" if text.isascii() else "UCS2"),
            ("timestamp", taipei(now).strftime("%Y%m%d%H%M%S")),
        ]
        self.engine.enqueue(
            f"smsgo reply {original.message_id} {sender}",
            lambda: deliver_with_retries(
                self.engine,
                self.state,
                method="GET",
                url=url,
                params=params,
                accept=lambda status, body: status == 200,
                retries=CALLBACK_RETRIES,
            ),
        )

    # -- faults ----------------------------------------------------------------------------
    def busy_response(self) -> Response:
        return PlainTextResponse(f"msgid={SEND_FAIL}\nstatuscode={SEND_FAIL}\nstatusstr=Send fail\npoint=0\n")

    def malformed_response(self) -> Response:
        return Response(
            "<html><head><title>Runtime Error</title></head><body><h1>Server Error in '/' Application."
            "</h1></body></html>",
            media_type="text/html",
        )
