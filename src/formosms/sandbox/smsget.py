"""SMS-Get emulator, written from ``shared/specs/smsget-api.txt`` ("SMS-Get 商務簡訊 API 說明").

Endpoints (under the ``/smsget`` prefix), GET or POST form alike (§一 "HTTP API 存取可使用
GET 及 POST 方式皆可"):

- ``/api_send.php``          §一 傳送簡訊
- ``/api_send_twoway.php``   §三 傳送雙向簡訊 (Taiwan numbers only, error 010 when the
  account has no two-way code)
- ``/api_query_credit.php``  §五 查詢剩餘點數

Replies are JSON ``{"stats": true|false, "error_code": "000", "error_msg": "…"}``; inside
``error_msg`` the fields are separated by ``|`` (provider-notes "SMS-Get": the document's
table lost the separators): ``msgid|points_used|points_left`` and ``account|points``.

SMS-Get has NO status query and NO cancel (provider-notes: "No status query exists"), so
none is emulated. Delivery is reported only by the callbacks of §二 (to the URL set in the
console: ``Account.callback_url``) and replies by those of §四 (``Account.reply_callback_url``);
both are configurable through ``POST /_sandbox/smsget/accounts``.

Decisions where the document is silent (each also commented where it is made):

- A recipient that matches none of §一's formats answers ``001`` (參數錯誤): the document
  has no "bad number" code. Entries are trimmed; empty entries (a trailing comma) ignored.
- Message length: at most 5 parts (``MAX_PARTS``): 765 characters of pure English (5 × 153)
  or 335 of anything else (5 × 67); longer → ``004``. The document names no maximum.
- "純英文" (pure English) = every character is ASCII; anything else counts 70/67.
- Countries other than Taiwan, Hong Kong (1 point a part) and China (2 points a part) are
  charged 1 point a part: the document prices only those three.
- Schedules have minute precision: a ``send_date``/``hour``/``min`` in the current minute
  sends at once; an earlier minute is ``003``.
- Delivery callbacks: one POST per msgid carrying every recipient's record, made when all of
  them have reached a final state (recipients "lost" by fault injection are left out). The
  sandbox makes it after ``SandboxConfig.delivery_delay``, not "24 小時" later (§二). The
  acknowledgement is HTTP 200 with the body ``ok`` (surrounding whitespace ignored); anything
  else is retried 3 times (the document says nothing of retries).
- Busy: the document has no busy code; ``busy_response`` answers ``stats:false`` with
  ``error_code`` ``999`` (an undocumented code a client must treat as a refusal).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from formosms.sandbox.core import OUTCOMES, Accepted, Account, deliver_with_retries, taipei
from formosms.sandbox.emulator import Emulator, form_fields
from formosms.timefmt import TAIPEI

#: §一 輸出 error_code table (the two-way table of §三 adds 010); texts as in the document
ERRORS: dict[str, str] = {
    "001": "參數錯誤",
    "002": "預約時間參數錯誤",
    "003": "預約時間過期",
    "004": "訊息長度過長",
    "005": "帳號密碼錯誤",
    "006": "IP 無法存取",
    "007": "收件者人數為 0",
    "008": "收件人超過 250 人",
    "009": "點數不足",
    "010": "尚未申請雙向功能",
}
BUSY_CODE = "999"  # undocumented: the document has no busy code (see module docstring)

#: §二 回報狀態: the neutral outcomes → the report status of a delivery callback record
STATUS_OF_OUTCOME: dict[str, str] = {
    "delivered": "DELIVRD",
    "undeliverable": "UNDELIV",
    "expired": "EXPIRED",
    "rejected": "REJECTD",
}

#: §一 "收件人上限 250 人"
MAX_RECIPIENTS = 250
#: undocumented maximum (see module docstring): 5 parts
MAX_PARTS = 5
#: acknowledgement retries: undocumented, 3
CALLBACK_RETRIES = 3

#: §一 phone table: (region, pattern, points multiplier). Taiwan/Hong Kong 1 point a part,
#: China 2 (§一 sms_msg: "台灣、香港門號每則扣一點 / 中國大陸門號每則扣二點"); the others are
#: not priced by the document: 1 (assumption). Numbers outside Taiwan, China and Hong Kong
#: carry their country code ("須加上國際碼 853/81/60/…/001/82").
PHONE_FORMATS: tuple[tuple[str, re.Pattern[str], int], ...] = tuple(
    (region, re.compile(pattern), multiplier)
    for region, pattern, multiplier in (
        ("TW", r"09\d{8}", 1),  # 0912345XXX (共 10 碼)
        ("CN", r"1\d{10}", 2),  # 135XXXXX123 (共 11 碼)
        ("HK", r"[4-9]\d{7}", 1),  # 54XXX123 (共 8 碼)
        ("MO", r"853\d{8}", 1),  # 85366XXX123 (共 11 碼)
        ("JP", r"81\d{10}", 1),  # 8190XXXXX123 (共 12 碼)
        ("MY", r"60\d{9,10}", 1),  # 6012XXXX123 (共 11 或 12 碼)
        ("VN", r"84\d{9,10}", 1),  # 8412XXXX123 (共 11 或 12 碼)
        ("ID", r"62\d{10,11}", 1),  # 628123XXX123 (共 12 或 13 碼)
        ("TH", r"66\d{9}", 1),  # 668123XX123 (共 11 碼)
        ("AU", r"61\d{9}", 1),  # 614123XX123 (共 11 碼)
        ("SG", r"65\d{8}", 1),  # 658123X123 (共 10 碼)
        ("PH", r"63\d{10}", 1),  # 6397XXXXX123 (共 12 碼)
        ("AE", r"971\d{9}", 1),  # 9715XXXXX123 (共 12 碼)
        ("KH", r"855\d{8,9}", 1),  # 8551XXXX123 (共 11 碼或 12 碼)
        ("US", r"001\d{10}", 1),  # 001123XXXX123 (共 13 碼)
        ("KR", r"82\d{9,10}", 1),  # 82112XXXX123 (共 11 或 12 碼)
    )
)


def region_of(phone: str) -> tuple[str, int] | None:
    """The region and points multiplier of a number in §一's formats; None when it is none."""
    for region, pattern, multiplier in PHONE_FORMATS:
        if pattern.fullmatch(phone):
            return region, multiplier
    return None


