"""EVERY8D HTTP emulator, written from ``shared/specs/every8d-http-api-2.1.txt``
("EVERY8D 企業簡訊服務平台 HTTP API Specifications-2.1") and provider-notes "EVERY8D HTTP".

Endpoints (under the ``/every8d`` prefix), HTTP GET or POST alike (§0 "此 HTTP 規格可使用
HTTP Post 或 HTTP Get 方式介接"); parameter names are read case-insensitively, as ASP.NET's
``Request["UID"]`` does:

- ``/API21/HTTP/sendSMS.ashx``                 §1.1 長簡訊傳送
- ``/API21/HTTP/MMS/sendMMS.ashx``             §1.2 MMS 簡訊傳送
- ``/API21/HTTP/getDeliveryStatus.ashx``       §2.2 發送狀態查詢
- ``/API21/HTTP/MMS/getDeliveryStatus.ashx``   §2.3 MMS 發送狀態查詢
- ``/API21/HTTP/getCredit.ashx``               §3.1 餘額查詢
- ``/API21/HTTP/eraseBooking.ashx``            §3.2 刪除預約簡訊
- ``/API21/HTTP/MMS/eraseBooking.ashx``        §3.3 刪除 MMS 預約簡訊

Send replies ``CREDIT,SENDED,COST,UNSEND,BATCH_ID`` in the newer edition's 5-field form
(``1230.00,4,4,0,<uuid>``, provider-notes); errors ``-<code>,<message>`` (the messages of
-300/-100/-101/-306/-99 are the ones quoted in provider-notes; the others are this
emulator's wording). Delivery reports and replies go to the ``StatusReportURL`` given at
send time by HTTP GET (§2.1), retried on non-200 up to 10 times.

Decisions where the document is silent:

- Numbers: Taiwan ``09xxxxxxxx`` or ``+8869xxxxxxxx`` (§1.1 DEST), international
  ``+<country code><number>`` (7–15 digits, not +886); anything else →
  ``-306,手機格式不符:<number>`` for the first bad one. No per-request recipient limit.
- Characters are counted as Unicode code points; a Taiwan SMS costs 1 point up to 70
  characters, then ``ceil(n / 67)`` (§1.1's table: 71–134 → 2 … 269–333 → 5; beyond 333
  "系統將自動拆則", 67 a part). International (non +886) ×3 (§1.1 ※).
- ST: empty = now; not 14 digits / not a date → ``-4``; in the past by more than 24 hours →
  ``-4`` (status -4 "預計發送時間已過去 24 小時以上"); in the past by less → sent at once
  (§1.1 "若傳遞時間已逾現在之時間，將立即發送"). RETRYTIME that is not a positive integer
  falls back to the default 1440.
- Insufficient points (§1.1 UNSEND): recipients are charged in order while the credit covers
  them; the rest are not sent, counted in UNSEND, and stored with state ``rejected`` and
  status ``301`` (無額度無法發送), cost 0 — they show in getDeliveryStatus and get a
  callback with STATUS=301. International numbers on an account whose international SMS is
  off (``Account.international``) are taken with status ``500``, cost 0, counted in SENDED.
- MR: one value for the whole request, or a comma list with one value per DEST entry.
- MMS (§1.2): 4 points a recipient; international → ``-306``; subject empty or longer than
  15 characters (95 when pure ASCII) → ``-303``; ATTACHMENT empty or not base64 → ``-304``;
  TYPE empty or not jpg/jpeg/png/gif → ``-305``; image + text over 50 KB → ``-314``;
  MSG over 4000 characters → ``-24``. MMS statuses are only 700/300/303 (§2.3): a sent MMS
  stays 700 whatever its outcome, and its callback says STATUS=700.
- getDeliveryStatus of an unknown BID answers ``0`` (a count of zero, no rows).
- eraseBooking answers the empty body when the batch has no message still scheduled.
- Replies (STATUS=999) go to the StatusReportURL of the message replied to, or of the
  account's latest message to that number; without one they are not delivered (the HTTP API
  has no other reply channel).
"""

from __future__ import annotations

import base64
import binascii
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

