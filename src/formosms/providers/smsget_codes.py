"""SMS-Get's code tables: delivery states, error codes, the countries it delivers to and their number forms.

Kept apart from ``smsget.py`` so the codec stays readable; nothing here does I/O.
"""

from __future__ import annotations

import re
from decimal import Decimal

from phonenumbers import NumberParseException

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
    Rejected,
)
from formosms.model import Status

PROVIDER = "smsget"

# The delivery callback's STATUS word (section 二, sample "DELIVRD"). SMS-Get relays the
# operators' SMPP delivery receipts, so the table holds the SMPP 3.4 receipt words
# (``stat:``) and the message_state names they abbreviate, plus SMPP 5.0's SKIPPED.
STATUS: dict[str, Status] = {
    "DELIVRD": Status.DELIVERED,
    "DELIVERED": Status.DELIVERED,
    "EXPIRED": Status.EXPIRED,
    "UNDELIV": Status.UNDELIVERABLE,
    "UNDELIVERABLE": Status.UNDELIVERABLE,
    "REJECTD": Status.REJECTED,
    "REJECTED": Status.REJECTED,
    # Deleted by the operator's SMSC (not a cancel the caller asked for): it was not delivered.
    "DELETED": Status.FAILED,
    "SKIPPED": Status.FAILED,
    # ACCEPTD is "read on the subscriber's behalf" in SMPP, which says nothing about the
    # handset; like Kannel, treat it (and ENROUTE) as still in the network.
    "ACCEPTD": Status.SUBMITTED,
    "ACCEPTED": Status.SUBMITTED,
    "ENROUTE": Status.SUBMITTED,
    "UNKNOWN": Status.UNKNOWN,
}


def status_of(word: str) -> Status:
    """The normalized status of a STATUS word; anything unlisted is ``Status.UNKNOWN``."""
    return STATUS.get(word.strip().upper(), Status.UNKNOWN)


# error_code of the send, two-way send and credit replies (sections 一, 三, 五).
ERRORS: dict[str, tuple[type[FormosmsError], str]] = {
    "001": (InvalidRequest, "parameter error"),
    "002": (InvalidSchedule, "schedule parameter error"),
    "003": (InvalidSchedule, "schedule time has passed"),
    "004": (InvalidMessage, "message too long"),
    "005": (AuthenticationError, "wrong account or password"),
    "006": (AccountError, "IP address not allowed"),
    "007": (InvalidRecipient, "no recipient"),
    "008": (InvalidRequest, "more than 250 recipients"),
    "009": (InsufficientCredit, "not enough points"),
    "010": (AccountError, "two-way SMS not subscribed"),
}

# The request field an error code is about (``InvalidRequest.field``).
ERROR_FIELDS: dict[str, str] = {"008": "to", "002": "schedule_at", "003": "schedule_at", "004": "text"}


def error_for(code: str, text: str = "") -> FormosmsError:
    """The exception for an SMS-Get error code, with ``.provider`` and ``.code`` set.

    Unknown codes become ``Rejected`` keeping the code and the provider's text.
    """
    cls, meaning = ERRORS.get(code, (Rejected, "refused"))
    message = f"{meaning}: {text}" if text and text != meaning else meaning
    error = cls(message, provider=PROVIDER, code=code or None)
    if isinstance(error, InvalidRequest) and code in ERROR_FIELDS:
        error.field = ERROR_FIELDS[code]
    return error


# Countries section 一 says SMS-Get delivers to, by ISO region, with the point multiplier
# per part. Only Taiwan, Hong Kong (1) and China (2) are priced in the document; the
# others are undocumented and assumed to cost 1 point per part like Taiwan.
COUNTRIES: dict[str, Decimal] = {
    "TW": Decimal(1),
    "HK": Decimal(1),
    "CN": Decimal(2),
    "MO": Decimal(1),
    "JP": Decimal(1),
    "MY": Decimal(1),
    "VN": Decimal(1),
    "ID": Decimal(1),
    "TH": Decimal(1),
    "AU": Decimal(1),
    "SG": Decimal(1),
    "PH": Decimal(1),
    "AE": Decimal(1),
    "KH": Decimal(1),
    "US": Decimal(1),
    "KR": Decimal(1),
}


def region(e164: str) -> str:
    try:
        return phone.region_of(e164)
    except NumberParseException:
        return "ZZ"


# -- wire forms -------------------------------------------------------------------------------


def wire_number(e164: str) -> str:
    """Section 一's ``phone`` forms; ``InvalidRecipient`` for countries SMS-Get does not list."""
    where = region(e164)
    if where not in COUNTRIES:
        raise InvalidRecipient(
            f"SMS-Get does not deliver to {e164} (region {where})", recipient=e164, provider=PROVIDER
        )
    if where in ("TW", "CN", "HK"):
        return phone.national(e164)  # 0912345678 / 13512345678 / 54123123
    if where == "US":
        return "001" + phone.national(e164)
    return phone.digits(e164)


def number_from_wire(value: str) -> str:
    """A callback's number as E.164, reading SMS-Get's national forms back; else as given."""
    v = value.strip()
    if not re.fullmatch(r"\+?[0-9]+", v):
        return v  # masked ("0912xxxxxx") or junk: phonenumbers would read letters as keypad digits
    if v.startswith("+"):
        return phone.from_wire(v)
    if len(v) == 11 and v.startswith("1"):
        return phone.from_wire("+86" + v)
    if len(v) == 8:
        return phone.from_wire("+852" + v)
    if len(v) == 13 and v.startswith("001"):
        return phone.from_wire("+1" + v[3:])
    if v.startswith("0"):
        return phone.from_wire(v)
    return phone.from_wire("+" + v)
