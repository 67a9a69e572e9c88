"""SMSGo codec: requests, replies, code tables, exchanges, estimate and callbacks.

Quotes are from ``shared/specs/smsgo-api.md`` (the clean reading of the v6.4 document);
the fixtures in ``tests/fixtures/smsgo/`` are the document's own samples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formosms.client import prepare_sms, settle
from formosms.errors import (
    AccountError,
    AuthenticationError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRecipient,
    InvalidRequest,
    InvalidWebhook,
    MalformedResponse,
    PartialFailure,
    ProviderUnavailable,
    Rejected,
)
from formosms.model import Encoding, Feature, Status
from formosms.providers.base import MessageRef, OutboundSMS, from_dsn, registry
from formosms.providers.smsgo import (
    ERRORS,
    STATUS,
    SMSGo,
    decode_smbody,
    parse_balance,
    parse_cancel,
    parse_query,
    parse_send,
    parse_webhook,
    webhook_ack,
)
from formosms.providers.smsgo_codes import choose_encoding, error_for
from formosms.segments import big5_unencodable
from formosms.timefmt import TAIPEI
from formosms.transport import HttpRequest, Outcome
from tests.helpers import drive, fixture, query, reply

TW = "+886988123456"
TW2 = "+886912345678"
CN = "+8613681912700"
HK = "+85291234567"
FUTURE = datetime(2099, 1, 2, 3, 4, 5, tzinfo=TAIPEI)


@pytest.fixture
def smsgo() -> SMSGo:
    return SMSGo("Testerld", "TesterPW")


def sms(*to: str, text: str = "Smtest", **options: Any) -> OutboundSMS:
    return OutboundSMS(tuple(to or (TW,)), text, options=options)


def one_request(provider: SMSGo, message: OutboundSMS) -> HttpRequest:
    return provider.build_send(message.recipients, message)


def callback(qs: str, method: str = "GET", body: bytes = b"", content_type: str = "") -> Any:
    return parse_webhook(method=method, query=qs.encode(), body=body, content_type=content_type)


# -- the class ---------------------------------------------------------------------------------


def test_declares_what_the_document_offers(smsgo: SMSGo) -> None:
    assert SMSGo.name == "smsgo"
    assert SMSGo.default_base_url == "https://www.smsgo.com.tw"
    # "Up to 50 numbers separated by commas" (§1 dstaddr)
    assert SMSGo.max_recipients == 50
    assert Feature.VALIDITY not in SMSGo.features
    assert Feature.MMS not in SMSGo.features and Feature.REPLIES_POLL not in SMSGo.features
    assert {Feature.WAP_PUSH, Feature.FLASH, Feature.CANCEL, Feature.TWO_WAY} <= SMSGo.features
    assert SMSGo.send_options == {"callback_url", "flash", "wap_url", "reply_url", "reply_days", "encoding"}
    assert registry()["smsgo"] is SMSGo
    assert "TesterPW" not in repr(smsgo)


def test_dsn_and_other_hosts() -> None:
    provider = from_dsn("smsgo://Testerld:TesterPW@")
    assert isinstance(provider, SMSGo) and provider.base_url == "https://www.smsgo.com.tw"
    # v6.3: "https://api.smsgo.com.tw — added"; www2 is the documented backup host.
    assert from_dsn("smsgo://u:p@api.smsgo.com.tw").base_url == "https://api.smsgo.com.tw"
    assert SMSGo("u", "p", base_url="http://www2.smsgo.com.tw/").base_url == "http://www2.smsgo.com.tw"


# -- send requests ------------------------------------------------------------------------------


def test_document_ascii_example_exactly(smsgo: SMSGo) -> None:
    """Phase One's Vender request: ``...&encoding=ASCII&smbody=Smtest&response=http%3A%2F…``."""
    message = sms(TW, callback_url="http://127.0.0.1/response.php")
    expected = fixture("smsgo", "send_request_ascii.url").strip().replace("09xxxxxxxx", "0988123456")
    assert one_request(smsgo, message).full_url() == expected + "&rtype=JSON"


def test_document_big5_example(smsgo: SMSGo) -> None:
    """§1: "the official examples send 簡訊測試 as %E7%B0%A1… with encoding=BIG5"."""
    request = one_request(smsgo, sms("+886939000012", text="簡訊測試", callback_url="http://127.0.0.1/response.php"))
    sample = dict(p.split("=", 1) for p in urlsplit(fixture("smsgo", "send_request_big5.url").strip()).query.split("&"))
    ours = dict(p.split("=", 1) for p in urlsplit(request.full_url()).query.split("&"))
    for name in ("smbody", "encoding", "response", "username", "password"):
        assert ours[name] == sample[name]
    assert request.method == "GET" and request.url == "https://www.smsgo.com.tw/sms_gw/sendsms.aspx"


def test_international_number_and_comma_list(smsgo: SMSGo) -> None:
    """§1: "International: + then country code then number, i.e. %2b8613681912700 on the wire"."""
    request = one_request(smsgo, sms(TW, CN, TW2))
    assert "dstaddr=0988123456%2C%2B8613681912700%2C0912345678&" in request.full_url()
    assert "%2b8613681912700" in request.full_url().lower()
    assert query(request)["dstaddr"] == "0988123456,+8613681912700,0912345678"


