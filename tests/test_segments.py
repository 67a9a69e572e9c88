"""GSM 03.38 segment counting: 160/153 septets, 70/67 UTF-16 units."""

import pytest

from formosms import segments
from formosms.model import Encoding


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("a" * 306, Encoding.GSM7, 2),
        ("a" * 307, Encoding.GSM7, 3),
        ("€" * 80, Encoding.GSM7, 1),  # extension characters count two septets
        ("€" * 81, Encoding.GSM7, 2),
        ("中" * 70, Encoding.UCS2, 1),
        ("中" * 71, Encoding.UCS2, 2),
        ("中" * 134, Encoding.UCS2, 2),
        ("中" * 135, Encoding.UCS2, 3),
        ("😀" * 35, Encoding.UCS2, 1),  # emoji are two UTF-16 units
        ("😀" * 36, Encoding.UCS2, 2),
    ],
)
def test_analyze(text: str, encoding: Encoding, parts: int) -> None:
    info = segments.analyze(text)
    assert (info.encoding, info.parts) == (encoding, parts)


def test_emoji_and_big5() -> None:
    assert segments.has_emoji("好 😀") and segments.has_emoji("☀") and not segments.has_emoji("台灣簡訊")
    assert segments.big5_unencodable("台灣簡訊测试😀") == ["测", "试", "😀"]  # simplified forms are not Big5
    assert segments.big5_unencodable("繁體中文 abc") == []
