"""Provider times: the regex fast path reads exactly what ``strptime`` reads."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formosms.timefmt import TAIPEI, parse_taipei

FORMATS = ["%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"]


def _strptime(text: str, fmt: str) -> datetime | None:
    try:
        return datetime.strptime(text.strip(), fmt).replace(tzinfo=TAIPEI)
    except ValueError:
        return None


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)), st.sampled_from(FORMATS))
def test_fast_path_agrees_with_strptime(when: datetime, fmt: str) -> None:
    text = when.strftime(fmt)
    assert parse_taipei(text, fmt) == _strptime(text, fmt) == when.replace(microsecond=0, tzinfo=TAIPEI)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        ("2010/3/20 03:27:50", "%Y/%m/%d %H:%M:%S"),  # EVERY8D drops leading zeros (API 2.1 §5)
        ("2010/2/3 1:2:3", "%Y/%m/%d %H:%M:%S"),
        ("2010/02/30 01:02:03", "%Y/%m/%d %H:%M:%S"),  # no such day
        ("2010-13-01 00:00:00", "%Y-%m-%d %H:%M:%S"),
        ("2009021012000", "%Y%m%d%H%M%S"),  # one digit short: strptime decides
        ("20090210120000", "%Y%m%d%H%M%S"),
        ("  2010/03/03 14:25:55 ", "%Y/%m/%d %H:%M:%S"),
        ("garbage", "%Y/%m/%d %H:%M:%S"),
    ],
)
def test_edge_cases_agree_with_strptime(text: str, fmt: str) -> None:
    assert parse_taipei(text, fmt) == _strptime(text, fmt)


def test_empty_is_none() -> None:
    assert parse_taipei("  ", "%Y/%m/%d %H:%M:%S") is None