def test_text_is_encoded_exactly_once(smsgo: SMSGo) -> None:
    text = "100% + & # ]]> < a=b\n😀 你好"
    request = one_request(smsgo, sms(text=text))
    assert query(request)["smbody"] == text
    assert "smbody=" + quote(text, safe="") + "&" in request.full_url()
    assert "100%25%20%2B%20%26%20%23" in request.full_url()
    assert query(request)["encoding"] == "UCS2"  # 😀 is not Big5


def test_password_never_in_repr(smsgo: SMSGo) -> None:
    request = one_request(smsgo, sms())
    assert "TesterPW" in request.full_url() and "TesterPW" not in repr(request)


def test_schedule_is_taiwan_time(smsgo: SMSGo) -> None:
    """``dlvtime``: "format YYYY/MM/DD hh24:mm:ss (Taiwan time)"."""
    at_utc = datetime(2099, 1, 1, 19, 4, 5, tzinfo=UTC)
    message = OutboundSMS((TW,), "hi", schedule_at=at_utc)
    assert query(one_request(smsgo, message))["dlvtime"] == "2099/01/02 03:04:05"
    assert "dlvtime" not in query(one_request(smsgo, sms()))


def test_reply_and_callback_fields(smsgo: SMSGo) -> None:
    fields = query(
        one_request(
            smsgo,
            sms(
                text="請回覆",
                reply_url="https://example.com.tw/reply",
                reply_days=30,
                callback_url="https://example.com.tw/dlr?x=1&y=2",
            ),
        )
    )
    assert fields["replyurl"] == "https://example.com.tw/reply"
    assert fields["replydays"] == "30"
    assert fields["response"] == "https://example.com.tw/dlr?x=1&y=2"
    assert fields["encoding"] == "BIG5" and fields["rtype"] == "JSON"


def test_wap_push(smsgo: SMSGo) -> None:
    """``PUSH``: "smbody + wapurl together at most 88 bytes, a Chinese character counting 3 bytes"."""
    fields = query(one_request(smsgo, sms(text="測試網頁", wap_url="www.test.com")))
    assert fields["encoding"] == "PUSH" and fields["wapurl"] == "www.test.com" and fields["smbody"] == "測試網頁"
    url = "http://www.test.com/a.aspx"  # 26 bytes
    smsgo.validate(sms(text="中" * 20 + "ab", wap_url=url))  # 62 + 26 = 88
    with pytest.raises(InvalidMessage) as err:
        smsgo.validate(sms(text="中" * 20 + "abc", wap_url=url))  # 89
    assert err.value.field == "text" and "89 bytes" in str(err.value)


@pytest.mark.parametrize(
    ("text", "to", "options", "encoding"),
    [
        ("Smtest", (TW,), {}, "ASCII"),
        ("a" * 160, (TW,), {}, "ASCII"),
        ("a" * 161, (TW,), {}, "LASCII"),
        ("{" * 80, (TW,), {}, "ASCII"),  # 160 septets
        ("{" * 81, (TW,), {}, "LASCII"),  # braces take two septets on the air
        ("簡" * 70, (TW,), {}, "BIG5"),
        ("簡" * 71, (TW,), {}, "LBIG5"),
        ("简体", (TW,), {}, "UCS2"),  # 简 is not in Big5
        ("é" * 70, (TW,), {}, "UCS2"),
        ("简" * 71, (TW,), {}, "LUCS2"),
        ("中" * 330, (TW,), {}, "LBIG5"),
        ("你好", (CN,), {}, "UCS2"),  # "Simplified Chinese to China must use UCS2"
        ("hello", (CN,), {}, "ASCII"),
        ("你好", (HK,), {}, "BIG5"),
        ("你好", (TW, CN), {}, "UCS2"),  # one encoding carries both destinations
        ("hello", (TW,), {"flash": True}, "PASCII"),
        ("你好", (TW,), {"flash": True}, "PBIG5"),
        ("你好", (TW,), {"reply_url": "https://e.tw/r"}, "BIG5"),
        ("你好", (TW,), {"encoding": "ucs2"}, "UCS2"),
        ("hi", (TW,), {"encoding": "LASCII"}, "LASCII"),
        ("hi", (TW,), {"encoding": "PBIG5"}, "PBIG5"),
    ],
)
def test_encoding_choice(smsgo: SMSGo, text: str, to: tuple[str, ...], options: dict[str, Any], encoding: str) -> None:
    assert query(one_request(smsgo, sms(*to, text=text, **options)))["encoding"] == encoding


