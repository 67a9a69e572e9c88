"""Text on the air interface: GSM-7 or UCS-2, how many parts, what a channel cannot carry.

GSM 03.38: a single message carries 160 septets (153 per part when concatenated);
characters of the extension table (``^{}\\[~]|€`` and form feed) take two septets.
UCS-2: 70 UTF-16 units (67 per part); characters outside the BMP (most emoji) take two.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from formosms.model import Encoding

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

# Pictographs and other emoji, including the BMP ones (☀ ☺ ✂ …) and joiners/selectors.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U0001fc00-\U0001ffff\u2600-\u27bf\u2b00-\u2bff"
    "\u2300-\u23ff\ufe0f\u200d\U000e0020-\U000e007f]"
)


@dataclass(frozen=True, slots=True)
class TextInfo:
    """How a text is carried: encoding, length in its units, and parts."""

    encoding: Encoding
    units: int
    parts: int
    characters: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


def gsm7_length(text: str) -> int:
    """Length in septets (extension characters count two)."""
    return sum(2 if c in GSM7_EXTENSION else 1 for c in text)


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units (characters outside the BMP count two)."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


def parts_for(units: int, single: int, multi: int) -> int:
    """Parts needed for ``units`` when one part holds ``single`` and each of many ``multi``."""
    if units <= single:
        return 1
    return math.ceil(units / multi)


def analyze(text: str) -> TextInfo:
    """Encoding, units and part count by the GSM rules (160/153, 70/67)."""
    if is_gsm7(text):
        units = gsm7_length(text)
        return TextInfo(Encoding.GSM7, units, parts_for(units, 160, 153), len(text))
    units = utf16_length(text)
    return TextInfo(Encoding.UCS2, units, parts_for(units, 70, 67), len(text))


def has_emoji(text: str) -> bool:
    return _EMOJI.search(text) is not None


def emoji_in(text: str) -> list[str]:
    return _EMOJI.findall(text)


def big5_unencodable(text: str) -> list[str]:
    """Characters that Big5 (Windows code page 950) cannot carry: they would become ``?``."""
    bad: list[str] = []
    for c in text:
        if ord(c) < 0x80:
            continue
        try:
            c.encode("cp950")
        except UnicodeEncodeError:
            if c not in bad:
                bad.append(c)
    return bad


def is_ascii(text: str) -> bool:
    return text.isascii()