def is_english(text: str) -> bool:
    """ "純英文": every character ASCII (the document gives no character set)."""
    return all(ord(c) < 128 for c in text)


def sms_parts(text: str) -> int:
    """§一 sms_msg: "純英文 160 個字內算一則 / 超過 160 字,每 153 字算一則 /
    中英文 70 個字內算一則 / 超過 70 字,每 67 算一則"."""
    single, part = (160, 153) if is_english(text) else (70, 67)
    n = len(text)
    return 1 if n <= single else math.ceil(n / part)


def sms_points(text: str, phone: str) -> Decimal:
    """Points for one recipient: parts × the region's multiplier (China ×2)."""
    found = region_of(phone)
    multiplier = found[1] if found else 1
    return Decimal(sms_parts(text) * multiplier)


def max_length(text: str) -> int:
    return MAX_PARTS * (153 if is_english(text) else 67)


def fmt_points(points: Decimal) -> str:
    """Points as SMS-Get writes them (``12345678|1|437``): an integer when integral."""
    return str(int(points)) if points == points.to_integral_value() else format(points.normalize(), "f")


def wire_time(epoch: float) -> str:
    """§二 電信商回報時間: ``2013-01-01 21:08:07`` (Taiwan time)."""
    return taipei(epoch).strftime("%Y-%m-%d %H:%M:%S")


