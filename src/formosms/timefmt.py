"""Times on the wire: every provider speaks Taiwan time (Asia/Taipei), each in its own format."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from formosms.errors import InvalidSchedule

TAIPEI = ZoneInfo("Asia/Taipei")


def now() -> datetime:
    return datetime.now(UTC)


def schedule(when: datetime | None, *, field: str = "schedule_at") -> datetime | None:
    """Check a schedule time (aware, in the future) and return it in Taiwan time."""
    if when is None:
        return None
    if not isinstance(when, datetime):
        raise InvalidSchedule(f"{field} must be a datetime", field=field)
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidSchedule(
            f"{field} must be timezone-aware (e.g. datetime(..., tzinfo=ZoneInfo('Asia/Taipei')))",
            field=field,
        )
    if when <= now():
        raise InvalidSchedule(f"{field} {when.isoformat()} is in the past", field=field)
    return when.astimezone(TAIPEI)


def validity(value: timedelta | int | float | None, *, field: str = "validity") -> timedelta | None:
    """A validity period as a positive ``timedelta`` (numbers are seconds)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidSchedule(f"{field} must be a timedelta or seconds", field=field)
    delta = timedelta(seconds=value) if isinstance(value, int | float) else value
    if not isinstance(delta, timedelta) or delta.total_seconds() <= 0:
        raise InvalidSchedule(f"{field} must be a positive duration", field=field)
    return delta


# the layouts every delivery report carries, read without strptime (a tenth of the
# gateway's time on callbacks went to it: bench/gateway_e2e.py profile); anything else,
# or anything these do not match, goes through strptime as before
_D, _DD = r"(\d{1,2})", r"(\d{2})"
_FAST = {
    "%Y/%m/%d %H:%M:%S": re.compile(rf"(\d{{4}})/{_D}/{_D} {_D}:{_D}:{_D}"),
    "%Y-%m-%d %H:%M:%S": re.compile(rf"(\d{{4}})-{_D}-{_D} {_D}:{_D}:{_D}"),
    "%Y%m%d%H%M%S": re.compile(rf"(\d{{4}}){_DD}{_DD}{_DD}{_DD}{_DD}"),
}


def _fast_match(text: str, fmt: str) -> re.Match[str] | None:
    fast = _FAST.get(fmt)
    return fast.fullmatch(text) if fast is not None else None


def _from_match(match: re.Match[str]) -> datetime | None:
    try:
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=TAIPEI)
    except ValueError:
        return None


def parse_taipei(text: str, fmt: str) -> datetime | None:
    """Read a provider time in ``fmt`` as Taiwan time; None when empty or unreadable."""
    text = text.strip()
    if not text:
        return None
    match = _fast_match(text, fmt)
    if match is not None:
        return _from_match(match)
    try:
        return datetime.strptime(text, fmt).replace(tzinfo=TAIPEI)
    except ValueError:
        return None


def parse_taipei_any(text: str, formats: tuple[str, ...]) -> datetime | None:
    """The first of ``formats`` that reads ``text`` (the regex layouts are tried first:
    they accept disjoint shapes, and a failed strptime costs an exception)."""
    stripped = text.strip()
    for fmt in formats:
        match = _fast_match(stripped, fmt)
        if match is not None:
            return _from_match(match)
    for fmt in formats:
        parsed = parse_taipei(text, fmt)
        if parsed is not None:
            return parsed
    return None
