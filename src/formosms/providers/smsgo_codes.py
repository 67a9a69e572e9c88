"""SMSGo codes: delivery states (table 2), ``statuscode`` errors (table 1), and the
``encoding`` values with what each can carry (§1) and how it is charged.

Source: ``shared/specs/smsgo-api.md`` (the clean reading of the v6.4 document) and the
OCR scan ``smsgo-api-6.4.ocr.txt``.
"""

from __future__ import annotations

from formosms.errors import (
    AccountError,
    AuthenticationError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRecipient,
    InvalidRequest,
    ProviderUnavailable,
    Rejected,
)
from formosms.model import Encoding, Status
from formosms.segments import big5_unencodable, gsm7_length, is_gsm7, parts_for, utf16_length

PROVIDER = "smsgo"

#: Table 2, "Final Message States" (the ``statusstr`` of a report or a query). The scan's
#: "Message State" column spells some of them out (DELIVERED, UNDELIVERABLE, ACCEPTED,
#: REJECTED, SYNTAXERROR): accepted too. Lookups are case-insensitive; anything else is
#: ``Status.UNKNOWN`` (see ``status_of``).
STATUS: dict[str, Status] = {
    "DELIVRD": Status.DELIVERED,
    "DELIVERED": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    # "Message has been deleted": by the operator or SMSGo, not by the caller (SMSGo cannot
    # recall a message, FAQ 6). It never reached the handset and is final: undeliverable,
    # not "canceled" (which the gateway reserves for the caller's own cancel).
    "DELETED": Status.UNDELIVERABLE,
    "UNDELIV": Status.UNDELIVERABLE,
    "UNDELIVERABLE": Status.UNDELIVERABLE,
    "ABSENT": Status.UNDELIVERABLE,
    "BLOCK": Status.UNDELIVERABLE,
    "SPAM": Status.REJECTED,
    "REJECTD": Status.REJECTED,
    "REJECTED": Status.REJECTED,
    "SYNTAXE": Status.REJECTED,
    "SYNTAXERROR": Status.REJECTED,
    # SMPP ACCEPTD: "manually read on behalf of the subscriber by customer service". It is
    # a final state (no later report comes) and the content did reach the subscriber's
    # side, so it counts as delivered; ``provider_status`` keeps "ACCEPTD" for whoever cares.
    "ACCEPTD": Status.DELIVERED,
    "ACCEPTED": Status.DELIVERED,
    "UNKNOWN": Status.UNKNOWN,
}

_UNREADABLE = "undocumented (unreadable in the v6.4 scan)"

#: Table 1, ``statuscode``. -11…-20 were added in v6.3/6.4; the scan is unreadable, the
#: meanings given are the clean reading's low-confidence third-party ones.
ERRORS: dict[str, tuple[type[FormosmsError], str]] = {
    "-1": (InvalidRequest, "CGI string error or unknown (malformed or missing parameters, e.g. empty text)"),
    "-2": (AuthenticationError, "authorization error (account, password/API key, or IP not allowed)"),
    "-3": (Rejected, "priority error (priority set too high)"),
    "-4": (Rejected, "A-number (sender) violates the rules"),
    "-5": (InvalidRecipient, "B-number (recipient) violates the rules"),
    # The document does not say whose "closed user" (the account or the number): neutral.
    "-6": (Rejected, "closed user"),
    "-7": (InvalidMessage, "invalid encoding"),
    "-8": (InsufficientCredit, "not enough points"),
    "-9": (InvalidRecipient, "invalid msisdn amount (number of recipients out of range)"),
    # "If the reply shows a sending fault, you may resend through the backup URL" (§1).
    "-10": (ProviderUnavailable, "send fail"),
    "-11": (ProviderUnavailable, "gateway database error"),
    "-12": (Rejected, _UNREADABLE),
    "-13": (Rejected, _UNREADABLE),
    "-14": (Rejected, _UNREADABLE),
    "-15": (AccountError, "server IP not in the allow-list"),
    "-16": (AccountError, "API not enabled"),
    "-17": (Rejected, _UNREADABLE),
    "-18": (InvalidRecipient, "number outside the service range"),
    "-19": (InvalidRecipient, "number blocked"),
    "-20": (Rejected, _UNREADABLE),
}