#: error replies (``-<code>,<message>``); spacing as quoted in provider-notes
ERRORS: dict[str, str] = {
    "-99": "-99, 主機端發生不明錯誤，請與廠商窗口聯繫。",  # §1.1 註 1
    "-100": "-100, 帳號或密碼錯誤",
    "-101": "-101, 密碼錯誤。",
    "-300": "-300, 帳號密碼不得為空值。",
    "-306": "-306,手機格式不符:{}",
    "-4": "-4, DT 格式錯誤或預計發送時間已過去 24 小時以上。",
    "-24": "-24, 簡訊內容不得為空值或超過長度限制。",
    "-41": "-41, 收訊人手機號碼不得為空值。",
    "-303": "-303, MMS 主旨不得為空值或超過長度限制。",
    "-304": "-304, 請上傳 MMS 圖片。",
    "-305": "-305, 請指定 MMS 圖片類型 (jpg/jpeg/png/gif)。",
    "-314": "-314, MMS 圖片加文字超過 50KB 限制。",
}

#: §2.1/§2.2 接收狀態代碼表: the neutral outcomes → EVERY8D status codes (SMS)
STATUS_OF_OUTCOME: dict[str, str] = {
    "delivered": "100",  # 發送成功
    "undeliverable": "101",  # 手機端因素未能送達
    "expired": "107",  # 逾時收訊
    "rejected": "103",  # 無此手機號碼
}
STATUS_PENDING = "0"  # 已發送
STATUS_SCHEDULED = "300"  # 預約簡訊
STATUS_NO_CREDIT = "301"  # 無額度(或額度不足)無法發送
STATUS_CANCELED = "303"  # 取消簡訊
STATUS_NO_INTERNATIONAL = "500"  # 未開通國際簡訊，無法發送國際簡訊
STATUS_MMS_SENT = "700"  # §2.3 MMS 已發送
STATUS_REPLY = "999"  # §2.1 "STATUS=999 時，即為回覆簡訊"

#: §1.2 "發至台灣門號計費方式 1~4000(字) 扣 4 點/則"
MMS_POINTS = Decimal(4)
MMS_MAX_TEXT = 4000
MMS_MAX_BYTES = 50 * 1024  # §1.2 "圖加文大小 50KB 之限制"
MMS_TYPES = frozenset({"jpg", "jpeg", "png", "gif"})
DEFAULT_RETRYTIME = 1440  # minutes (§1.1 RETRYTIME "預設 1440 分鐘")
PAGE_SIZE = 1000  # §2.2 "每次最多回傳 1000 筆資料"
CALLBACK_RETRIES = 10  # §2.1 執行結果 "Retry 次數最多 10 次"

_TAIWAN = re.compile(r"(?:09|\+8869)\d{8}")
_INTERNATIONAL = re.compile(r"\+(?!886)[1-9]\d{6,14}")


def is_taiwan(mobile: str) -> bool:
    return bool(_TAIWAN.fullmatch(mobile))


def valid_mobile(mobile: str) -> bool:
    """§1.1 DEST "格式為: +886912345678 或 0912345678"; international as ``+<cc>…``."""
    return is_taiwan(mobile) or bool(_INTERNATIONAL.fullmatch(mobile))


def e164(mobile: str) -> str:
    """``0912345678`` → ``+886912345678`` (§2.1 RM and §2.2 MOBILE show +886…)."""
    mobile = mobile.strip()
    if mobile.startswith("09") and len(mobile) == 10:
        return "+886" + mobile[1:]
    if mobile.startswith("886"):
        return "+" + mobile
    return mobile


def sms_parts(text: str) -> int:
    """§1.1 計價: 1–70 → 1, 71–134 → 2, 135–201 → 3, 202–268 → 4, 269–333 → 5, then 67 a part."""
    n = len(text)
    return 1 if n <= 70 else math.ceil(n / 67)


def sms_points(text: str, mobile: str) -> Decimal:
    """Points for one SMS to one mobile: §1.1 table, ×3 when not +886 ("國際簡訊…三倍點數")."""
    parts = sms_parts(text)
    return Decimal(parts if is_taiwan(mobile) else parts * 3)


def fmt_credit(points: Decimal) -> str:
    """CREDIT / getCredit: two decimals (``1230.00``, ``2310.00``)."""
    return f"{points:.2f}"


def fmt_points(points: Decimal) -> str:
    """COST in the send reply and b of eraseBooking: an integer when integral (``4``)."""
    return str(int(points)) if points == points.to_integral_value() else format(points.normalize(), "f")