@pytest.mark.parametrize(
    ("text", "to", "options", "error", "field"),
    [
        ("中" * 331, (TW,), {}, InvalidMessage, "text"),  # "at most 330 Chinese characters"
        ("a" * 331, (TW,), {}, InvalidMessage, "text"),
        ("中" * 71, (CN,), {}, InvalidMessage, "text"),  # no long SMS internationally
        ("a" * 161, (TW, HK), {}, InvalidMessage, "text"),
        ("中" * 71, (TW,), {"reply_url": "https://e.tw/r"}, InvalidMessage, "text"),
        ("简体", (TW,), {"flash": True}, InvalidMessage, "text"),  # there is no PUCS2
        ("a" * 161, (TW,), {"flash": True}, InvalidMessage, "text"),
        ("hi", (CN,), {"flash": True}, InvalidRequest, "flash"),
        ("hi", (TW,), {"flash": True, "reply_url": "https://e.tw/r"}, InvalidRequest, "reply_url"),
        ("hi", (CN,), {"wap_url": "www.test.com"}, InvalidRequest, "wap_url"),
        ("hi", (TW,), {"wap_url": "www.test.com", "flash": True}, InvalidRequest, "flash"),
        ("hi", (TW,), {"wap_url": "w.tw", "reply_url": "https://e.tw/r"}, InvalidRequest, "reply_url"),
        ("hi", (TW,), {"wap_url": "w.tw", "encoding": "BIG5"}, InvalidRequest, "encoding"),
        ("hi", (TW,), {"encoding": "PUSH"}, InvalidRequest, "wap_url"),
        ("hi", (TW,), {"encoding": "GSM"}, InvalidRequest, "encoding"),
        ("hi", (TW,), {"encoding": 7}, InvalidRequest, "encoding"),
        ("你好", (TW,), {"encoding": "ASCII"}, InvalidMessage, "text"),
        ("简体", (TW,), {"encoding": "BIG5"}, InvalidMessage, "text"),  # Big5 cannot carry 简
        ("中" * 71, (TW,), {"encoding": "BIG5"}, InvalidMessage, "text"),  # would be truncated
        ("hi", (CN,), {"encoding": "LASCII"}, InvalidRequest, "encoding"),
        ("你好", (CN,), {"encoding": "BIG5"}, InvalidRequest, "encoding"),
        ("hi", (TW,), {"encoding": "ASCII", "flash": True}, InvalidRequest, "encoding"),
        ("hi", (TW,), {"flash": "yes"}, InvalidRequest, "flash"),
        ("hi", (TW,), {"reply_days": 3}, InvalidRequest, "reply_days"),
        ("hi", (TW,), {"reply_url": "https://e.tw/r", "reply_days": 31}, InvalidRequest, "reply_days"),
        ("hi", (TW,), {"reply_url": "https://e.tw/r", "reply_days": 0}, InvalidRequest, "reply_days"),
        ("hi", (TW,), {"reply_url": "https://e.tw/r", "reply_days": True}, InvalidRequest, "reply_days"),
        ("hi", (TW,), {"reply_url": "https://e.tw/" + "r" * 300}, InvalidRequest, "reply_url"),
        ("hi", (TW,), {"reply_url": "ftp://e.tw/r"}, InvalidRequest, "reply_url"),
        ("hi", (TW,), {"callback_url": ""}, InvalidRequest, "callback_url"),
        ("hi", (TW,), {"wap_url": ""}, InvalidRequest, "wap_url"),
    ],
)
def test_refused_locally_naming_the_field(
    smsgo: SMSGo, text: str, to: tuple[str, ...], options: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error) as err:
        smsgo.validate(sms(*to, text=text, **options))
    assert isinstance(err.value, InvalidRequest) and err.value.field == field


def test_client_validation_runs_the_codec(smsgo: SMSGo) -> None:
    with pytest.raises(InvalidRequest) as err:
        prepare_sms(smsgo, "0912345678", "hi", None, None, {"subject": "x"})
    assert err.value.field == "subject"
    with pytest.raises(InvalidMessage):
        prepare_sms(smsgo, "0912345678", "中" * 331, None, None, {})
    with pytest.raises(FormosmsError):
        prepare_sms(smsgo, "0912345678", "hi", None, 3600, {})  # no validity at SMSGo


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=400), st.sampled_from([(TW,), (CN,), (HK,), (TW, CN)]), st.booleans())
def test_never_a_channel_that_loses_text(text: str, to: tuple[str, ...], flash: bool) -> None:
    """§1 note 1: "BIG5/ASCII/UCS2 are single-part only: text beyond the limit is truncated"."""
    try:
        encoding = choose_encoding(text, international=to != (TW,), china=CN in to, flash=flash and to == (TW,))
    except InvalidMessage:
        return
    if "BIG5" in encoding:
        assert not big5_unencodable(text)
    if "ASCII" in encoding:
        assert text.isascii()
    if encoding in ("ASCII", "PASCII"):
        assert len(text) <= 160
    elif encoding in ("BIG5", "UCS2", "PBIG5"):
        assert len(text) <= 70
    else:
        assert encoding.startswith("L") and len(text) <= 330 and to == (TW,)


# -- send replies -------------------------------------------------------------------------------


def test_plain_reply_sample() -> None:
    """§1: ``msgid= 100101121234567`` (with the document's space), statuscode=0, point=1."""
    assert parse_send(fixture("smsgo", "send_reply.txt")) == ("100101121234567", Decimal(1))
    crlf = "msgid=100101121234567\r\nstatuscode = 0 \r\nstatusstr=OK\r\npoint=2\r\n"
    assert parse_send(crlf) == ("100101121234567", Decimal(2))


def test_json_reply_sample() -> None:
    assert parse_send(fixture("smsgo", "send_reply.json")) == ("1504280910499665", Decimal(1))
    assert parse_send('{"result":{"msgid":"1504280910499665","statuscode":0,"point":"3"}}')[1] == 3