#: §1 ``encoding``: P = popup (flash), L = long, PUSH = WAP push.
ENCODINGS = ("BIG5", "ASCII", "UCS2", "PBIG5", "PASCII", "LBIG5", "LASCII", "LUCS2", "PUSH")
#: Single-part limits in characters (§1 ``smbody``): 70 with any Chinese, 160 pure English.
SINGLE_LIMIT = {"ASCII": 160, "PASCII": 160, "BIG5": 70, "PBIG5": 70, "UCS2": 70}
LONG_ENCODINGS = ("LASCII", "LBIG5", "LUCS2")
#: Per-part capacity of a long SMS (concatenation headers: 153 GSM / 67 UCS-2).
LONG_PART = {"LASCII": 153, "LBIG5": 67, "LUCS2": 67}
LONG_MAX = 330
#: The only encodings allowed internationally and with ``replyurl`` (§1 notes 4, 5).
PLAIN_ENCODINGS = ("BIG5", "ASCII", "UCS2")
PUSH_MAX_BYTES = 88


def status_of(statusstr: str) -> Status:
    """Normalized status of a table-2 ``statusstr``; unknown text is ``Status.UNKNOWN``."""
    return STATUS.get(statusstr.strip().upper(), Status.UNKNOWN)


def normalize_code(code: str) -> str:
    text = str(code).strip()
    try:
        return str(int(text))
    except ValueError:
        return text


def error_for(code: str, text: str = "") -> FormosmsError:
    """The exception for a negative ``statuscode`` (unknown codes: ``Rejected``)."""
    key = normalize_code(code)
    cls, meaning = ERRORS.get(key, (Rejected, "rejected by SMSGo"))
    detail = text.strip()[:200]
    message = f"{meaning}: {detail}" if detail and detail.lower() != meaning.lower() else meaning
    return cls(message, provider=PROVIDER, code=key)


# -- encodings: what each carries, which one to use, what it costs ---------------------------------


def units(text: str, encoding: str) -> int:
    """Length of ``text`` as ``encoding`` counts it against its limit."""
    if "ASCII" in encoding:
        # Counted as GSM-7 septets (``{}[]~^|\\`` take two) so a 160-character text with
        # braces never lands in a part that overflows on the air.
        return gsm7_length(text) if is_gsm7(text) else len(text)
    if "UCS2" in encoding:
        return utf16_length(text)
    return len(text)


def carry_problem(text: str, encoding: str) -> str | None:
    """Why ``encoding`` cannot carry ``text`` whole (SMSGo would garble or truncate it)."""
    if "ASCII" in encoding and not text.isascii():
        return f"{encoding} carries ASCII text only"
    if "BIG5" in encoding:
        bad = big5_unencodable(text)
        if bad:
            return f"{encoding} cannot carry {''.join(bad[:5])!r} (not in Big5)"
    if encoding in LONG_ENCODINGS:
        if len(text) > LONG_MAX:
            return f"text is {len(text)} characters; a long SMS carries at most {LONG_MAX}"
    elif encoding in SINGLE_LIMIT and units(text, encoding) > SINGLE_LIMIT[encoding]:
        # §1 note 1: "BIG5/ASCII/UCS2 are single-part only: text beyond the limit is truncated"
        return (
            f"text is {len(text)} characters; {encoding} is single-part (at most "
            f"{SINGLE_LIMIT[encoding]}) and SMSGo would truncate the rest"
        )
    return None