def status_code(message: Accepted) -> str:
    """The §2.2 (SMS) / §2.3 (MMS) status of a stored message."""
    code = message.extra.get("code")
    if code:
        return str(code)
    if message.state in ("scheduled", "accepted"):
        return STATUS_SCHEDULED if message.send_at is not None else STATUS_PENDING
    if message.state == "canceled":
        return STATUS_CANCELED
    if message.kind == "mms":
        return STATUS_MMS_SENT  # §2.3 knows only 700 / 300 / 303
    return STATUS_OF_OUTCOME.get(message.state, STATUS_PENDING)


class Every8dEmulator(Emulator):
    name = "every8d"
    prefix = "/every8d"
    rate_limit = None  # the document states none
    #: seconds between callback retries (× attempt number); tests shorten it
    callback_backoff: float = 0.2

    def routes(self) -> Sequence[BaseRoute]:
        methods = ["GET", "POST"]
        return [
            Route("/API21/HTTP/sendSMS.ashx", self.send_sms, methods=methods),
            Route("/API21/HTTP/MMS/sendMMS.ashx", self.send_mms, methods=methods),
            Route("/API21/HTTP/getDeliveryStatus.ashx", self.status_sms, methods=methods),
            Route("/API21/HTTP/MMS/getDeliveryStatus.ashx", self.status_mms, methods=methods),
            Route("/API21/HTTP/getCredit.ashx", self.credit, methods=methods),
            Route("/API21/HTTP/eraseBooking.ashx", self.erase_sms, methods=methods),
            Route("/API21/HTTP/MMS/eraseBooking.ashx", self.erase_mms, methods=methods),
        ]

    # -- answers ----------------------------------------------------------------------------
    @staticmethod
    def text(body: str) -> Response:
        return PlainTextResponse(body, media_type="text/plain; charset=utf-8")

    def error(self, code: str, detail: str = "") -> Response:
        return self.text(ERRORS[code].format(detail))

    def busy_response(self) -> Response:
        return self.error("-99")

    def malformed_response(self) -> Response:
        return PlainTextResponse(
            "<!DOCTYPE html><html><head><title>Runtime Error</title></head><body>"
            "<h1>Server Error in '/API21' Application.</h1>",
            media_type="text/html",
        )

    # -- request helpers --------------------------------------------------------------------
    async def _fields(self, request: Request) -> dict[str, str]:
        # ASP.NET Request[...] ignores the case of parameter names
        return {key.upper(): value for key, value in (await form_fields(request)).items()}

    def _account(self, fields: dict[str, str], request: Request) -> Account | Response:
        uid, pwd = fields.get("UID", ""), fields.get("PWD", "")
        if not uid or not pwd:
            return self.error("-300")
        account = self.state.accounts.get(uid)
        if account is None or not account.enabled:
            return self.error("-100")
        if not account.authenticates(pwd):
            return self.error("-101")
        client_ip = request.client.host if request.client else None
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return self.error("-100")  # undocumented: an IP block reads as refused credentials
        return account

    # -- send -------------------------------------------------------------------------------
    async def send_sms(self, request: Request) -> Response:
        return await self._send(request, kind="sms")

    async def send_mms(self, request: Request) -> Response:
        return await self._send(request, kind="mms")

    async def _send(self, request: Request, *, kind: str) -> Response:
        request_id = self.state.next_request_id()
        fields = await self._fields(request)
        account = self._account(fields, request)
        if isinstance(account, Response):
            return account
        subject, text = fields.get("SB", ""), fields.get("MSG", "")

        if kind == "mms":
            # §1.2 SB "主旨，中英文限制 15 字，純英數限制 95 字"
            limit = 95 if subject.isascii() else 15
            if not subject.strip() or len(subject) > limit:
                return self.error("-303")
            if len(text) > MMS_MAX_TEXT:  # §1.2 "內容最大可發至 4000 字"
                return self.error("-24")
        elif not text:
            return self.error("-24")

        dest = [d.strip() for d in fields.get("DEST", "").split(",")]
        dest = [d for d in dest if d]
        if not dest:
            return self.error("-41")
        for mobile in dest:
            # §1.2 "MMS 簡訊不支援國際門號"
            if not valid_mobile(mobile) or (kind == "mms" and not is_taiwan(mobile)):
                return self.error("-306", mobile)

        attachment: dict[str, object] = {}
        if kind == "mms":
            image = fields.get("ATTACHMENT", "")
            if not image:
                return self.error("-304")
            try:
                data = base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                return self.error("-304")
            image_type = fields.get("TYPE", "").strip().lower().lstrip(".")
            if image_type not in MMS_TYPES:
                return self.error("-305")
            if len(data) + len(text.encode("utf-8")) > MMS_MAX_BYTES:
                return self.error("-314")
            attachment = {"type": image_type, "image_bytes": len(data)}

        st = fields.get("ST", "").strip()
        send_at: float | None = None
        if st:
            parsed = self._schedule(st)
            if parsed is None:
                return self.error("-4")
            send_at = parsed if parsed > time.time() else None  # past (< 24 h): now

        retry = fields.get("RETRYTIME", "").strip()
        minutes = int(retry) if retry.isdigit() and int(retry) > 0 else DEFAULT_RETRYTIME
        record_numbers = self._record_numbers(fields.get("MR", ""), len(dest))
        callback_url = fields.get("STATUSREPORTURL", "").strip()

        batch = self.state.uuid()
        sent, unsent, cost = 0, 0, Decimal(0)
        for mobile, record_no in zip(dest, record_numbers, strict=True):
            points = MMS_POINTS if kind == "mms" else sms_points(text, mobile)
            code = ""
            if not is_taiwan(mobile) and not account.international:
                code, points = STATUS_NO_INTERNATIONAL, Decimal(0)  # taken, reported 500
            elif not self.state.charge(account, points):
                code, points = STATUS_NO_CREDIT, Decimal(0)  # §1.1 UNSEND
            message = self.state.accept(
                account=account.username,
                request_id=request_id,
                recipient=mobile,
                text=text,
                message_id=batch,
                batch_id=batch,
                points=points,
                send_at=send_at,
                validity=minutes * 60.0,
                callback_url=callback_url,
                record_no=record_no,
                kind=kind,
                extra={"subject": subject, "st": st, **attachment},
            )
            if code:
                message.extra["code"] = code
                message.state = "rejected"
                message.final_at = time.time()
                self.on_final(message)
            else:
                self.release(message)
            if code == STATUS_NO_CREDIT:
                unsent += 1
            else:
                sent += 1
                cost += points
        return self.text(f"{fmt_credit(account.points)},{sent},{fmt_points(cost)},{unsent},{batch}")

    @staticmethod
    def _schedule(st: str) -> float | None:
        """§1.1 ST ``yyyyMMddHHmmss`` (Taiwan time); None when malformed or over 24 h past."""
        if not re.fullmatch(r"\d{14}", st):
            return None
        try:
            when = datetime.strptime(st, "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI).timestamp()
        except ValueError:
            return None
        if when < time.time() - 86400:
            return None
        return when

    @staticmethod
    def _record_numbers(mr: str, count: int) -> list[str]:
        values = [v.strip() for v in mr.split(",")]
        if count > 1 and len(values) == count:
            return values
        return [mr.strip()] * count

    # -- queries ----------------------------------------------------------------------------
    async def credit(self, request: Request) -> Response:
        """§3.1 餘額查詢: ``2310.00``."""
        self.state.next_request_id()
        fields = await self._fields(request)
        account = self._account(fields, request)
        if isinstance(account, Response):
            return account
        return self.text(fmt_credit(account.points))

    async def status_sms(self, request: Request) -> Response:
        return await self._status(request, kind="sms")

    async def status_mms(self, request: Request) -> Response:
        return await self._status(request, kind="mms")

    def _batch(self, account: Account, bid: str, kind: str) -> list[Accepted]:
        found = self.state.find(bid.strip()) if bid.strip() else []
        return sorted((m for m in found if m.account == account.username and m.kind == kind), key=lambda m: m.seq)

    async def _status(self, request: Request, *, kind: str) -> Response:
        """§2.2/§2.3: count line, then ``NAME\\tMOBILE\\tSEND_TIME\\tCOST\\tSTATUS\\tRECEIVED_TIME``.

        The 6th column (RECEIVED_TIME) is the newer edition's (provider-notes); 1000 rows a
        page, PNO "" or "1" the first page, "2" rows 1001–2000 (§2.2 PNO).
        """
        self.state.next_request_id()
        fields = await self._fields(request)
        account = self._account(fields, request)
        if isinstance(account, Response):
            return account
        messages = self._batch(account, fields.get("BID", ""), kind)
        pno = fields.get("PNO", "").strip()
        page = int(pno) if pno.isdigit() and int(pno) > 0 else 1
        rows = messages[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        lines = [str(len(messages))]
        for m in rows:
            sent = m.send_at if m.send_at is not None else m.received_at
            received = ""
            if m.state == "delivered" and m.final_at is not None:
                received = taipei(m.final_at).strftime("%Y/%m/%d %H:%M:%S")
            lines.append(
                "\t".join(
                    (
                        "",  # NAME: the address-book name; the API sends none
                        e164(m.recipient),
                        taipei(sent).strftime("%Y/%m/%d %H:%M:%S"),
                        f"{m.points:.1f}",
                        status_code(m),
                        received,
                    )
                )
            )
        return self.text("\n".join(lines))

    # -- cancel -----------------------------------------------------------------------------
    async def erase_sms(self, request: Request) -> Response:
        return await self._erase(request, kind="sms")

    async def erase_mms(self, request: Request) -> Response:
        return await self._erase(request, kind="mms")

    async def _erase(self, request: Request, *, kind: str) -> Response:
        """§3.2/§3.3: ``a,b`` (刪除的筆數, 回補的點數); empty = 查無資料."""
        self.state.next_request_id()
        fields = await self._fields(request)
        account = self._account(fields, request)
        if isinstance(account, Response):
            return account
        deleted, refund = 0, Decimal(0)
        for m in self._batch(account, fields.get("BID", ""), kind):
            if m.state == "scheduled" and self.cancel(m):
                deleted += 1
                refund += m.points
        if not deleted:
            return self.text("")
        account.points += refund
        return self.text(f"{deleted},{fmt_points(refund)}")

    # -- callbacks --------------------------------------------------------------------------
    def on_final(self, message: Accepted) -> None:
        """§2.1 發送狀態主動通知: HTTP GET to StatusReportURL with BatchID/RM/RT/STATUS/SM/MR."""
        if not message.callback_url:
            return
        when = message.final_at or time.time()
        self._call(
            message.callback_url,
            message,
            mobile=message.recipient,
            status=status_code(message),
            text=message.text,
            when=when,
        )

    def on_reply(self, sender: str, text: str, to_message: Accepted | None, account: Account) -> None:
        """§2.1 回覆簡訊之判斷: the same URL with ``STATUS=999`` and the reply in ``SM``."""
        target = to_message
        if target is None or not target.callback_url:
            tail = sender.strip()[-9:]
            target = next(
                (
                    m
                    for m in reversed(self.state.messages)
                    if m.account == account.username and m.callback_url and m.recipient.endswith(tail)
                ),
                None,
            )
        if target is None or not target.callback_url:
            return
        self._call(target.callback_url, target, mobile=sender, status=STATUS_REPLY, text=text, when=time.time())

    def _call(self, url: str, message: Accepted, *, mobile: str, status: str, text: str, when: float) -> None:
        sent = message.send_at if message.send_at is not None else message.received_at
        params = [
            ("BatchID", message.batch_id),
            ("RM", e164(mobile)),  # §2.1 "Encode 後再傳送(+886961295288)"
            ("RT", taipei(when).strftime("%Y%m%d%H%M%S")),
            ("STATUS", status),
            ("SM", text),
            ("MR", message.record_no),
            # the extra fields real callbacks carry (provider-notes)
            ("USERID", message.account),
            ("ST", taipei(sent).strftime("%Y%m%d%H%M%S")),
            ("SUBJECT", str(message.extra.get("subject", ""))),
            ("NAME", ""),
            ("CHARGE", f"{message.points:.1f}"),
        ]
        engine, state, backoff = self.engine, self.state, self.callback_backoff

        async def call() -> bool:
            return await deliver_with_retries(
                engine,
                state,
                method="GET",
                url=url,
                params=params,
                accept=lambda code, _body: code == 200,  # §2.1 "HTTP 連線狀態碼非 200" → retry
                retries=CALLBACK_RETRIES,
                backoff=backoff,
            )

        engine.enqueue(f"every8d {status} {message.batch_id}", call)


__all__ = [
    "ERRORS",
    "STATUS_OF_OUTCOME",
    "Every8dEmulator",
    "sms_parts",
    "sms_points",
    "status_code",
]