def test_empty_body_reply_from_the_faq() -> None:
    """FAQ 7: an empty body gives msgid=-1, statuscode=-1, "CGI string error!!"."""
    with pytest.raises(InvalidRequest) as err:
        parse_send(fixture("smsgo", "send_reply_empty_body.txt"))
    assert err.value.code == "-1" and err.value.provider == "smsgo"
    assert "CGI string error!!" in str(err.value)


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_error_code(code: str) -> None:
    cls, meaning = ERRORS[code]
    with pytest.raises(cls) as err:
        parse_send(f"msgid={code}\nstatuscode={code}\nstatusstr=text from SMSGo\npoint=0")
    assert type(err.value) is cls and err.value.code == code and err.value.provider == "smsgo"
    assert "text from SMSGo" in str(err.value) and meaning in str(err.value)
    with pytest.raises(cls):
        parse_send(f'{{"result":{{"msgid":{code},"statuscode":"{code}","statusstr":"x","point":0}}}}')
    assert type(error_for(code, "")) is cls


def test_error_classes_follow_the_table() -> None:
    assert isinstance(error_for("-2"), AuthenticationError)
    assert isinstance(error_for("-8"), InsufficientCredit)
    assert isinstance(error_for("-5"), InvalidRecipient)
    assert isinstance(error_for("-15"), AccountError) and isinstance(error_for("-16"), AccountError)
    # "if the reply shows a sending fault, you may resend through the backup URL"
    assert error_for("-10").retryable and error_for("-11").retryable
    assert not error_for("-2").retryable


