"""EVERY8D HTTP API 2.1 codec and the codes shared with SOAP, against the document's own samples.

Fixtures: ``tests/fixtures/every8d`` (see its README for where each sample comes from).
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formosms.client import prepare_sms, settle
from formosms.errors import (
    AuthenticationError,
    ConfigurationError,
    ConnectError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRecipient,
    InvalidRequest,
    InvalidSchedule,
    InvalidWebhook,
    MalformedResponse,
    NotFound,
    PartialFailure,
    ProviderUnavailable,
    Rejected,
    Timeout,
    UnsupportedFeature,
)
from formosms.model import Attachment, Encoding, Feature, Status, WebhookAck
from formosms.providers.base import MessageRef, OutboundMMS, OutboundSMS, from_dsn, refs_from, registry
from formosms.providers.every8d import (
    ERRORS,
    STATUS,
    Every8d,
    error_for,
    parse_balance,
    parse_cancel,
    parse_send_reply,
    parse_status_text,
    parse_webhook,
    webhook_ack,
)
from formosms.providers.every8d_codes import estimate, mms_points, parse_time, sms_points
from formosms.timefmt import TAIPEI
from formosms.transport import Exchange, HttpRequest
from tests.helpers import drive, fixture, query

UUID = "220478cc-8506-49b2-93b7-2505f651c12e"  # 1.1 "格式範例"
SEND_REPLY = fixture("every8d", "send_reply.txt").strip()
SEND_REPLY_5 = fixture("every8d", "send_reply_2_1_5.txt").strip()
STATUS_REPLY = fixture("every8d", "status_reply.tsv")
STATUS_REPLY_MMS = fixture("every8d", "status_reply_mms.tsv")
TW = "+886912345678"
TW2 = "+886922333444"
US = "+12025550123"


@pytest.fixture
def e8() -> Every8d:
    return Every8d("uid1", "s3cret-pw")


def sms(*to: str, text: str = "hello", **options: Any) -> OutboundSMS:
    return OutboundSMS(tuple(to or (TW,)), text, options=dict(options))


def mms(*to: str, subject: str = "新品", text: str = "看圖", kind: str = "jpg", size: int = 100) -> OutboundMMS:
    return OutboundMMS(tuple(to or (TW,)), text, Attachment(b"\xff\xd8" + b"\x00" * (size - 2), kind), subject)


def first(exchange: Exchange[Any]) -> list[HttpRequest]:
    return next(exchange)


def doc_codes(provider: str) -> list[str]:
    return [line.split("\t")[0] for line in fixture(provider, "status_codes.tsv").splitlines()[1:] if line]


def rows(n: int, status: str = "100", start: int = 0) -> str:
    return "".join(f"N{i}\t+8869{i + start:08d}\t2010/03/03 14:25:55\t1.0\t{status}\n" for i in range(n))


# -- the class -----------------------------------------------------------------------------------


def test_declared_capabilities() -> None:
    assert Every8d.name == "every8d"
    assert Every8d.default_base_url == "https://oms.every8d.com"  # 0、前言 HTTPS host
    assert Every8d.max_recipients == 1000  # not documented: our choice (pages of 1000, 2.2)
    assert Every8d.send_options == {"subject", "callback_url", "record_no"}
    assert Every8d.rate_limit is None and Every8d.dsn_options == frozenset()
    assert Every8d.features == {
        Feature.SEND,
        Feature.SCHEDULE,
        Feature.VALIDITY,
        Feature.LONG_SMS,
        Feature.MMS,
        Feature.STATUS_QUERY,
        Feature.DELIVERY_CALLBACK,
        Feature.BALANCE,
        Feature.CANCEL,
        Feature.INTERNATIONAL,
    }
    assert registry()["every8d"] is Every8d


def test_dsn_host_and_repr() -> None:
    provider = from_dsn("every8d://uid1:s3cret-pw@api.e8d.tw?timeout=3")
    assert isinstance(provider, Every8d)
    assert provider.base_url == "https://api.e8d.tw" and provider.timeout == 3.0
    assert "s3cret-pw" not in repr(provider)
    with pytest.raises(ConfigurationError):
        Every8d("uid1", "")


def test_personalized_and_replies_poll_are_unsupported(e8: Every8d) -> None:
    with pytest.raises(UnsupportedFeature):
        next(e8.send_personalized([]))
    with pytest.raises(UnsupportedFeature):
        next(e8.replies())


# -- send: the wire ------------------------------------------------------------------------------


def test_send_request_matches_document(e8: Every8d) -> None:
    """1.1 "sendSMS.ashx?UID=xxxx&PWD=xxxx&SB=&MSG=&..."; POST only in the 2.1.5 edition."""
    (request,) = first(e8.send(sms(TW, TW2, text="測試", subject="note")))
    assert request.method == "POST"
    assert request.url == "https://oms.every8d.com/API21/HTTP/sendSMS.ashx"
    assert request.full_url() == request.url  # nothing, the password least, in the URL
    assert request.all_headers()["Content-Type"] == "application/x-www-form-urlencoded"
    doc = fixture("every8d", "send_request.url").split("?", 1)[1]
    assert doc.startswith("UID=xxxx&PWD=xxxx&SB=&MSG=")
    fields = query(request)
    assert list(fields) == ["UID", "PWD", "SB", "MSG", "DEST", "ST"]
    assert fields == {
        "UID": "uid1",
        "PWD": "s3cret-pw",
        "SB": "note",
        "MSG": "測試",
        "DEST": f"{TW},{TW2}",  # "多筆接收人時，請以半形逗點隔開(,)"
        "ST": "",  # "立即發送：請傳入空字串"
    }
    assert "s3cret-pw" in request.secrets and "s3cret-pw" not in repr(request)


def test_send_encodes_each_field_once(e8: Every8d) -> None:
    """0、前言 "傳遞前請使用 URL encode": the form encoding, exactly once."""
    text = "100% + & # ]]> < a=b\n第二行 😀"
    (request,) = first(e8.send(sms(TW, US, text=text)))
    raw = request.body() or b""
    assert b"DEST=%2B886912345678%2C%2B12025550123" in raw
    assert b"MSG=100%25%20%2B%20%26%20%23%20%5D%5D%3E%20%3C%20a%3Db%0A%E7%AC%AC" in raw
    assert quote("😀").encode() in raw
    assert query(request)["MSG"] == text


def test_send_schedule_validity_record_and_callback(e8: Every8d) -> None:
    """ST "yyyyMMddHHmmss … 預約 2009/01/31 15:30:00 發送，則傳入 20090131153000"; RETRYTIME minutes."""
    message = OutboundSMS(
        (TW,),
        "hi",
        schedule_at=datetime(2009, 1, 31, 7, 30, tzinfo=UTC),  # 15:30 in Taipei
        validity=timedelta(minutes=90, seconds=1),
        options={"record_no": 42, "callback_url": "https://a.tw/e8d?x=1&y=2"},
    )
    (request,) = first(e8.send(message))
    fields = query(request)
    assert fields["ST"] == "20090131153000"
    assert fields["RETRYTIME"] == "91"  # rounded up to whole minutes
    assert fields["MR"] == "42"
    assert fields["StatusReportURL"] == "https://a.tw/e8d?x=1&y=2"  # 2.1 "填入 StatusReportURL 值"
    assert list(fields)[-3:] == ["RETRYTIME", "MR", "StatusReportURL"]


def test_short_validity_is_one_minute(e8: Every8d) -> None:
    message = OutboundSMS((TW,), "hi", validity=timedelta(seconds=5))
    (request,) = first(e8.send(message))
    assert query(request)["RETRYTIME"] == "1"


def test_send_parses_the_document_reply(e8: Every8d) -> None:
    """1.1 "1230.00,4,4.0,220478cc-…" (CREDIT,SENDED,COST,BATCH_ID: UNSEND missing)."""
    result = drive(e8.send(sms(TW, TW2)), lambda r: SEND_REPLY)
    assert result.batch_id == UUID and result.batch_ids == (UUID,)
    assert result.balance == Decimal("1230.00") and result.cost == Decimal("4.0")
    assert [m.recipient for m in result.messages] == [TW, TW2]
    assert all(m.accepted and m.message_id == UUID for m in result.messages)
    assert result.raw == SEND_REPLY
    assert refs_from(result) == [MessageRef(UUID, TW, UUID), MessageRef(UUID, TW2, UUID)]


@pytest.mark.parametrize(
    "body",
    [
        SEND_REPLY_5,  # the 2.1.5 edition's five fields
        f"1230.00, 4, 4.0, 0, {UUID}\r\n",
        f"1230.00,4,4.0,0,{UUID},",  # a trailing comma
        f"\ufeff1230.00,4,4.0,{UUID}",
    ],
)
def test_send_reply_variants(body: str) -> None:
    outcome = parse_send_reply(body, [TW], "every8d")
    assert outcome.batch_id == UUID and outcome.balance == Decimal("1230.00")
    assert outcome.messages[0].accepted


def test_unsend_with_nothing_sent_fails_every_recipient(e8: Every8d) -> None:
    """1.1 UNSEND "當該值大於 0 而剩餘點數等於 0 時表示有部份的簡訊因無額度而無法被發送"."""
    outcome = parse_send_reply(f"0.00,0,0,2,{UUID}", [TW, TW2], "every8d")
    assert [type(m.error) for m in outcome.messages] == [InsufficientCredit, InsufficientCredit]
    assert outcome.messages[0].provider_status == "301"
    with pytest.raises(InsufficientCredit):
        settle(drive(e8.send(sms(TW, TW2)), lambda r: f"0.00,0,0,2,{UUID}"))


def test_unsend_partial_keeps_every_recipient_under_the_batch() -> None:
    """Which recipients were left out is not said: all are in the batch; status 301 tells later."""
    outcome = parse_send_reply(f"0.00,3,3.0,1,{UUID}", [TW, TW2, "+886933123123", "+886933123124"], "every8d")
    assert all(m.accepted and m.message_id == UUID for m in outcome.messages)
    assert outcome.raw.endswith(f",1,{UUID}") and outcome.balance == Decimal(0)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "OK",
        "1,2",
        f"1230.00,x,4.0,{UUID}",
        f"NaN,4,4.0,{UUID}",
        f"1e999999,4,4.0,{UUID}",
        "1230.00,4,4.0,bad id!",
        f"1230.00,4,4.0,0,1,{UUID}",
        "-",
        "-abc",
        "<html>error</html>",
    ],
)
def test_malformed_send_replies(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_send_reply(body, [TW], "every8d")


@pytest.mark.parametrize("line", fixture("every8d", "error_replies.txt").splitlines())
def test_documented_error_replies(line: str) -> None:
    """provider-notes: "-<code>,<message> (sometimes a space after the comma)"."""
    code, message = line.split(",", 1)
    with pytest.raises(FormosmsError) as caught:
        parse_send_reply(line, [TW], "every8d")
    error = caught.value
    assert isinstance(error, ERRORS[code][0]) and error.code == code and error.provider == "every8d"
    assert message.strip() in str(error)


def test_bad_number_error_names_the_number() -> None:
    with pytest.raises(InvalidRecipient) as caught:
        parse_send_reply("-306,手機格式不符:+1-202-895-1800", [TW], "every8d")
    assert caught.value.recipient == "+1-202-895-1800" and caught.value.field == "to"


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_error_code(code: str) -> None:
    cls, meaning = ERRORS[code]
    error = error_for(code, "訊息", provider="every8d")
    assert type(error) is cls and error.code == code and error.provider == "every8d"
    assert meaning in str(error) and "訊息" in str(error)
    with pytest.raises(cls):
        parse_send_reply(f"{code}, 訊息", [TW], "every8d")
    with pytest.raises(cls):
        parse_balance(f"{code}.00", "every8d")


def test_error_classes_by_meaning() -> None:
    assert ERRORS["-97"][0] is ProviderUnavailable and ERRORS["-99"][0] is ProviderUnavailable
    assert {ERRORS[c][0] for c in ("-2", "-100", "-101", "-300", "-301", "-999")} == {AuthenticationError}
    assert {ERRORS[c][0] for c in ("-3", "-41", "-306")} == {InvalidRecipient}
    assert {ERRORS[c][0] for c in ("-5", "-24", "-303", "-304", "-305", "-314")} == {InvalidMessage}
    assert {ERRORS[c][0] for c in ("-4", "-6")} == {InvalidSchedule}
    assert error_for("-303").field == "subject"  # type: ignore[attr-defined]
    assert error_for("-314").field == "attachment"  # type: ignore[attr-defined]


def test_unknown_error_code_is_rejected_with_code() -> None:
    with pytest.raises(Rejected) as caught:
        parse_send_reply("-12345,新的錯誤", [TW], "every8d")
    assert caught.value.code == "-12345" and "新的錯誤" in str(caught.value)
    assert type(caught.value) is Rejected


# -- send: splitting and partial failure ---------------------------------------------------------


def test_send_splits_by_1000_and_keeps_every_outcome(e8: Every8d) -> None:
    numbers = [f"+8869{i:08d}" for i in range(2500)]
    requests = first(e8.send(OutboundSMS(tuple(numbers), "hi")))
    assert [len(query(r)["DEST"].split(",")) for r in requests] == [1000, 1000, 500]
    seen: list[HttpRequest] = []
    replies: Iterator[str | FormosmsError] = iter(
        [f"100.00,1000,1000,0,{'a' * 8}-1", ConnectError("down", provider="every8d"), "-97, 系統忙碌中"]
    )
    result = drive(e8.send(OutboundSMS(tuple(numbers), "hi")), lambda r: next(replies), seen)
    assert len(seen) == 3 and len(result.messages) == 2500
    assert result.batch_ids == ("aaaaaaaa-1",) and result.batch_id == "aaaaaaaa-1"
    assert all(m.accepted for m in result.messages[:1000])
    assert all(isinstance(m.error, ConnectError) for m in result.messages[1000:2000])
    assert all(isinstance(m.error, ProviderUnavailable) for m in result.messages[2000:])
    with pytest.raises(PartialFailure) as caught:
        settle(result)
    assert len(caught.value.result.accepted) == 1000


def test_send_all_failed_raises_that_error(e8: Every8d) -> None:
    result = drive(e8.send(sms(TW)), lambda r: "-100, 帳號或密碼錯誤")
    with pytest.raises(AuthenticationError):
        settle(result)


def test_http_error_status_is_a_failed_chunk(e8: Every8d) -> None:
    result = drive(e8.send(sms(TW)), lambda r: Timeout("no answer", provider="every8d"))
    assert isinstance(result.messages[0].error, Timeout)


# -- validation ----------------------------------------------------------------------------------


def test_prepare_refuses_unknown_and_bad_options(e8: Every8d) -> None:
    with pytest.raises(InvalidRequest) as caught:
        prepare_sms(e8, TW, "hi", None, None, {"flash": True})
    assert caught.value.field == "flash"
    with pytest.raises(InvalidRequest) as caught:
        prepare_sms(e8, TW, "hi", None, None, {"callback_url": "ftp://x"})
    assert caught.value.field == "callback_url"
    with pytest.raises(InvalidRequest) as caught:
        prepare_sms(e8, TW, "hi", None, None, {"record_no": "1,2"})
    assert caught.value.field == "record_no"
    with pytest.raises(InvalidRequest) as caught:
        prepare_sms(e8, TW, "hi", None, None, {"subject": 5})
    assert caught.value.field == "subject"
    message = prepare_sms(e8, "0912-345-678", "hi", None, 600, {"subject": "s", "record_no": "A1"})
    assert message.recipients == (TW,) and message.validity == timedelta(minutes=10)


def test_validate_refuses_unencodable_text(e8: Every8d) -> None:
    with pytest.raises(InvalidMessage) as caught:
        e8.validate(sms(TW, text="bad \ud800 surrogate"))
    assert caught.value.field == "text"
    e8.validate(sms(TW, text="long " * 200 + "😀"))  # long text and emoji are not refused by the document


# -- MMS -----------------------------------------------------------------------------------------


def test_mms_request(e8: Every8d) -> None:
    """1.2 sendMMS.ashx: "ATTACHMENT 附檔圖片，binary base64 encoded", "TYPE … jpg/jpeg/png/gif"."""
    message = mms(TW, kind=".GIF", size=300)
    (request,) = first(e8.send_mms(message))
    assert request.url == "https://oms.every8d.com/API21/HTTP/MMS/sendMMS.ashx" and request.method == "POST"
    fields = query(request)
    assert list(fields) == ["UID", "PWD", "SB", "MSG", "DEST", "ST", "ATTACHMENT", "TYPE"]
    assert base64.b64decode(fields["ATTACHMENT"], validate=True) == message.attachment.data
    assert fields["TYPE"] == "gif" and fields["SB"] == "新品" and fields["DEST"] == TW
    result = drive(e8.send_mms(message), lambda r: SEND_REPLY)
    assert result.batch_id == UUID


def test_mms_validity_goes_in_retrytime(e8: Every8d) -> None:
    message = OutboundMMS((TW,), "t", Attachment(b"x", "png"), "s", validity=timedelta(hours=1))
    (request,) = first(e8.send_mms(message))
    assert query(request)["RETRYTIME"] == "60"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (mms(US), "to"),  # "MMS 簡訊不支援國際門號"
        (mms(subject=""), "subject"),  # -303 "MMS subject required"
        (mms(subject="中" * 16), "subject"),  # "主旨中英文限制 15 字"
        (mms(subject="a" * 96), "subject"),  # "純英數限制 95 字"
        (mms(kind="bmp"), "attachment"),
        (mms(size=300 * 1024), "attachment"),  # image + text over 300 KB
        (mms(text="字" * 4001), "text"),  # "內容最大可發至 4000 字"
    ],
)
def test_mms_refused_locally(e8: Every8d, message: OutboundMMS, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        next(e8.send_mms(message))
    assert caught.value.field == field


def test_mms_limits_accept_the_maximum(e8: Every8d) -> None:
    for message in (mms(subject="中" * 15), mms(subject="a" * 95), mms(text="字" * 4000)):
        assert len(first(e8.send_mms(message))) == 1


def test_mms_points() -> None:
    """1.2 "1~4000(字) 扣 4 點/則"; 2.1.5: 3 points up to 50 KB, 5 up to 300 KB."""
    assert mms_points(10_000) == 4
    assert mms_points(50 * 1024, edition="2.1.5") == 3
    assert mms_points(50 * 1024 + 1, edition="2.1.5") == 5


# -- status --------------------------------------------------------------------------------------


def test_status_request(e8: Every8d) -> None:
    """2.2 "getDeliveryStatus.ashx?UID=xxx&PWD=xxxx&BID=xxxx&PNO=xxxx"; PNO "可傳入空字串"."""
    (request,) = first(e8.status([MessageRef(batch_id=UUID)]))
    assert request.url == "https://oms.every8d.com/API21/HTTP/getDeliveryStatus.ashx"
    assert query(request) == {"UID": "uid1", "PWD": "s3cret-pw", "BID": UUID, "PNO": ""}
    (request,) = first(e8.status([MessageRef(batch_id=UUID)], mms=True))
    assert request.url == "https://oms.every8d.com/API21/HTTP/MMS/getDeliveryStatus.ashx"


def test_status_parses_the_document_sample() -> None:
    """2.2 範例: "1130" then Roger/Peggy/Larry rows (100, 100, 103) and a "..." line."""
    total, reports = parse_status_text(STATUS_REPLY, UUID)
    assert total == 1130 and len(reports) == 3  # the "..." placeholder is not a row
    roger, peggy, larry = reports
    assert roger.recipient == "+886933123123" and roger.status is Status.DELIVERED
    assert roger.provider_status == "100" and roger.cost == Decimal("1.0")
    assert roger.done_at == datetime(2010, 3, 3, 14, 25, 55, tzinfo=TAIPEI)
    assert roger.batch_id == UUID and roger.message_id == UUID
    assert roger.raw["NAME"] == "Roger" and "RECEIVED_TIME" not in roger.raw
    assert peggy.status is Status.DELIVERED and larry.status is Status.UNDELIVERABLE


def test_mms_status_sample() -> None:
    """2.3 範例: "700 已發送 300 預約簡訊 303 取消簡訊"."""
    _, reports = parse_status_text(STATUS_REPLY_MMS, UUID)
    assert [r.status for r in reports] == [Status.SUBMITTED, Status.SUBMITTED, Status.CANCELED]
    assert reports[0].cost == Decimal("4.0")


def test_status_accepts_six_columns_and_crlf() -> None:
    """provider-notes: the 2.1.5 edition adds RECEIVED_TIME; 5-column parsers drop every row."""
    body = "2\r\nRoger\t+886933123123 \t2010/3/3 14:25:55\t1.0\t100\t2010/3/3 14:26:01\r\n\t0933123122\t\t\t0\t\r\n"
    total, (roger, anon) = parse_status_text(body, "b1")
    assert total == 2
    assert roger.done_at == datetime(2010, 3, 3, 14, 26, 1, tzinfo=TAIPEI)  # RECEIVED_TIME wins
    assert roger.raw["RECEIVED_TIME"] == "2010/3/3 14:26:01"
    assert anon.recipient == "+886933123122" and anon.status is Status.SUBMITTED
    assert anon.done_at is None and anon.cost is None


@pytest.mark.parametrize(
    "body",
    ["x\n", "1\nRoger\t+886933123123\t2010/03/03\t100\n", "1\nR\t+886933123123\tt\tabc\t100\n", "-\n"],
)
def test_malformed_status(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_status_text(body, "b1")


def test_status_error_and_empty() -> None:
    with pytest.raises(AuthenticationError):
        parse_status_text("-100, 帳號或密碼錯誤", "b1")
    assert parse_status_text("", "b1") == (0, [])
    assert parse_status_text("0\n", "b1") == (0, [])


@pytest.mark.parametrize("code", sorted(STATUS))
def test_every_status_code_round_trips(code: str) -> None:
    (report,) = parse_status_text(f"1\nA\t{TW}\t2010/03/03 14:25:55\t1.0\t{code}\n", "b1")[1]
    assert report.status is STATUS[code] and report.provider_status == code


def test_status_table_covers_both_documents() -> None:
    documented = set(doc_codes("every8d")) | set(doc_codes("every8d-soap"))
    assert documented == set(STATUS)
    expected = {
        "0": Status.SUBMITTED,
        "100": Status.DELIVERED,
        "107": Status.EXPIRED,  # "逾時收訊"
        "300": Status.SCHEDULED,
        "301": Status.FAILED,
        "303": Status.CANCELED,
        "500": Status.REJECTED,
        "700": Status.SUBMITTED,
        "888": Status.REJECTED,  # test mode: never reached a carrier
        "999": Status.UNKNOWN,  # a reply, not a delivery state
        "-2": Status.FAILED,
    }
    for code, status in expected.items():
        assert STATUS[code] is status
    assert {STATUS[str(c)] for c in range(101, 107)} == {Status.UNDELIVERABLE}
    assert {STATUS[c] for c in ("-1", "-3", "-4", "-5", "-6")} == {Status.REJECTED}


def test_unknown_status_is_unknown() -> None:
    (report,) = parse_status_text(f"1\nA\t{TW}\t\t\t42\n", "b1")[1]
    assert report.status is Status.UNKNOWN and report.provider_status == "42"


def test_status_pages_until_count(e8: Every8d) -> None:
    """2.2 PNO: "欲查詢第 1001~2000 筆資料時，PageNo 傳入 "2""."""
    pages = {
        "": "2500\n" + rows(1000),
        "2": "2500\n" + rows(1000, start=1000),
        "3": "2500\n" + rows(500, "0"),
    }
    seen: list[HttpRequest] = []
    reports = drive(e8.status([MessageRef(batch_id="b1")]), lambda r: pages[query(r)["PNO"]], seen)
    assert [query(r)["PNO"] for r in seen] == ["", "2", "3"]
    assert len(reports) == 2500 and reports[-1].status is Status.SUBMITTED


def test_status_stops_on_an_empty_page(e8: Every8d) -> None:
    seen: list[HttpRequest] = []
    reports = drive(
        e8.status([MessageRef(batch_id="b1")]),
        lambda r: "5000\n" if query(r)["PNO"] else "5000\n" + rows(3),
        seen,
    )
    assert len(seen) == 2 and len(reports) == 3


def test_status_of_several_batches_runs_together(e8: Every8d) -> None:
    result = drive(
        e8.send(OutboundSMS(tuple(f"+8869{i:08d}" for i in range(1001)), "x")),
        lambda r: f"1,1,1,0,b{len(query(r)['DEST'])}",
    )
    refs = refs_from(result)
    requests = first(e8.status(refs))
    assert sorted(query(r)["BID"] for r in requests) == sorted(result.batch_ids)
    reports = drive(e8.status(refs), lambda r: "1\n" + rows(1))
    assert len(reports) == 2


def test_status_needs_batch_ids(e8: Every8d) -> None:
    with pytest.raises(InvalidRequest):
        next(e8.status([MessageRef(recipient=TW)]))
    assert drive(e8.status([]), lambda r: "") == []


def test_status_transport_error_is_raised(e8: Every8d) -> None:
    with pytest.raises(ConnectError):
        drive(e8.status([MessageRef(batch_id="b1")]), lambda r: ConnectError("x", provider="every8d"))


# -- balance, cancel -----------------------------------------------------------------------------


def test_balance(e8: Every8d) -> None:
    """3.1 "getCredit.ashx?UID=xxxx&PWD=xxxx" -> "2310.00"."""
    seen: list[HttpRequest] = []
    assert drive(e8.balance(), lambda r: fixture("every8d", "credit_reply.txt"), seen) == Decimal("2310.00")
    assert seen[0].url == "https://oms.every8d.com/API21/HTTP/getCredit.ashx"
    assert query(seen[0]) == {"UID": "uid1", "PWD": "s3cret-pw"}
    with pytest.raises(AuthenticationError):
        parse_balance("-101, 密碼錯誤。", "every8d")
    for bad in ("", "abc", "NaN", "Infinity"):
        with pytest.raises(MalformedResponse):
            parse_balance(bad, "every8d")


def test_cancel(e8: Every8d) -> None:
    """3.2 "a,b  a:刪除的筆數, b:回補的點數 / 空值 查無資料"."""
    seen: list[HttpRequest] = []
    result = drive(e8.cancel([MessageRef(batch_id=UUID)]), lambda r: "3,6.0", seen)
    assert (result.canceled, result.refunded, result.raw) == (3, Decimal("6.0"), "3,6.0")
    assert seen[0].url == "https://oms.every8d.com/API21/HTTP/eraseBooking.ashx"
    assert query(seen[0]) == {"UID": "uid1", "PWD": "s3cret-pw", "BID": UUID}
    (request,) = first(e8.cancel([MessageRef(batch_id=UUID)], mms=True))
    assert request.url == "https://oms.every8d.com/API21/HTTP/MMS/eraseBooking.ashx"
    with pytest.raises(NotFound):
        drive(e8.cancel([MessageRef(batch_id=UUID)]), lambda r: "")


def test_cancel_several_batches(e8: Every8d) -> None:
    refs = [MessageRef(batch_id="b1"), MessageRef(batch_id="b2"), MessageRef(message_id="b1")]
    result = drive(e8.cancel(refs), lambda r: "2,2" if query(r)["BID"] == "b1" else "")
    assert (result.canceled, result.refunded) == (2, Decimal(2))
    with pytest.raises(AuthenticationError):
        drive(e8.cancel(refs), lambda r: "-100, 帳號或密碼錯誤" if query(r)["BID"] == "b2" else "1,1")
    with pytest.raises(InvalidRequest):
        next(e8.cancel([]))


def test_cancel_replies() -> None:
    assert parse_cancel(" 0 , 0 \n", "b", "every8d").canceled == 0
    for bad in ("1,2,3", "x,1", "1"):
        with pytest.raises(MalformedResponse):
            parse_cancel(bad, "b", "every8d")


# -- estimate ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "points"),
    [
        (1, 1),
        (70, 1),
        (71, 2),
        (134, 2),
        (135, 3),
        (201, 3),
        (202, 4),
        (268, 4),
        (269, 5),
        (333, 5),
        (334, 6),
        (400, 6),
        (401, 7),
    ],  # "超過 333 字仍可發送，系統將自動拆則": 67 per part beyond
)
def test_taiwan_pricing_table(length: int, points: int) -> None:
    """1.1 計價: 1~70 扣 1 點, 71~134 2, 135~201 3, 202~268 4, 269~333 5."""
    assert sms_points("中" * length) == points
    assert sms_points("a" * length) == points  # the table counts characters, whatever the alphabet


def test_estimate_sums_recipients_with_international_triple(e8: Every8d) -> None:
    """ "國際簡訊(非+886 開頭)則需以三倍點數計價之"."""
    result = e8.estimate([TW, TW2, US], "中" * 71)
    assert (result.parts, result.points, result.recipients) == (2, Decimal(2 + 2 + 6), 3)
    assert result.encoding is Encoding.UCS2 and result.characters == 71 and result.provider == "every8d"
    assert e8.estimate([TW], "hello").encoding is Encoding.GSM7
    assert estimate("every8d", [TW], "😀" * 35).points == 1  # 70 UTF-16 units
    assert estimate("every8d", [TW], "😀" * 36).points == 2


# -- times ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2010/03/03 14:25:55", datetime(2010, 3, 3, 14, 25, 55, tzinfo=TAIPEI)),
        ("2010/3/20 03:27:50", datetime(2010, 3, 20, 3, 27, 50, tzinfo=TAIPEI)),
        ("2010/03/23 12:05:09 ", datetime(2010, 3, 23, 12, 5, 9, tzinfo=TAIPEI)),
        ("20090210120000", datetime(2009, 2, 10, 12, 0, 0, tzinfo=TAIPEI)),
        ("2010/3/20 下午 03:27:50", datetime(2010, 3, 20, 15, 27, 50, tzinfo=TAIPEI)),
        ("2010/3/20 上午 12:27:50", datetime(2010, 3, 20, 0, 27, 50, tzinfo=TAIPEI)),
        ("", None),
        ("xxx", None),
    ],
)
def test_times(text: str, expected: datetime | None) -> None:
    assert parse_time(text) == expected


# -- callbacks -----------------------------------------------------------------------------------

ACK = WebhookAck(200, b"", "text/plain")


def hook(query_string: str, method: str = "GET", body: bytes = b"", content_type: str = "") -> Any:
    return parse_webhook(method=method, query=query_string.encode("latin-1"), body=body, content_type=content_type)


def test_callback_document_sample() -> None:
    """2.1 "report.aspx?BatchID=xxxx&RM=xxxx&RT=xxx&STATUS=xxx&SM=xxxx&MR=xxxx" (placeholders)."""
    result = hook(fixture("every8d", "callback_query.txt").strip())
    (report,) = result.reports
    assert report.provider_status == "xxx" and report.status is Status.UNKNOWN
    assert report.batch_id == "xxxx" and report.record_no == "xxxx" and report.done_at is None
    assert result.ack == ACK == webhook_ack() and result.replies == ()


def test_callback_delivery_report() -> None:
    """RM "Encode 後再傳送(+886961295288)", RT "20090210120000", MR echoed."""
    qs = (
        f"BatchID={UUID}&RM=%2B886961295288&RT=20090210120000&STATUS=100&SM=%E6%B8%AC%E8%A9%A6"
        "&MR=7&CHARGE=1.0&CustID=c9"
    )
    result = hook(qs)
    (report,) = result.reports
    assert report.provider == "every8d"
    assert report.status is Status.DELIVERED and report.provider_status == "100"
    assert report.recipient == "+886961295288"
    assert report.batch_id == UUID and report.message_id == UUID and report.record_no == "7"
    assert report.done_at == datetime(2009, 2, 10, 12, 0, tzinfo=TAIPEI)
    assert report.cost == Decimal("1.0")
    assert report.raw == {
        "BatchID": UUID,
        "RM": "+886961295288",
        "RT": "20090210120000",
        "STATUS": "100",
        "SM": "測試",
        "MR": "7",
        "CHARGE": "1.0",
        "CustID": "c9",
    }
    assert result.ack.status == 200 and result.ack.body == b""


def test_callback_names_are_case_insensitive_and_plus_survives() -> None:
    """provider-notes: "Parameter names vary in case (BatchID / BATCHID)"."""
    (report,) = hook("BATCHID=b1&rm=+886961295288&Status=101&RT=20090210120000").reports
    assert report.batch_id == "b1" and report.recipient == "+886961295288"
    assert report.status is Status.UNDELIVERABLE and report.record_no is None


def test_callback_reply() -> None:
    """2.1 "STATUS=999 時，即為回覆簡訊。回覆簡訊內容將置於 SM 參數"."""
    result = hook(f"BatchID={UUID}&RM=%2B886961295288&RT=20090210120000&STATUS=999&SM=%20%E5%A5%BD+ok%20&MR=7")
    assert result.reports == ()
    (reply_) = result.replies[0]
    assert reply_.sender == "+886961295288" and reply_.text == " 好 ok "
    assert reply_.received_at == datetime(2009, 2, 10, 12, 0, tzinfo=TAIPEI)
    assert reply_.reply_to == UUID and reply_.raw["MR"] == "7" and reply_.provider == "every8d"
    (only_mr,) = hook("RM=0961295288&STATUS=999&SM=x&MR=m1").replies
    assert only_mr.reply_to == "m1" and only_mr.sender == "+886961295288"


def test_callback_big5_and_post() -> None:
    big5 = quote("回覆".encode("cp950"))
    (reply_,) = hook(f"RM=0961295288&STATUS=999&SM={big5}").replies
    assert reply_.text == "回覆"
    result = hook(
        "",
        method="POST",
        body=b"RM=0961295288&STATUS=303&BatchID=b",
        content_type="application/x-www-form-urlencoded",
    )
    assert result.reports[0].status is Status.CANCELED


@pytest.mark.parametrize(
    ("query_string", "method", "reason"),
    [
        ("", "GET", "STATUS"),
        ("RM=0961295288", "GET", "STATUS"),
        ("STATUS=100", "GET", "RM"),
        ("STATUS=100&RM=0961295288", "PUT", "PUT"),
        ("%FF=1&STATUS=100&RM=1", "GET", "ASCII"),
    ],
)
def test_bad_callbacks(query_string: str, method: str, reason: str) -> None:
    with pytest.raises(InvalidWebhook) as caught:
        hook(query_string, method)
    assert reason in str(caught.value)


# -- nothing but FormosmsError escapes -----------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(q=st.binary(max_size=200), b=st.binary(max_size=200), method=st.sampled_from(["GET", "POST", "put"]))
def test_webhook_fuzz_bytes(q: bytes, b: bytes, method: str) -> None:
    with contextlib.suppress(InvalidWebhook):
        parse_webhook(method=method, query=q, body=b, content_type="application/x-www-form-urlencoded")


callback_fields = st.dictionaries(
    st.sampled_from(["BatchID", "BATCHID", "RM", "RT", "STATUS", "SM", "MR", "CHARGE", "USERID"]),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None)
@given(fields=callback_fields)
def test_webhook_fuzz_fields(fields: dict[str, str]) -> None:
    qs = "&".join(f"{k}={quote(v)}" for k, v in fields.items())
    try:
        result = parse_webhook(method="GET", query=qs.encode(), body=b"", content_type="")
    except InvalidWebhook:
        return
    assert len(result.reports) + len(result.replies) == 1


reply_text = st.one_of(
    st.text(max_size=120),
    st.lists(st.text(alphabet="0123456789.-, \t\nabc", max_size=12), max_size=8).map(",".join),
    st.lists(st.text(alphabet="0123456789/: \t\n+-.", max_size=20), max_size=12).map("\t".join),
)


@settings(max_examples=300, deadline=None)
@given(text=reply_text)
def test_reply_parsers_raise_only_formosms_errors(text: str) -> None:
    for parse in (
        lambda: parse_send_reply(text, [TW], "every8d"),
        lambda: parse_status_text(text, "b"),
        lambda: parse_balance(text, "every8d"),
        lambda: parse_cancel(text, "b", "every8d"),
    ):
        with contextlib.suppress(FormosmsError):
            parse()


def test_real_driver_sends_the_form_once_encoded(e8: Every8d) -> None:
    """Through httpx (MockTransport): POST form body, text intact after one decode."""
    from urllib.parse import parse_qs

    import httpx

    from formosms.transport import SyncDriver

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=SEND_REPLY, headers={"content-type": "text/plain; charset=utf-8"})

    driver = SyncDriver("every8d", 5, client=httpx.Client(transport=httpx.MockTransport(handler)))
    message = prepare_sms(e8, "0912-345-678", "a+b&c=d 100% 測試", None, None, {})
    result = settle(driver.run(e8.send(message)))
    assert result.batch_id == UUID
    (request,) = seen
    assert request.method == "POST" and str(request.url) == "https://oms.every8d.com/API21/HTTP/sendSMS.ashx"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    fields = parse_qs(request.content.decode("ascii"), keep_blank_values=True)
    assert fields["MSG"] == ["a+b&c=d 100% 測試"] and fields["DEST"] == [TW]
