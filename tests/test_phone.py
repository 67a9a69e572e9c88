"""Numbers as people type them, normalized once (phonenumbers, default region TW)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from formosms import phone
from formosms.errors import InvalidRecipient


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("0912-345-678", "+886912345678"),
        ("+886 912 345 678", "+886912345678"),
        ("886912345678", "+886912345678"),
        ("(09)1234-5678", "+886912345678"),
        ("+8613681912700", "+8613681912700"),  # SMSGo's own example, §1 dstaddr
        ("8613512345678", "+8613512345678"),
        ("+1 202 555 0143", "+12025550143"),
    ],
)
def test_normalize(typed: str, e164: str) -> None:
    assert phone.normalize(typed) == e164


def test_region_hint() -> None:
    assert phone.normalize("13512345678", "CN") == "+8613512345678"
    assert phone.normalize("54123456", "HK") == "+85254123456"


@pytest.mark.parametrize("bad", ["", "   ", "0912ABCDEF", "12", "0223456789", "09123", "+886 2 2345 6789"])
def test_invalid_numbers_name_the_number(bad: str) -> None:
    with pytest.raises(InvalidRecipient) as caught:
        phone.normalize(bad)
    assert caught.value.field == "to"


def test_normalize_many_accepts_comma_lists() -> None:
    assert phone.normalize_many("0912345678, 0922333444") == ["+886912345678", "+886922333444"]
    with pytest.raises(InvalidRecipient):
        phone.normalize_many([])


def test_wire_forms() -> None:
    assert phone.national("+886912345678") == "0912345678"
    assert phone.national("+8613512345678") == "13512345678"
    assert phone.digits("+8613512345678") == "8613512345678"
    assert phone.country_code("+886912345678") == 886
    assert phone.region_of("+85254123456") == "HK"
    assert phone.is_china("+8613512345678") and not phone.is_china("+886912345678")
    assert phone.from_wire(" 0912345678 ") == "+886912345678"
    assert phone.from_wire("0912xxxxxx") == "0912xxxxxx"


@given(st.text(max_size=30))
def test_normalize_never_raises_anything_else(text: str) -> None:
    try:
        result = phone.normalize(text)
    except InvalidRecipient:
        return
    assert result.startswith("+")
