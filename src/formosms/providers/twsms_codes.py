"""TwSMS JSON API 4.0 tables and rules: ``code`` (§6), ``statustext`` (§8), text limits (§3).

Every reply carries ``code``: ``00000`` is success. Three codes are answers, not
failures, where they are expected: ``00001`` (no final status yet) and ``00310``
(reservation not sent yet) in a status query, ``00410`` (no replies) in a reply query.
The operations handle those before consulting ``ERRORS``; elsewhere they are errors.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from formosms import phone
from formosms.errors import (
    AccountError,
    AuthenticationError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRecipient,
    InvalidRequest,
    InvalidSchedule,
    NotFound,
    ProviderUnavailable,
    Rejected,
)
from formosms.model import Encoding, Status
from formosms.segments import TextInfo, emoji_in, gsm7_length, is_gsm7, parts_for, utf16_length

PROVIDER = "twsms"

OK = "00000"
PENDING = "00001"
NOT_FOUND = "00300"
NOT_SENT_YET = "00310"
NO_REPLIES = "00410"

VALIDITY_RANGE = (300, 28800)  # expirytime seconds (§3)
INTERNATIONAL_FACTOR = 3  # 國際門號每則扣 3 通 (§3)
ENGLISH = (160, 153, 765)  # single, per part, at most (§3)
CHINESE = (70, 67, 335)
_URL = re.compile(r"https?://\S+", re.IGNORECASE)

#: §8 ``statustext``, plus the two query codes that stand for a state (§6).
STATUS: dict[str, Status] = {
    "DELIVRD": Status.DELIVERED,  # 訊息已發送到接收手機
    "EXPIRED": Status.EXPIRED,  # 訊息已過了發送的有效時間
    "DELETED": Status.CANCELED,  # 訊息已被刪除 (what a canceled reservation reports)
    "UNDELIV": Status.UNDELIVERABLE,  # 訊息無法送達
    "ACCEPTD": Status.SUBMITTED,  # 訊息正在接收狀態: still in progress, per the document
    "UNKNOWN": Status.UNKNOWN,  # 訊息為無效狀態
    "REJECTD": Status.REJECTED,  # 訊息發送被拒絕
    "SYNTAXE": Status.FAILED,  # 訊息發送失敗
    "MOBERROR": Status.UNDELIVERABLE,  # 電話號碼錯誤: no provider can deliver to it
    "MSGERROR": Status.REJECTED,  # 訊息內容錯誤
    "OTERROR": Status.FAILED,  # 系統錯誤
    "REJERROR": Status.REJECTED,  # 被關鍵字過濾系統擋掉的簡訊 (keyword filter)
    "REJMOBIL": Status.REJECTED,  # 門號使用者有申請檔廣告簡訊服務 (opted out of ads)
    PENDING: Status.SUBMITTED,  # 狀態尚未回復
    NOT_SENT_YET: Status.SCHEDULED,  # 預約尚未送出
}

#: §6, every code but ``00000``: (class, English meaning).
ERRORS: dict[str, tuple[type[FormosmsError], str]] = {
    PENDING: (Rejected, "no final status yet"),
    "00010": (AuthenticationError, "account or password format is wrong"),
    "00011": (AuthenticationError, "account is wrong"),
    "00012": (AuthenticationError, "password is wrong"),
    "00020": (InsufficientCredit, "not enough points"),
    "00030": (AccountError, "this IP is not allowed to use the account"),
    "00031": (AccountError, "international numbers are restricted for this account"),
    "00040": (AccountError, "account is suspended"),
    "00041": (AccountError, "API is not enabled (www.twsms.com -> account settings -> API settings)"),
    "00050": (InvalidSchedule, "sendtime format is wrong"),
    "00060": (InvalidSchedule, "expirytime format is wrong"),
    "00100": (InvalidRecipient, "mobile number format is wrong"),
    "00110": (InvalidMessage, "no message text"),
    "00120": (InvalidMessage, "long SMS cannot go to international numbers"),
    "00130": (InvalidMessage, "message text is too long"),
    "00140": (InvalidRequest, "drurl format is wrong"),
    "00150": (InvalidSchedule, "sendtime is already past"),
    "00170": (InvalidRequest, "drurl cannot be reached (it must answer HTTP 200)"),
    "00180": (InvalidMessage, "message text contains emoji"),
    NOT_FOUND: (NotFound, "msgid not found"),
    # Expected in a status query (-> scheduled). After a cancel (delttime=Y) it says the
    # reservation is still pending, i.e. it was NOT deleted: never counted as canceled.
    NOT_SENT_YET: (Rejected, "reservation not sent yet"),
    "00400": (InvalidRequest, "two-way code (snumber) not found"),
    NO_REPLIES: (NotFound, "no replies (MO) for that day"),
    "00420": (InvalidRequest, "status query format is wrong"),
    "00430": (InvalidRequest, "reply query format is wrong"),
    "99998": (ProviderUnavailable, "data processing error, please resend"),
    "99999": (ProviderUnavailable, "system error"),
}

#: The caller's field an ``InvalidRequest`` code is about (``Client.send`` names).
FIELDS: dict[str, str] = {
    "00050": "schedule_at",
    "00060": "validity",
    "00150": "schedule_at",
    "00140": "callback_url",
    "00170": "callback_url",
    "00400": "code",
    "00430": "day",
}


def error_for(code: str, text: str = "", *, recipient: str | None = None) -> FormosmsError:
    """The exception for a reply ``code`` (with the provider's ``text``); unknown -> ``Rejected``."""
    cls, meaning = ERRORS.get(code, (Rejected, "unknown code"))
    message = f"{meaning}: {text}" if text and text != meaning else meaning
    if cls is InvalidRecipient:
        return InvalidRecipient(message, recipient=recipient, provider=PROVIDER, code=code)
    field = FIELDS.get(code)
    if cls is InvalidMessage:
        return InvalidMessage(message, field=field or "text", provider=PROVIDER, code=code)
    if cls is InvalidSchedule:
        return InvalidSchedule(message, field=field or "schedule_at", provider=PROVIDER, code=code)
    if cls is InvalidRequest:
        return InvalidRequest(message, field=field, provider=PROVIDER, code=code)
    return cls(message, provider=PROVIDER, code=code)


# -- the documented limits (§2, §3) -------------------------------------------------------


def text_info(text: str) -> TextInfo:
    """Encoding, length and parts by TwSMS's English/Chinese rules (§3 message row)."""
    if text.isascii() and is_gsm7(text):
        units = gsm7_length(text)
        return TextInfo(Encoding.GSM7, units, parts_for(units, ENGLISH[0], ENGLISH[1]), len(text))
    units = utf16_length(text)
    return TextInfo(Encoding.UCS2, units, parts_for(units, CHINESE[0], CHINESE[1]), len(text))


def check_text(text: str, recipients: Sequence[str], *, long: bool = True) -> TextInfo:
    """Raise ``InvalidMessage`` (field ``text``) for what TwSMS refuses; return the text's info."""
    if not text.strip():
        raise InvalidMessage("text is empty (code 00110)", provider=PROVIDER)
    emoji = emoji_in(text)
    if emoji:
        raise InvalidMessage(f"TwSMS refuses emoji (code 00180): {''.join(emoji[:5])}", provider=PROVIDER)
    info = text_info(text)
    single, _, most = ENGLISH if info.encoding is Encoding.GSM7 else CHINESE
    kind = "English" if info.encoding is Encoding.GSM7 else "Chinese"
    if info.units > most:
        raise InvalidMessage(
            f"text is {info.units} characters; TwSMS takes at most {most} for {kind} text (code 00130)",
            provider=PROVIDER,
        )
    if info.units > single:
        if not long:
            raise InvalidMessage(
                f"text is {info.units} characters, over one {kind} SMS ({single}), and long=False",
                provider=PROVIDER,
            )
        abroad = next((r for r in recipients if not phone.is_taiwan(r)), None)
        if abroad:
            raise InvalidMessage(
                f"long SMS cannot go to international numbers ({abroad}); keep the text within "
                f"{single} characters (長簡訊不支援國際門號, code 00120)",
                provider=PROVIDER,
            )
    return info


def check_options(options: dict[str, Any]) -> None:
    """Types of the send options (``callback_url``, ``callback_check``, ``long``)."""
    url = options.get("callback_url")
    if url is not None and url != "" and (not isinstance(url, str) or not _URL.fullmatch(url)):
        raise InvalidRequest(
            "callback_url must be an http(s) URL (code 00140)", field="callback_url", provider=PROVIDER
        )
    for name in ("callback_check", "long"):
        if name in options and not isinstance(options[name], bool):
            raise InvalidRequest(f"{name} must be True or False", field=name, provider=PROVIDER)