class SMSGetEmulator(Emulator):
    name = "smsget"
    prefix = "/smsget"
    rate_limit = None  # the document states none
    #: seconds between callback retries (× attempt number); tests shorten it
    callback_backoff: float = 0.2

    def routes(self) -> Sequence[BaseRoute]:
        methods = ["GET", "POST"]
        return [
            Route("/api_send.php", self.send, methods=methods),
            Route("/api_send_twoway.php", self.send_twoway, methods=methods),
            Route("/api_query_credit.php", self.query_credit, methods=methods),
        ]

    # -- answers ----------------------------------------------------------------------------
    @staticmethod
    def ok(message: str) -> Response:
        return JSONResponse({"stats": True, "error_code": "000", "error_msg": message})

    @staticmethod
    def error(code: str) -> Response:
        return JSONResponse({"stats": False, "error_code": code, "error_msg": ERRORS.get(code, "")})

    def busy_response(self) -> Response:
        return JSONResponse({"stats": False, "error_code": BUSY_CODE, "error_msg": "系統忙碌中,請稍後再試"})

    def malformed_response(self) -> Response:
        # a PHP notice followed by truncated JSON: a parser must reject it
        return PlainTextResponse(
            "<br />\n<b>Warning</b>:  mysqli_connect(): (HY000/2002) in <b>/var/www/api_send.php</b>"
            '<br />\n{"stats":true,"error_code":"000","error_ms',
            media_type="text/html",
        )

    # -- authentication ---------------------------------------------------------------------
    def _account(self, fields: dict[str, str], request: Request) -> Account | str:
        """The account, or an error code: 001 missing, 005 wrong, 006 IP not allowed."""
        username, password = fields.get("username", ""), fields.get("password", "")
        if not username or not password:
            return "001"
        account = self.state.accounts.get(username)
        if account is None or not account.enabled or not account.authenticates(password):
            return "005"
        client_ip = request.client.host if request.client else None
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return "006"
        return account

    # -- endpoints --------------------------------------------------------------------------
    async def query_credit(self, request: Request) -> Response:
        """§五 查詢剩餘點數: ``error_msg`` = ``帳號|剩餘點數``."""
        self.state.next_request_id()
        fields = await form_fields(request)
        account = self._account(fields, request)
        if isinstance(account, str):
            return self.error(account)
        return self.ok(f"{account.username}|{fmt_points(account.points)}")

    async def send(self, request: Request) -> Response:
        return await self._send(request, two_way=False)

    async def send_twoway(self, request: Request) -> Response:
        return await self._send(request, two_way=True)

    async def _send(self, request: Request, *, two_way: bool) -> Response:
        request_id = self.state.next_request_id()
        fields = await form_fields(request)
        account = self._account(fields, request)
        if isinstance(account, str):
            return self.error(account)
        if two_way and not account.two_way_code:
            return self.error("010")  # §三 "010 尚未申請雙向功能"

        method = fields.get("method", "").strip()
        if method not in ("1", "2"):  # §一 "只允許以下兩個數值 1 / 2"
            return self.error("001")
        text = fields.get("sms_msg", "")
        if not text:
            return self.error("001")

        # §一 phone: comma list; entries trimmed ("09XX123XXX, 135xxx12xxx" shows a space)
        phones = [p.strip() for p in fields.get("phone", "").split(",")]
        phones = [p for p in phones if p]
        if not phones:
            return self.error("007")
        if len(phones) > MAX_RECIPIENTS:
            return self.error("008")
        for phone in phones:
            found = region_of(phone)
            # no "bad number" code exists: 001; §三 "雙向簡訊僅台灣手機門號可送達"
            if found is None or (two_way and found[0] != "TW"):
                return self.error("001")

        if len(text) > max_length(text):
            return self.error("004")

        send_at: float | None = None
        if method == "2":
            parsed = self._schedule(fields)
            if isinstance(parsed, str):
                return self.error(parsed)
            send_at = parsed

        points = [sms_points(text, phone) for phone in phones]
        total = sum(points, Decimal(0))
        if not self.state.charge(account, total):
            return self.error("009")  # charge nothing

        msgid = self.state.numeric_id(8)
        for phone, cost in zip(phones, points, strict=True):
            message = self.state.accept(
                account=account.username,
                request_id=request_id,
                recipient=phone,
                text=text,
                message_id=msgid,
                batch_id=msgid,
                points=cost,
                send_at=send_at,
                callback_url=account.callback_url,
                extra={
                    # §二 "簡訊辨識 ID" (e.g. 59c4e123): one per recipient
                    "record_id": f"{self.state.random.getrandbits(32):08x}",
                    "two_way": two_way,
                },
            )
            self.release(message)
        return self.ok(f"{msgid}|{fmt_points(total)}|{fmt_points(account.points)}")

    def _schedule(self, fields: dict[str, str]) -> float | str:
        """§一 send_date ``YYYY/MM/DD``, hour ``00~23``, min ``00~59`` (Taiwan time).

        Malformed → 002; before the current minute → 003.
        """
        date, hour, minute = fields.get("send_date", ""), fields.get("hour", ""), fields.get("min", "")
        if not (
            re.fullmatch(r"\d{4}/\d{2}/\d{2}", date) and re.fullmatch(r"\d{2}", hour) and re.fullmatch(r"\d{2}", minute)
        ):
            return "002"
        try:
            when = datetime.strptime(f"{date} {hour}:{minute}", "%Y/%m/%d %H:%M").replace(tzinfo=TAIPEI)
        except ValueError:
            return "002"
        epoch = when.timestamp()
        if epoch + 60 <= time.time():
            return "003"
        return epoch

    # -- callbacks --------------------------------------------------------------------------
    def on_final(self, message: Accepted) -> None:
        """§二 接收回傳狀態: one POST per msgid once every recipient is final."""
        batch = self.state.find(message.message_id)
        if not batch or any(m.state not in OUTCOMES for m in batch if not m.lost):
            return
        first = batch[0]
        if first.extra.get("callback_made"):
            return
        first.extra["callback_made"] = True
        account = self.state.accounts.get(message.account)
        url = account.callback_url if account else message.callback_url
        if not url:
            return
        records = ",".join(
            f"{m.recipient}|{m.extra.get('record_id', '')}|{wire_time(m.final_at or time.time())}"
            f"|{STATUS_OF_OUTCOME[m.state]}"
            for m in batch
            if not m.lost
        )
        body = urlencode([("sms_id", message.message_id), ("content", records)]).encode("ascii")
        self._post(f"smsget report {message.message_id}", url, body)

    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        """§四 雙向簡訊 CallBack: ``content=phone|id|time|URL-encoded text``.

        §四 "若回傳時未加上雙向簡訊代碼,或簡訊代碼錯誤者,您將無法接收回傳簡訊": a reply whose
        text does not start with the account's code is dropped; the code is kept in the text
        (the document's sample ``03%E9%9B%99…``).
        """
        code = account.two_way_code
        if not code or not text.startswith(code) or not account.reply_callback_url:
            return
        phone = sender.strip()
        if phone.startswith("+886"):
            phone = "0" + phone[4:]
        record_id = (to_message.extra.get("record_id") if to_message else None) or (
            f"{self.state.random.getrandbits(32):08x}"
        )
        content = f"{phone}|{record_id}|{wire_time(time.time())}|{quote(text, safe='')}"
        body = urlencode([("content", content)]).encode("ascii")
        self._post(f"smsget reply {phone}", account.reply_callback_url, body)

    def _post(self, label: str, url: str, body: bytes) -> None:
        engine, state, backoff = self.engine, self.state, self.callback_backoff

        def acknowledged(status: int, reply: bytes) -> bool:
            # §二/§四 "您接收的 URL 僅需要回應"ok"字串即可"
            return status == 200 and reply.strip() == b"ok"

        async def call() -> bool:
            return await deliver_with_retries(
                engine,
                state,
                method="POST",
                url=url,
                data=body,
                accept=acknowledged,
                retries=CALLBACK_RETRIES,
                backoff=backoff,
            )

        engine.enqueue(label, call)


__all__ = [
    "ERRORS",
    "MAX_RECIPIENTS",
    "PHONE_FORMATS",
    "STATUS_OF_OUTCOME",
    "SMSGetEmulator",
    "sms_parts",
    "sms_points",
]