def test_unknown_code_is_rejected_with_code_and_text() -> None:
    with pytest.raises(Rejected) as err:
        parse_send("msgid=-99\nstatuscode=-99\nstatusstr=Something new")
    assert err.value.code == "-99" and "Something new" in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        "<html>Server Error</html>",
        "{",
        "[]",
        '{"result": 5}',
        '{"result": {"msgid": 1}}',
        "statuscode=0",
        "msgid=abc\nstatuscode=0",
        "msgid=-5\nstatuscode=0",
        "msgid=1\nstatuscode=OK",
        "OK",
    ],
)
def test_malformed_send_replies(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_send(body)


# -- send exchange ------------------------------------------------------------------------------


def numbers(n: int) -> list[str]:
    return [f"+8869{i:08d}" for i in range(n)]


def test_send_splits_by_fifty_and_uses_one_msgid_per_request(smsgo: SMSGo) -> None:
    recipients = numbers(120)
    seen: list[HttpRequest] = []
    ids = iter(["1504280910499661", "1504280910499662", "1504280910499663"])

    def answer(request: HttpRequest) -> str:
        count = len(query(request)["dstaddr"].split(","))
        return f'{{"result":{{"msgid":{next(ids)},"statuscode":"0","statusstr":"OK","point":{count}}}}}'

    result = drive(smsgo.send(OutboundSMS(tuple(recipients), "hello")), answer, seen)
    assert [len(query(r)["dstaddr"].split(",")) for r in seen] == [50, 50, 20]
    assert query(seen[0])["dstaddr"].split(",")[0] == "0900000000"
    assert result.batch_ids == ("1504280910499661", "1504280910499662", "1504280910499663")
    assert result.batch_id is None and result.cost == Decimal(120)
    assert [m.recipient for m in result.messages] == recipients
    assert {m.message_id for m in result.messages[:50]} == {"1504280910499661"}
    assert result.messages[119].message_id == "1504280910499663"


def test_single_request_batch_id(smsgo: SMSGo) -> None:
    result = drive(smsgo.send(sms(TW, TW2)), lambda r: fixture("smsgo", "send_reply.txt"))
    assert result.batch_id == "100101121234567" and result.message_ids == ["100101121234567"] * 2


def test_partial_failures_keep_every_recipient(smsgo: SMSGo) -> None:
    recipients = numbers(150)
    replies: Iterator[Outcome | str] = iter(
        [
            fixture("smsgo", "send_reply.json"),
            "msgid=-8\nstatuscode=-8\nstatusstr=Not enough points\npoint=0",
            ProviderUnavailable("HTTP 503", provider="smsgo"),
        ]
    )
    result = drive(smsgo.send(OutboundSMS(tuple(recipients), "hello")), lambda r: next(replies))
    assert len(result.accepted) == 50 and len(result.failed) == 100
    assert all(isinstance(m.error, InsufficientCredit) for m in result.messages[50:100])
    assert all(isinstance(m.error, ProviderUnavailable) for m in result.messages[100:])
    with pytest.raises(PartialFailure):
        settle(result)


def test_refused_before_any_request(smsgo: SMSGo) -> None:
    seen: list[HttpRequest] = []
    with pytest.raises(InvalidMessage):
        drive(smsgo.send(sms(text="中" * 400)), lambda r: "", seen)
    assert seen == []


def test_send_of_malformed_reply_is_outcome_unknown(smsgo: SMSGo) -> None:
    result = drive(smsgo.send(sms()), lambda r: reply("<html>oops</html>"))
    assert isinstance(result.messages[0].error, MalformedResponse)


# -- status ---------------------------------------------------------------------------------------


def test_query_one_request_and_json_sample(smsgo: SMSGo) -> None:
    """``query.asp``: msgid + dstaddr; the JSON sample has a trailing comma and camelCase keys."""
    seen: list[HttpRequest] = []
    ref = MessageRef(message_id="1504280910499665", recipient=TW)
    (report,) = drive(smsgo.status([ref]), lambda r: fixture("smsgo", "query_reply.json"), seen)
    assert seen[0].url == "https://www.smsgo.com.tw/sms_gw/query.asp"
    fields = query(seen[0])
    assert fields == {
        "username": "Testerld",
        "password": "TesterPW",
        "msgid": "1504280910499665",
        "dstaddr": "0988123456",
        "rtype": "JSON",
    }
    # The scan's own URL sample (ssl host, no dstaddr) names a subset of what we send.
    sample = urlsplit(fixture("smsgo", "query_request_ocr.url").strip())
    assert sample.path == urlsplit(seen[0].url).path
    assert {p.split("=")[0] for p in sample.query.split("&")} <= set(fields)
    assert report.status is Status.DELIVERED and report.provider_status == "DELIVRD"
    assert report.recipient == TW and report.message_id == "1504280910499665"
    assert report.batch_id == "1504280910499665" and report.raw["statuscode"] == "0"


def test_query_plain_sample() -> None:
    (report,) = parse_query(fixture("smsgo", "query_reply.txt"), [MessageRef("77", TW)])
    assert (report.status, report.recipient, report.message_id) == (Status.DELIVERED, TW, "77")


def test_query_bulk(smsgo: SMSGo) -> None:
    """``queryBulk.asp``: comma lists; "one record per line, lines separated by \\r\\n"."""
    refs = [MessageRef("111", TW), MessageRef("111", TW2), MessageRef("222", CN)]
    seen: list[HttpRequest] = []
    body = "0|DELIVRD|0988123456|111\r\n0|EXPIRED|0912345678|111\r\n0|UNDELIV|+8613681912700|222\r\n"
    reports = drive(smsgo.status(refs), lambda r: body, seen)
    assert seen[0].url.endswith("/sms_gw/queryBulk.asp")
    assert query(seen[0])["msgid"] == "111,111,222"
    assert query(seen[0])["dstaddr"] == "0988123456,0912345678,+8613681912700"
    assert "%2B8613681912700" in seen[0].full_url()
    assert [(r.recipient, r.message_id, r.status) for r in reports] == [
        (TW, "111", Status.DELIVERED),
        (TW2, "111", Status.EXPIRED),
        (CN, "222", Status.UNDELIVERABLE),
    ]


def test_query_bulk_repeated_rows_reported_once() -> None:
    """§3 does not say whether the msgid and dstaddr lists pair up or filter each other."""
    body = "0|DELIVRD|0988123456|111\r\n0|DELIVRD|0912345678|111\r\n" * 2
    reports = parse_query(body, [MessageRef("111", TW), MessageRef("111", TW2)])
    assert [(r.recipient, r.message_id) for r in reports] == [(TW, "111"), (TW2, "111")]


def test_query_bulk_three_columns_matches_refs_by_number() -> None:
    refs = [MessageRef("111", TW), MessageRef("222", TW2)]
    reports = parse_query("0|ABSENT|0912345678\n0|DELIVRD|0988123456", refs)
    assert [(r.recipient, r.message_id) for r in reports] == [(TW2, "222"), (TW, "111")]


def test_query_splits_by_fifty(smsgo: SMSGo) -> None:
    refs = [MessageRef("1", n) for n in numbers(101)]
    seen: list[HttpRequest] = []
    drive(smsgo.status(refs), lambda r: "0|DELIVRD|0900000000|1", seen)
    assert [r.url.rsplit("/", 1)[1] for r in seen] == ["queryBulk.asp", "queryBulk.asp", "query.asp"]


def test_query_needs_the_recipient(smsgo: SMSGo) -> None:
    with pytest.raises(InvalidRequest) as err:
        drive(smsgo.status([MessageRef(message_id="111")]), lambda r: "")
    assert err.value.field == "recipient"
    with pytest.raises(InvalidRequest) as err:
        drive(smsgo.status([MessageRef(recipient=TW)]), lambda r: "")
    assert err.value.field == "message_id"
    assert drive(smsgo.status([]), lambda r: "") == []


def test_query_errors(smsgo: SMSGo) -> None:
    with pytest.raises(AuthenticationError):
        parse_query("-2|authorization error|0988123456")
    with pytest.raises(AuthenticationError):
        parse_query('{"results":{"result":[{"statusCode":"-2","statusStr":"auth"}]}}')
    with pytest.raises(AuthenticationError):
        parse_query("msgid=-2\nstatuscode=-2\nstatusstr=auth")
    # a table-2 state decides, whatever statuscode comes with it
    (report,) = parse_query("-10|UNDELIV|0988123456", [MessageRef("9", TW)])
    assert report.status is Status.UNDELIVERABLE and report.message_id == "9"
    # one failed row among good ones: reported, kept raw, status unknown
    reports = parse_query("0|DELIVRD|0988123456|1\r\n-5|bad number|0912|1")
    assert reports[1].status is Status.UNKNOWN and reports[1].provider_status == "bad number"
    with pytest.raises(ProviderUnavailable):
        drive(smsgo.status([MessageRef("1", TW)]), lambda r: ProviderUnavailable("503", provider="smsgo"))


@pytest.mark.parametrize("body", ["", "DELIVRD", "x|y", "a|DELIVRD|0988123456", "{}", "statuscode=0", "{]"])
def test_malformed_query_replies(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_query(body)


@pytest.mark.parametrize(("text", "status"), sorted(STATUS.items()))
def test_every_status_in_queries(text: str, status: Status) -> None:
    (report,) = parse_query(f"0|{text}|0988123456|1")
    assert report.status is status and report.provider_status == text


def test_status_table_decisions() -> None:
    """Table 2: every documented final state, with the two judgement calls."""
    assert {k for k in STATUS if len(k) <= 7} >= {
        "DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ABSENT", "SPAM", "BLOCK", "ACCEPTD",
        "UNKNOWN", "REJECTD", "SYNTAXE",
    }  # fmt: skip
    # "accepted (read on behalf of the subscriber by customer service)": final, reached them
    assert STATUS["ACCEPTD"] is Status.DELIVERED
    # "message deleted" by the operator/system, never by the caller: it did not arrive
    assert STATUS["DELETED"] is Status.UNDELIVERABLE
    (report,) = parse_query("0|ENROUTE|0988123456|1")
    assert report.status is Status.UNKNOWN and report.provider_status == "ENROUTE"


# -- balance and cancel ------------------------------------------------------------------------------


def test_balance(smsgo: SMSGo) -> None:
    seen: list[HttpRequest] = []
    assert drive(smsgo.balance(), lambda r: fixture("smsgo", "query_point_reply.json"), seen) == Decimal(6220)
    assert seen[0].url.endswith("/sms_gw/query_point.asp")
    assert query(seen[0]) == {"username": "Testerld", "password": "TesterPW", "rtype": "JSON"}
    assert parse_balance(" 6220\r\n") == Decimal(6220)
    assert parse_balance("statuscode=0\npoint=12") == Decimal(12)
    assert parse_balance('{"results":{"result":{"statuscode":0,"point":7}}}') == Decimal(7)


@pytest.mark.parametrize("body", ["-2", '{"results":{"result": [{"statuscode": "-2","point": "0"}]}}'])
def test_balance_errors(body: str) -> None:
    with pytest.raises(AuthenticationError):
        parse_balance(body)


@pytest.mark.parametrize("body", ["", "NaN", "Infinity", "abc", "statuscode=0", '{"results":{}}', "1e5"])
def test_malformed_balance(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_balance(body)


def test_cancel(smsgo: SMSGo) -> None:
    """Reply "not documented: treat a statuscode=0 (plain or JSON) as success"."""
    seen: list[HttpRequest] = []
    refs = [MessageRef("111", TW, "111"), MessageRef("111", TW2, "111"), MessageRef(batch_id="222")]
    result = drive(smsgo.cancel(refs), lambda r: "msgid=1\nstatuscode=0\nstatusstr=OK", seen)
    assert result.canceled == 2 and result.provider == "smsgo"
    assert [query(r) for r in seen] == [
        {"username": "Testerld", "password": "TesterPW", "msgid": "111"},
        {"username": "Testerld", "password": "TesterPW", "msgid": "222"},
    ]
    assert seen[0].url.endswith("/sms_gw/sendsms_cancel.asp")
    parse_cancel('{"result":{"statuscode":"0","statusstr":"OK"}}')


def test_cancel_failures(smsgo: SMSGo) -> None:
    with pytest.raises(AuthenticationError):
        drive(smsgo.cancel([MessageRef("111")]), lambda r: "statuscode=-2\nstatusstr=auth")
    with pytest.raises(Rejected) as err:
        parse_cancel("Cannot cancel: already sent")
    assert "already sent" in str(err.value)
    with pytest.raises(Rejected):
        parse_cancel("")
    answers = iter(["statuscode=0", "statuscode=-99\nstatusstr=already sent"])
    result = drive(smsgo.cancel([MessageRef("1"), MessageRef("2")]), lambda r: next(answers))
    assert result.canceled == 1 and "already sent" in result.raw
    with pytest.raises(InvalidRequest):
        drive(smsgo.cancel([MessageRef(recipient=TW)]), lambda r: "")


# -- estimate -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "to", "options", "encoding", "parts", "points"),
    [
        ("Smtest", [TW], {}, Encoding.GSM7, 1, 1),
        ("a" * 161, [TW], {}, Encoding.GSM7, 2, 2),  # LASCII: 153 per part
        ("a" * 330, [TW], {}, Encoding.GSM7, 3, 3),
        ("中" * 70, [TW], {}, Encoding.UCS2, 1, 1),
        ("中" * 134, [TW, TW2, "+886900000001"], {}, Encoding.UCS2, 2, 6),  # LBIG5: 67 per part
        ("中" * 135, [TW], {}, Encoding.UCS2, 3, 3),
        ("你好", [CN, HK], {}, Encoding.UCS2, 1, 2),  # no international multiplier documented
        # "costs extra: 1 more point per 10 messages"
        ("hi", numbers(25), {"reply_url": "https://e.tw/r"}, Encoding.GSM7, 1, 28),
        ("hi", numbers(10), {"reply_url": "https://e.tw/r"}, Encoding.GSM7, 1, 11),
        ("title", [TW], {"wap_url": "www.test.com"}, Encoding.GSM7, 1, 1),
        # "beyond 88 bytes the system converts it to a long SMS and charges accordingly"
        ("t" * 170, [TW], {"wap_url": "www.test.com"}, Encoding.GSM7, 2, 2),
        ("hi", [TW], {"flash": True}, Encoding.GSM7, 1, 1),
    ],
)
def test_estimate(
    smsgo: SMSGo,
    text: str,
    to: list[str],
    options: dict[str, Any],
    encoding: Encoding,
    parts: int,
    points: int,
) -> None:
    estimate = smsgo.estimate(to, text, **options)
    assert (estimate.encoding, estimate.parts, estimate.points) == (encoding, parts, Decimal(points))
    assert estimate.recipients == len(to) and estimate.characters == len(text)
    assert estimate.provider == "smsgo"


def test_estimate_refuses_what_cannot_be_sent(smsgo: SMSGo) -> None:
    with pytest.raises(InvalidMessage):
        smsgo.estimate([CN], "中" * 71)


# -- callbacks ----------------------------------------------------------------------------------------


def test_delivery_report_sample_and_exact_ack() -> None:
    """Phase two: ``msgid=…&statusstr=DELIVRD&statuscode=0&dstaddr=09xxxxxxxx``; the ack must be
    "HTTP 200, Content-Type: text/plain, body exactly magicid=tccrd_sms_gateway_rpack\\nmsgid=<MsgId>\\n"."""
    result = callback(fixture("smsgo", "report_callback.qs").strip())
    (report,) = result.reports
    assert result.provider == "smsgo" and result.replies == ()
    assert report.status is Status.DELIVERED and report.provider_status == "DELIVRD"
    assert report.message_id == report.batch_id == "100101121234567"
    assert report.recipient == "09xxxxxxxx"  # the document's placeholder, kept as given
    assert report.raw == {
        "msgid": "100101121234567",
        "statusstr": "DELIVRD",
        "statuscode": "0",
        "dstaddr": "09xxxxxxxx",
    }
    assert result.ack.status == 200 and result.ack.content_type == "text/plain"
    assert result.ack.body == fixture("smsgo", "report_ack.txt").encode()
    assert result.ack.body == b"magicid=tccrd_sms_gateway_rpack\nmsgid=100101121234567\n"
    assert webhook_ack("100101121234567") == result.ack


def test_delivery_report_as_the_scan_prints_it() -> None:
    result = callback(fixture("smsgo", "report_callback_ocr.qs").strip())
    assert result.reports[0].message_id == "100101121234567"
    assert result.ack.body == b"magicid=tccrd_sms_gateway_rpack\nmsgid=100101121234567\n"


def test_delivery_report_without_dstaddr_and_with_real_number() -> None:
    (report,) = callback("msgid=1504280910499665&statuscode=0&statusstr=EXPIRED").reports
    assert report.recipient is None and report.status is Status.EXPIRED
    (report,) = callback("msgid=1&statuscode=0&statusstr=DELIVRD&dstaddr=%2B8613681912700").reports
    assert report.recipient == CN
    (report,) = callback("msgid=1&statusstr=DELIVRD&statuscode=0&dstaddr=0988123456").reports
    assert report.recipient == TW


@pytest.mark.parametrize(("text", "status"), sorted(STATUS.items()))
def test_every_status_in_callbacks(text: str, status: Status) -> None:
    (report,) = callback(f"msgid=1&statuscode=0&statusstr={text.lower()}").reports
    assert report.status is status and report.provider_status == text.lower()


def test_unknown_callback_status_is_kept() -> None:
    (report,) = callback("msgid=1&statuscode=-3&statusstr=").reports
    assert report.status is Status.UNKNOWN and report.provider_status == "-3"


@pytest.mark.parametrize(
    "qs",
    [
        "",
        "statusstr=DELIVRD&statuscode=0",
        "msgid=&statusstr=DELIVRD",
        "msgid=abc&statusstr=DELIVRD",
        "msgid=1%0Amagicid=x&statusstr=DELIVRD",  # would forge the ack
        "msgid=1",
        "msgid=1&statusstr=%FF",
        "%FF=1",
    ],
)
def test_bad_delivery_reports(qs: str) -> None:
    with pytest.raises(InvalidWebhook):
        callback(qs)


def reply_qs(smbody: str, encoding: str = "UCS2", timestamp: str = "20240102030405") -> str:
    return (
        f"msgid=1504280910499665&srcaddr=0912345678&dstaddr=0988123456&smbody={smbody}"
        f"&encoding={encoding}&timestamp={quote(timestamp)}"
    )


def test_reply_callback_get() -> None:
    """§7 fields: ``msgid, srcaddr, dstaddr, smbody, encoding, timestamp``."""
    result = callback(reply_qs(quote("你好 ok")))
    (inbound,) = result.replies
    assert result.reports == ()
    assert inbound.provider == "smsgo" and inbound.sender == TW2 and inbound.recipient == TW
    assert inbound.text == "你好 ok" and inbound.reply_to == "1504280910499665"
    assert inbound.received_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=TAIPEI)
    assert inbound.raw["smbody"] == "你好 ok" and inbound.raw["encoding"] == "UCS2"
    assert result.ack.status == 200 and result.ack.body == b"OK" and result.ack.content_type == "text/plain"
    assert webhook_ack() == result.ack


def test_reply_callback_post_form() -> None:
    body = reply_qs(quote("a+b"), "ASCII").encode()
    (inbound,) = parse_webhook(
        method="POST", query=b"", body=body, content_type="application/x-www-form-urlencoded"
    ).replies
    assert inbound.text == "a+b" and inbound.sender == TW2
    (inbound,) = parse_webhook(method="POST", query=b"", body=body, content_type="").replies
    assert inbound.text == "a+b"


def test_reply_text_encodings() -> None:
    big5 = quote("你好".encode("cp950"))
    assert callback(reply_qs(big5, "BIG5")).replies[0].text == "你好"
    assert callback(reply_qs(big5, "BIG5")).replies[0].raw["smbody"] == big5
    assert callback(reply_qs(quote("你好"), "BIG5")).replies[0].text == "你好"  # UTF-8 first
    assert callback(reply_qs("4F60597D")).replies[0].text == "你好"  # UCS2 as hex of UTF-16BE
    assert callback(reply_qs("4f60597d")).replies[0].text == "你好"
    assert callback(reply_qs(quote("你好"))).replies[0].text == "你好"  # or UTF-8 text
    assert callback(reply_qs("4F60597D", "ASCII")).replies[0].text == "4F60597D"
    assert callback(reply_qs("")).replies[0].text == ""
    with pytest.raises(InvalidWebhook):
        callback(reply_qs(big5, "ASCII"))
    with pytest.raises(InvalidWebhook):
        callback(reply_qs("%FF%FF", "BIG5"))
    assert decode_smbody(b"D800", "UCS2") == "D800"  # a lone surrogate is not UTF-16: read as text


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("20240102030405", datetime(2024, 1, 2, 3, 4, 5, tzinfo=TAIPEI)),
        ("2024/01/02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=TAIPEI)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=TAIPEI)),
        ("yesterday", None),
        ("", None),
    ],
)
def test_reply_timestamps(timestamp: str, expected: datetime | None) -> None:
    received = callback(reply_qs("ok", "ASCII", timestamp)).replies[0].received_at
    assert received == expected
    if received is not None:
        assert received.utcoffset() == timedelta(hours=8)


