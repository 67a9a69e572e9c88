"""TwSMS (台灣簡訊) JSON API 4.0 emulator.

Written from ``shared/specs/twsms-json-api-4.0.txt`` (4.0 JSON edition, 2021-11-30) and the
TwSMS part of ``shared/specs/provider-notes.md``. Section numbers (§2 … §8) are the
document's.

Endpoints, GET or POST (form body), JSON replies (§2.2), one recipient per request:

- ``/json/sms_send.php``     send (§3)
- ``/json/sms_query.php``    status (§4.2); ``checkpoint=Y`` balance; ``delttime=Y`` delete a
  reservation
- ``/json/smsmo_query.php``  two-way replies of one day (§5)

Every reply carries ``code`` (§6): ``00000`` is success, anything else is the documented
error with its text, always with HTTP 200.

Decisions where the document is silent (each is repeated where it is implemented):

- Characters are Unicode code points; "Chinese" (中文) is any non-ASCII character. Points:
  1 per standard SMS (70 / 160), 1 per 67 / 153 characters of a long one, ×3 for an
  international number (§3 ``mobile`` / ``message``).
- Taiwan numbers are ``09`` + 8 digits; international ones are country code + number,
  digits only (§3: "國碼+門號", no ``+``); ``886…`` is refused with ``00100`` (a Taiwan
  number is written ``09…``).
- ``sendtime`` inside the current minute is "now" (the format has minutes only); an
  earlier one is ``00150``.
- ``drurl`` is checked at send time with a real GET (no parameters) unless
  ``drurl_check=N`` (§3: "此參數所帶入的網址將自動檢測是否 http code = 200"); not 200 or
  unreachable: ``00170``. A drurl that is not an http(s) URL: ``00140``.
- The query of a canceled reservation answers ``statuscode`` ``-1`` and ``statustext``
  ``DELETED`` (§8: 訊息已被刪除), ``donetime`` = when it was deleted. A ``delttime=Y``
  for a msgid that is not (or no longer) waiting in the reservation queue: ``00300``;
  success: ``{"code":"00000","text":"Success"}`` and the points come back.
- ``outrange=Y`` (§4.2): records older than three days are found only with it.
- ``snumber`` (§5) must be 5 digits (else ``00430``) and the account's two-way code; the
  demo accounts have the two-digit SMS-Get style code ``03``, so an account whose code is
  not 5 digits answers to ``12345`` (the document's sample) — anything else: ``00400``.
- Delivery report (§4.1): GET ``<drurl>?smsresp=<urlencoded JSON>``; the document states
  no acknowledgement: any HTTP 200 is one, otherwise it is retried 3 times.
- Replies reach the customer only by polling ``smsmo_query.php``: no push channel.
- Busy (fault injection): ``99998`` "資料處理異常，請重新發送" (please resend).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from formosms.sandbox.core import Accepted, Account, deliver_with_retries, taipei
from formosms.sandbox.emulator import Emulator
from formosms.timefmt import TAIPEI

# -- §6 code / text ----------------------------------------------------------------------
TEXTS: dict[str, str] = {
    "00000": "Success",  # the samples say "Success" (the table: 完成)
    "00001": "狀態尚未回復",
    "00010": "帳號或密碼格式錯誤",
    "00011": "帳號錯誤",
    "00012": "密碼錯誤",
    "00020": "通數不足",
    "00030": "IP 無使用權限",
    "00031": "限制發送國際門號",
    "00040": "帳號已停用",
    "00041": "API 未啟用(請登入平台後至帳號設定內的 API 設定中啟用)",
    "00050": "sendtime 格式錯誤",
    "00060": "expirytime 格式錯誤",
    "00100": "手機號碼格式錯誤",
    "00110": "沒有簡訊內容",
    "00120": "長簡訊不支援國際門號",
    "00130": "簡訊內容超過長度",
    "00140": "drurl 格式錯誤",
    "00150": "sendtime 預約的時間已經超過",
    "00170": "drurl 帶入的網址無法連線(http code 必須為 200)",
    "00180": "簡訊內容帶有 Emoji 圖形",
    "00300": "找不到 msgid",
    "00310": "預約尚未送出",
    "00400": "找不到 snumber 辨識碼",
    "00410": "沒有任何 mo 資料",
    "00420": "smsQuery 指定查詢的格式錯誤",
    "00430": "moQuery 指定查詢的格式錯誤",
    "99998": "資料處理異常，請重新發送",
    "99999": "系統錯誤，請通知系統廠商",
}

#: neutral outcome -> (statuscode, statustext): §7 "0 = 成功 -1 = 失敗", §8 statustext
OUTCOMES: dict[str, tuple[str, str]] = {
    "delivered": ("0", "DELIVRD"),
    "undeliverable": ("-1", "UNDELIV"),
    "expired": ("-1", "EXPIRED"),
    "rejected": ("-1", "REJECTD"),
}
CANCELED = ("-1", "DELETED")  # §8: 訊息已被刪除

# -- §3 limits ---------------------------------------------------------------------------
STANDARD = {True: 160, False: 70}  # ASCII-only? -> characters in one standard SMS
PER_PART = {True: 153, False: 67}  # per point of a long SMS
LONG_MAX = {True: 765, False: 335}
INTERNATIONAL_FACTOR = 3  # "國際門號每則扣 3 通"
EXPIRY_DEFAULT, EXPIRY_MIN, EXPIRY_MAX = 28800, 300, 28800
CALLBACK_RETRIES = 3  # undocumented: see the module docstring
DEMO_SNUMBER = "12345"  # §5's sample, for accounts whose two-way code is not 5 digits
OUTRANGE_SECONDS = 3 * 86400  # §4.2 outrange: "查詢超過三天以上的紀錄"
MSGID_DIGITS = 9  # §7: 8–11 digits; the §3 sample 222160591 has 9

_TAIWAN = re.compile(r"09\d{8}")
_INTERNATIONAL = re.compile(r"[1-9]\d{7,14}")
# Emoji (§6 00180 "Emoji 圖形"): the pictograph planes and the BMP characters whose default
# presentation is emoji, plus VS16 (which turns ❤ or ☺ into an emoji).
_EMOJI = re.compile(
    "[\u231a\u231b\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2614\u2615\u2648-\u2653\u267f\u2693"
    "\u26a1\u26aa\u26ab\u26bd\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd"
    "\u2705\u270a\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf\u2b1b\u2b1c"
    "\u2b50\u2b55\ufe0f\U0001f000-\U0001faff]"
)


def has_emoji(text: str) -> bool:
    return _EMOJI.search(text) is not None


def points_for(text: str) -> int | None:
    """Points of one Taiwan message (§3 message); None when longer than a long SMS carries."""
    ascii_only = text.isascii()
    if len(text) <= STANDARD[ascii_only]:
        return 1
    if len(text) > LONG_MAX[ascii_only]:
        return None
    return math.ceil(len(text) / PER_PART[ascii_only])


def _decode(raw: str) -> str:
    # §3 message: "可使用 UTF8 碼或 BIG5 碼 (BIG5 碼部分特殊字會變成?號)"
    data = raw.encode("latin-1")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp950", errors="replace").replace("\ufffd", "?")


async def request_fields(request: Request) -> dict[str, str]:
    """Query string and form body, percent-decoded once, UTF-8 or else Big5 (§3 message)."""
    query = request.scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True, encoding="latin-1")
    if request.method == "POST":
        body = await request.body()
        ctype = request.headers.get("content-type", "")
        if body and ("x-www-form-urlencoded" in ctype or not ctype):
            pairs += parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return {_decode(key): _decode(value) for key, value in pairs}


def reply(code: str, **extra: Any) -> Response:
    # compact, \u-escaped JSON: what PHP's json_encode writes (§5's sample)
    body = json.dumps({"code": code, "text": TEXTS[code], **extra}, separators=(",", ":"))
    return Response(body, media_type="application/json")


def _number(points: Decimal) -> int | float:
    return int(points) if points == points.to_integral_value() else float(points)


def _stamp(epoch: float) -> str:
    return taipei(epoch).strftime("%Y%m%d%H%M%S")  # §5/§7: YYYYMMDDHHIISS


class TwSMSEmulator(Emulator):
    name = "twsms"
    prefix = "/twsms"
    rate_limit = 500.0  # §1: "TwSMS Service Platform 可處理 500 requests/sec"

    def routes(self) -> Sequence[BaseRoute]:
        methods = ["GET", "POST"]  # §2.1: GET or POST
        return [
            Route("/json/sms_send.php", self._send, methods=methods),
            Route("/json/sms_query.php", self._query, methods=methods),
            Route("/json/smsmo_query.php", self._mo_query, methods=methods),
        ]

    def _authorize(self, fields: dict[str, str], request: Request) -> Account | str:
        username, password = fields.get("username", ""), fields.get("password", "")
        if not username.strip() or not password.strip():
            return "00010"  # 帳號或密碼格式錯誤
        account = self.state.accounts.get(username)
        if account is None:
            return "00011"
        if not account.authenticates(password):
            return "00012"
        if not account.enabled:
            return "00040"  # a known account that is suspended, unlike 00011
        client_ip = request.client.host if request.client else None
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return "00030"
        return account

    async def _open(self, request: Request) -> tuple[dict[str, str], Account] | Response:
        """Count the request, read its fields, check the account: fields and account, or the
        error reply every endpoint answers the same way."""
        self.state.next_request_id()
        fields = await request_fields(request)
        authorized = self._authorize(fields, request)
        if isinstance(authorized, str):
            return reply(authorized)
        return fields, authorized

    # -- §3 send ---------------------------------------------------------------------------
    async def _send(self, request: Request) -> Response:
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        fields, account = opened

        mobile = fields.get("mobile", "")
        # one number per request; Taiwan 09xxxxxxxx or country code + number, digits only
        taiwan = bool(_TAIWAN.fullmatch(mobile))
        if not taiwan and (not _INTERNATIONAL.fullmatch(mobile) or mobile.startswith("886")):
            return reply("00100")
        if not taiwan and not account.international:
            return reply("00031")

        message = fields.get("message", "")
        if not message:
            return reply("00110")
        if has_emoji(message):
            return reply("00180")
        ascii_only = message.isascii()
        standard = len(message) <= STANDARD[ascii_only]
        if not standard:
            if fields.get("lmsg", "Y").strip().upper() == "N":
                return reply("00130")  # lmsg=N: "取消長文字簡訊長度發送"
            if not taiwan:
                return reply("00120")  # §2.5: 長簡訊不支援國際門號
        parts = points_for(message)
        if parts is None:
            return reply("00130")  # 中文最長 335 個字 / 英文最長 765 個字

        send_at: float | None = None
        sendtime = fields.get("sendtime", "").strip()
        if sendtime:
            if not re.fullmatch(r"\d{12}", sendtime):
                return reply("00050")
            try:
                when = datetime.strptime(sendtime, "%Y%m%d%H%M").replace(tzinfo=TAIPEI)
            except ValueError:
                return reply("00050")
            now = time.time()
            if when.timestamp() < now - now % 60:
                return reply("00150")  # an earlier minute: 預約的時間已經超過
            send_at = when.timestamp() if when.timestamp() > now else None

        expiry = fields.get("expirytime", "").strip()
        validity = EXPIRY_DEFAULT
        if expiry:
            if not expiry.isdigit() or not EXPIRY_MIN <= int(expiry) <= EXPIRY_MAX:
                return reply("00060")  # 範圍：300~28800 秒
            validity = int(expiry)

        points = Decimal(parts * (1 if taiwan else INTERNATIONAL_FACTOR))
        if account.points < points:
            return reply("00020")

        drurl = fields.get("drurl", "").strip()
        if drurl:
            parsed = urlsplit(drurl)
            if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc:
                return reply("00140")
            if fields.get("drurl_check", "Y").strip().upper() != "N" and not await self._reachable(drurl):
                return reply("00170")

        if not self.state.charge(account, points):
            return reply("00020")
        msgid = self.state.numeric_id(MSGID_DIGITS)
        while self.state.find(msgid):
            msgid = self.state.numeric_id(MSGID_DIGITS)
        accepted = self.state.accept(
            account=account.username,
            request_id=self.state.requests,
            recipient=mobile,
            text=message,
            message_id=msgid,
            points=points,
            send_at=send_at,
            validity=float(validity),
            callback_url=drurl,
            extra={"long": not standard},
        )
        self.release(accepted)
        return reply("00000", msgid=int(msgid))  # §7: msgid is a JSON number

    async def _reachable(self, url: str) -> bool:
        """§3 drurl: "此參數所帶入的網址將自動檢測是否 http code = 200"."""
        try:
            async with self.engine.session().get(url) as answer:
                await answer.read()
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False

    # -- §4.2 status, balance, reservation delete --------------------------------------------
    async def _query(self, request: Request) -> Response:
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        fields, account = opened
        if fields.get("checkpoint", "").strip().upper() == "Y":
            # "查詢剩餘簡訊通數（使用此功能時 mobile 與 msgid 不需填寫）"
            return reply("00000", point=_number(account.points))

        mobile, msgid = fields.get("mobile", "").strip(), fields.get("msgid", "").strip()
        if not msgid.isdigit() or not (_TAIWAN.fullmatch(mobile) or _INTERNATIONAL.fullmatch(mobile)):
            return reply("00420")  # smsQuery 指定查詢的格式錯誤 (mobile* and msgid* required)
        records = [m for m in self.state.find(msgid) if m.account == account.username and m.recipient == mobile]
        if not records:
            return reply("00300")
        message = records[0]
        if fields.get("outrange", "").strip().upper() != "Y" and message.received_at < (time.time() - OUTRANGE_SECONDS):
            return reply("00300")  # older than three days: only with outrange=Y

        if fields.get("delttime", "").strip().upper() == "Y":
            # "=Y：刪除預約的簡訊": only a reservation still waiting can be deleted
            if not self.cancel(message):
                return reply("00300")
            account.points += message.points
            return reply("00000")

        if message.state == "scheduled":
            return reply("00310")  # 預約尚未送出
        if message.state == "canceled":
            code, text = CANCELED
        elif message.state in OUTCOMES:
            code, text = OUTCOMES[message.state]
        else:
            return reply("00001")  # 狀態尚未回復: a normal pending answer
        done = _stamp(message.final_at or time.time())
        return reply("00000", statuscode=code, statustext=text, donetime=done)

    # -- §5 replies --------------------------------------------------------------------------
    async def _mo_query(self, request: Request) -> Response:
        opened = await self._open(request)
        if isinstance(opened, Response):
            return opened
        fields, account = opened
        snumber = fields.get("snumber", "").strip()
        if not re.fullmatch(r"\d{5}", snumber):
            return reply("00430")  # "雙向門號辨識碼（5 個數字）"
        own = account.two_way_code if re.fullmatch(r"\d{5}", account.two_way_code) else DEMO_SNUMBER
        if snumber != own:
            return reply("00400")
        sdate = fields.get("sdate", "").strip()
        if sdate:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", sdate):
                return reply("00430")
            try:
                day = date.fromisoformat(sdate)
            except ValueError:
                return reply("00430")
        else:
            day = taipei(time.time()).date()  # "此 tag 如不填寫，系統將自動指定當天日期"
        rows = [
            {"seq": str(r.seq), "date": _stamp(r.received_at), "mobile": r.sender, "message": r.text}
            for r in self.state.replies
            if r.account == account.username and taipei(r.received_at).date() == day
        ]
        if not rows:
            return reply("00410")
        return reply("00000", moResp=rows)

    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        """Stored by ``Emulator.reply``; TwSMS hands replies out only through §5 polling."""

    # -- §4.1 delivery report ----------------------------------------------------------------
    def on_final(self, message: Accepted) -> None:
        url = message.callback_url
        if not url:
            return  # "此參數空白將不主動回報接收狀態"
        code, text = OUTCOMES[message.state]
        # §4.1's sample, key for key: msgid is a string there, and the time is "downtime"
        payload = {
            "code": "00000",
            "text": "Success",
            "msgid": message.message_id,
            "mobile": message.recipient,
            "statuscode": code,
            "statustext": text,
            "downtime": _stamp(message.final_at or time.time()),
        }
        smsresp = json.dumps(payload, separators=(",", ":"))
        self.engine.enqueue(
            f"twsms report {message.message_id}",
            lambda: deliver_with_retries(
                self.engine,
                self.state,
                method="GET",
                url=url,
                params=[("smsresp", smsresp)],
                accept=lambda status, body: status == 200,
                retries=CALLBACK_RETRIES,
            ),
        )

    # -- faults ------------------------------------------------------------------------------
    def busy_response(self) -> Response:
        return reply("99998")

    def malformed_response(self) -> Response:
        return Response('{"code":"00000","text":"Succ', media_type="application/json")
