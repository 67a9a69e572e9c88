"""Strict parsing of query strings and form bodies from untrusted callers.

``urllib.parse.parse_qsl`` silently replaces bad bytes; callbacks need to tell
"valid UTF-8" from "Big5 bytes" from "garbage", so values are kept as bytes here
and decoded by whoever knows the charset.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from formosms.errors import InvalidWebhook

MAX_FIELDS = 1000


def split_form(raw: bytes | str) -> list[tuple[str, bytes]]:
    """``a=1&b=%E4%BD%A0`` -> ``[("a", b"1"), ("b", b"\\xe4\\xbd\\xa0")]``.

    Names must be ASCII; ``+`` means space (form encoding). Raises ``InvalidWebhook``.
    """
    data = raw.encode("latin-1") if isinstance(raw, str) else raw
    out: list[tuple[str, bytes]] = []
    if not data:
        return out
    for i, piece in enumerate(data.split(b"&")):
        if i >= MAX_FIELDS:
            raise InvalidWebhook(f"more than {MAX_FIELDS} fields")
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        # most names and values need no unquoting (a fifth of parsing a callback)
        raw_key = name if b"%" not in name and b"+" not in name else unquote_to_bytes(name.replace(b"+", b" "))
        try:
            key = raw_key.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidWebhook("field name is not ASCII") from None
        if b"%" in value or b"+" in value:
            value = unquote_to_bytes(value.replace(b"+", b" "))
        out.append((key, value))
    return out


def decode(value: bytes, field: str, charset: str = "utf-8") -> str:
    """Decode one field strictly; ``InvalidWebhook`` names the field on bad bytes."""
    try:
        return value.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise InvalidWebhook(f"{field} is not valid {charset}") from None


def text_fields(raw: bytes | str, charset: str = "utf-8") -> dict[str, str]:
    """All fields decoded with ``charset``; the first occurrence of a name wins."""
    fields: dict[str, str] = {}
    for key, value in split_form(raw):
        fields.setdefault(key, decode(value, key, charset))
    return fields