def choose_encoding(
    text: str,
    *,
    international: bool = False,
    china: bool = False,
    flash: bool = False,
    wap_url: str | None = None,
    reply: bool = False,
    explicit: str | None = None,
    push_limit: bool = True,
) -> str:
    """The ``encoding`` that carries ``text`` whole; raises naming the field when none can.

    ASCII text → ``ASCII``, Big5-encodable → ``BIG5``, else ``UCS2``; ``L…`` when longer than
    one part; ``P…`` for ``flash``; ``PUSH`` with ``wap_url``. International sends and
    ``reply`` (``replyurl``) allow only BIG5/ASCII/UCS2 (§1 notes 4–5); Chinese to China must
    be UCS2. ``explicit`` is checked against all of that. ``push_limit=False`` lets a WAP
    push pass 88 bytes (``estimate``: SMSGo then sends a long SMS).
    """
    if wap_url is not None:
        if flash:
            raise InvalidRequest("flash and wap_url cannot be combined", field="flash")
        if reply:
            raise InvalidRequest("reply_url works only with BIG5/ASCII/UCS2, not WAP push", field="reply_url")
        if international:
            raise InvalidRequest("international SMS takes only BIG5/ASCII/UCS2: no WAP push", field="wap_url")
        if explicit not in (None, "PUSH"):
            raise InvalidRequest("wap_url needs encoding PUSH", field="encoding")
        size = len(text.encode("utf-8")) + len(wap_url.encode("utf-8"))
        if push_limit and size > PUSH_MAX_BYTES:  # §1 note 3
            raise InvalidMessage(
                f"WAP push title + URL are {size} bytes; at most {PUSH_MAX_BYTES} (a Chinese character is 3)"
            )
        return "PUSH"
    if explicit == "PUSH":
        raise InvalidRequest("encoding PUSH needs wap_url", field="wap_url")
    restricted = "international SMS" if international else "reply_url" if reply else ""
    if restricted and flash:
        raise InvalidRequest(f"no flash SMS with {restricted}", field="reply_url" if reply else "flash")
    if explicit is not None:
        if restricted and explicit not in PLAIN_ENCODINGS:
            raise InvalidRequest(f"{restricted} takes only BIG5/ASCII/UCS2, not {explicit}", field="encoding")
        if flash and not explicit.startswith("P"):
            raise InvalidRequest(f"flash needs a P… encoding, not {explicit}", field="encoding")
        if china and explicit == "BIG5" and not text.isascii():
            raise InvalidRequest("Chinese text to China must use encoding UCS2", field="encoding")
        problem = carry_problem(text, explicit)
        if problem:
            raise InvalidMessage(problem)
        return explicit
    if text.isascii():
        base = "ASCII"
    elif not china and not big5_unencodable(text):
        base = "BIG5"
    else:
        base = "UCS2"
    if flash:
        if base == "UCS2":  # there is no PUCS2
            raise InvalidMessage("flash SMS carries only ASCII or Big5 text")
        candidates = ["P" + base]
    else:
        candidates = [base] if restricted else [base, "L" + base]
    problem = ""
    for candidate in candidates:
        problem = carry_problem(text, candidate) or ""
        if not problem:
            return candidate
    if restricted or flash:
        problem += f" (no long SMS with {restricted or 'flash'})"
    raise InvalidMessage(problem)


def parts_of(text: str, encoding: str, wap_url: str | None = None) -> int:
    """Parts (= points per recipient) SMSGo charges for ``text`` in ``encoding``."""
    if encoding == "PUSH":
        joined = text + (wap_url or "")
        if len(joined.encode("utf-8")) <= PUSH_MAX_BYTES:
            return 1
        # §1 note 3: "beyond 88 bytes the system converts it to a long SMS and charges accordingly"
        encoding, text = ("LASCII" if joined.isascii() else "LUCS2"), joined
    if encoding in LONG_ENCODINGS:
        return parts_for(units(text, encoding), SINGLE_LIMIT[encoding[1:]], LONG_PART[encoding])
    return 1


def air_encoding(encoding: str, text: str) -> Encoding:
    """How the text travels on the air (Big5 Chinese goes out as UCS-2)."""
    return Encoding.GSM7 if "ASCII" in encoding or text.isascii() else Encoding.UCS2