def test_reply_international_sender() -> None:
    (inbound,) = callback("srcaddr=%2B8613681912700&smbody=hi&encoding=ASCII").replies
    assert inbound.sender == CN and inbound.reply_to is None and inbound.received_at is None


@pytest.mark.parametrize(
    ("method", "qs", "body", "content_type"),
    [
        ("GET", "srcaddr=&smbody=hi", b"", ""),
        ("GET", "srcaddr=0912345678", b"", ""),
        ("GET", "smbody=hi", b"", ""),
        ("PUT", "msgid=1&statusstr=DELIVRD", b"", ""),
        ("POST", "", b'{"msgid": 1}', "application/json"),
        ("GET", "msgid=1&statusstr=DELIVRD&" + "a=b&" * 1001, b"", ""),
        ("POST", "", b"x=" + b"a" * 70000, "application/x-www-form-urlencoded"),
    ],
)
def test_bad_callbacks(method: str, qs: str, body: bytes, content_type: str) -> None:
    with pytest.raises(InvalidWebhook):
        parse_webhook(method=method, query=qs.encode(), body=body, content_type=content_type)


# -- nothing but typed errors escapes -------------------------------------------------------------------

FIELD_NAMES = [
    "msgid",
    "statuscode",
    "statusstr",
    "dstaddr",
    "srcaddr",
    "smbody",
    "encoding",
    "timestamp",
    "x",
]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["GET", "POST", "get", "HEAD"]),
    st.binary(max_size=300),
    st.binary(max_size=300),
    st.sampled_from(["", "application/x-www-form-urlencoded", "text/plain; charset=big5", "multipart/form-data"]),
)
def test_random_callbacks_raise_only_invalid_webhook(method: str, qs: bytes, body: bytes, ctype: str) -> None:
    with contextlib.suppress(InvalidWebhook):
        parse_webhook(method=method, query=qs, body=body, content_type=ctype)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        st.one_of(st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1"))),
    )
)
def test_random_fields_raise_only_invalid_webhook(fields: dict[str, str]) -> None:
    qs = "&".join(f"{k}={quote(v, safe='')}" for k, v in fields.items())
    try:
        result = callback(qs)
    except InvalidWebhook:
        return
    assert result.reports or result.replies
    if result.reports:
        assert result.ack.body.startswith(b"magicid=tccrd_sms_gateway_rpack\nmsgid=")
        assert result.ack.body.count(b"\n") == 2


PARSERS = [parse_send, parse_balance, parse_cancel, parse_query]
reply_bodies = st.one_of(
    st.text(max_size=200),
    st.builds(
        lambda parts: "\r\n".join(parts),
        st.lists(st.from_regex(r"-?\d{0,3}\|[A-Z]{0,7}\|[0-9+]{0,12}(\|\d{0,16})?", fullmatch=True), max_size=4),
    ),
    st.builds(
        lambda k, v: f'{{"result{k}":{{"msgid":{v},"statuscode":{v},"point":{v}}},}}',
        st.sampled_from(["", "s"]),
        st.sampled_from(['"0"', "0", "-2", '"x"', "null", "[]", "{}", "1.5", "true"]),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PARSERS), reply_bodies)
def test_reply_parsers_raise_only_formosms_errors(parser: Any, body: str) -> None:
    with contextlib.suppress(FormosmsError):
        parser(body)
