"""Phone numbers: accept what people type, keep E.164, render each provider's wire form.

``normalize("0912-345-678") == "+886912345678"``. Taiwanese mobile numbers take a fast
path (a regular expression); everything else goes through the ``phonenumbers`` library
with Taiwan as the default region. Invalid input raises ``InvalidRecipient`` naming it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from formosms.errors import InvalidRecipient

DEFAULT_REGION = "TW"
_SEPARATORS = re.compile(r"[\s\-().]")
_DIALABLE = re.compile(r"^\+?\d{0,20}$")
_TW_MOBILE = re.compile(r"^(?:\+886|886|0)?(9\d{8})$")
_MOBILE_TYPES = frozenset(
    {
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
        PhoneNumberType.PAGER,
        PhoneNumberType.UNKNOWN,
    }
)


def normalize(number: str, region: str = DEFAULT_REGION) -> str:
    """Return the E.164 form (``+886912345678``) of a mobile number, or raise.

    ``region`` is the hint for numbers typed without a country code (``13512345678``
    with ``region="CN"``). Fixed lines are refused: they cannot receive SMS.
    """
    if not isinstance(number, str):
        raise InvalidRecipient(f"recipient must be text, got {type(number).__name__}")
    compact = _SEPARATORS.sub("", number.strip())
    if not _DIALABLE.match(compact):
        # phonenumbers reads letters as keypad digits ("0912ABCDEF"): refuse them
        raise InvalidRecipient(f"invalid phone number {number!r}", recipient=number)
    if region == DEFAULT_REGION:
        tw = _TW_MOBILE.match(compact)
        if tw:
            return "+886" + tw.group(1)
    return _normalize_slow(compact, region.upper(), number)


@lru_cache(maxsize=4096)
def _normalize_slow(compact: str, region: str, original: str) -> str:
    if not compact:
        raise InvalidRecipient("recipient is empty", recipient=original)
    candidate = compact
    if candidate.startswith("00") and region not in ("US", "CA"):
        candidate = "+" + candidate[2:]
    elif candidate.startswith("001") and len(candidate) == 13:
        candidate = "+1" + candidate[3:]  # SMS-Get's US form, 001 + 10 digits
    try:
        parsed = phonenumbers.parse(candidate, region)
    except NumberParseException as exc:
        raise InvalidRecipient(f"invalid phone number {original!r}: {exc}", recipient=original) from None
    if not phonenumbers.is_valid_number(parsed) and candidate[0] != "+":
        # "8613512345678" typed without "+": try it as international.
        with contextlib.suppress(NumberParseException):
            parsed = phonenumbers.parse("+" + candidate, None)
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidRecipient(f"invalid phone number {original!r}", recipient=original)
    if phonenumbers.number_type(parsed) not in _MOBILE_TYPES:
        raise InvalidRecipient(f"{original!r} is not a mobile number", recipient=original)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_many(numbers: str | Sequence[str], region: str = DEFAULT_REGION) -> list[str]:
    """Normalize one number or a list; a comma-separated string counts as a list."""
    items = numbers.split(",") if isinstance(numbers, str) else list(numbers)
    if not items or all(not str(n).strip() for n in items):
        raise InvalidRecipient("no recipient given")
    return [normalize(n, region) for n in items]


def country_code(e164: str) -> int:
    """The calling code of an E.164 number (886 for Taiwan)."""
    if e164.startswith("+886"):
        return 886
    return int(phonenumbers.parse(e164, None).country_code or 0)


def region_of(e164: str) -> str:
    """ISO region of an E.164 number (``TW``, ``CN``, ``HK``, ``US``…)."""
    if e164.startswith("+886"):
        return "TW"
    return str(phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or "ZZ")


def is_taiwan(e164: str) -> bool:
    return e164.startswith("+886")


def is_china(e164: str) -> bool:
    return e164.startswith("+86") and not e164.startswith("+886")


def national(e164: str) -> str:
    """The national form: ``+886912345678`` -> ``0912345678``; CN ``13512345678``."""
    if e164.startswith("+886"):
        return "0" + e164[4:]
    parsed = phonenumbers.parse(e164, None)
    return str(parsed.national_number) if parsed.country_code != 886 else "0" + str(parsed.national_number)


def digits(e164: str) -> str:
    """Country code and number without ``+``: ``8613512345678``."""
    return e164.lstrip("+")


def from_wire(value: str, region: str = DEFAULT_REGION) -> str:
    """Lenient reading of a number a provider sent back; returns the input if unparseable."""
    try:
        return normalize(value.strip(), region)
    except InvalidRecipient:
        return value.strip()
