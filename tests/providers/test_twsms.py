"""TwSMS JSON API 4.0 codec, checked against the document's own samples (tests/fixtures/twsms)."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formosms.client import prepare_sms
from formosms.errors import (
    AccountError,
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
    ProviderUnavailable,
    Rejected,
    Timeout,
    UnsupportedFeature,
)
from formosms.model import Encoding, Feature, Status, WebhookAck
from formosms.providers.base import MessageRef, OutboundSMS, from_dsn
from formosms.providers.twsms import (
    ERRORS,
    STATUS,
    TwSMS,
    error_for,
    parse_balance,
    parse_cancel,
    parse_replies,
    parse_send,
    parse_status,
    parse_webhook,
    text_info,
    webhook_ack,
)
from formosms.timefmt import TAIPEI
from formosms.transport import Exchange, HttpRequest, Outcome
from tests.helpers import drive, fixture, query, reply

OK_SEND = fixture("twsms", "send_reply.json").strip()
OK_QUERY = fixture("twsms", "query_reply.json").strip()
MO_REPLY = fixture("twsms", "mo_reply.json").strip()
CALLBACK = fixture("twsms", "callback_query.txt").strip()
CHINESE = "台灣簡訊雙向回傳測試"  # the moQuery sample's \u escapes, decoded


def doc_table(name: str) -> list[tuple[str, str]]:
    """Rows (code, meaning) of a table copied from the document, header skipped."""
    lines = fixture("twsms", name).splitlines()[1:]
    return [tuple(line.split("\t", 1)) for line in lines if line.strip()]  # type: ignore[misc]


def sample_fields(name: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(fixture("twsms", name).strip()).query))


def body(**fields: object) -> str:
    return json.dumps({"code": "00000", "text": "Success", **fields})


def err(code: str, text: str = "x") -> str:
    return json.dumps({"code": code, "text": text})


@pytest.fixture
def tw() -> TwSMS:
    return TwSMS("test", "1234")


def sms(*to: str, text: str = "hello", **options: Any) -> OutboundSMS:
    return OutboundSMS(tuple(to), text, options=dict(options))


def only(exchange: Exchange[Any]) -> list[HttpRequest]:
    """The first batch of requests an exchange yields."""
    return next(exchange)


# -- the class -----------------------------------------------------------------------------


def test_declared_capabilities() -> None:
    assert TwSMS.name == "twsms"
    assert TwSMS.max_recipients == 1
    assert TwSMS.default_base_url == "https://api.twsms.com"
    assert TwSMS.rate_limit == 500.0  # §1 "可處理 500 requests/sec"
    assert TwSMS.dsn_options == {"two_way_code"}
    assert TwSMS.send_options == {"callback_url", "callback_check", "long"}
    assert Feature.MMS not in TwSMS.features and Feature.PERSONALIZED not in TwSMS.features
    assert {Feature.CANCEL, Feature.REPLIES_POLL, Feature.INTERNATIONAL} <= TwSMS.features


def test_dsn_and_repr() -> None:
    provider = from_dsn("twsms://user:s3cret@?two_way_code=12345&timeout=3")
    assert isinstance(provider, TwSMS)
    assert provider.two_way_code == "12345" and provider.timeout == 3.0
    assert "s3cret" not in repr(provider)
    with pytest.raises(ConfigurationError):
        TwSMS("u", "p", two_way_code="1234")


# -- send: the wire ------------------------------------------------------------------------


def test_send_request_matches_document_sample(tw: TwSMS) -> None:
    """§3 "傳送: .../json/sms_send.php?username=test&password=1234&mobile=0911222333&message=..."."""
    (request,) = only(tw.send(sms("+886911222333", text="測試")))
    doc = sample_fields("send_request.txt")
    assert request.method == "POST"
    assert request.url == "https://api.twsms.com/json/sms_send.php"
    assert request.full_url() == request.url  # nothing (no password) in the URL
    fields = query(request)
    assert fields == {
        "username": doc["username"],
        "password": doc["password"],
        "mobile": doc["mobile"],
        "message": "測試",
    }
    assert list(fields) == ["username", "password", "mobile", "message"]


def test_send_encodes_each_field_once(tw: TwSMS) -> None:
    """§2 "message 與 drurl TAG 請使用 urlencode 編碼": the ordinary form encoding, once."""
    text = "100% + & # ]]> < a=b\n第二行 ?"
    url = "https://example.com.tw/cb?a=1&b=x%2By+z"
    (request,) = only(tw.send(sms("+886911222333", text=text, callback_url=url)))
    raw = request.body()
    assert raw is not None
    assert b"message=100%25%20%2B%20%26%20%23%20%5D%5D%3E%20%3C%20a%3Db%0A%E7%AC%AC" in raw
    assert b"drurl=https%3A%2F%2Fexample.com.tw%2Fcb%3Fa%3D1%26b%3Dx%252By%2Bz" in raw
    assert query(request)["message"] == text
    assert query(request)["drurl"] == url


def test_send_newlines_become_lf(tw: TwSMS) -> None:
    """§2 note 6 "簡訊內容換行請使用 \\n (ASCII CODE 10)"."""
    (request,) = only(tw.send(sms("+886911222333", text="a\r\nb\rc")))
    assert query(request)["message"] == "a\nb\nc"


def test_international_number_is_country_code_plus_number(tw: TwSMS) -> None:
    """§3 mobile "09xxxxxxx(台灣門號) or 國碼+門號 (國際門號)"."""
    (request,) = only(tw.send(sms("+8613512345678")))
    assert query(request)["mobile"] == "8613512345678"
    assert b"%2B" not in (request.body() or b"")


def test_send_schedule_validity_and_options(tw: TwSMS) -> None:
    """§3 sendtime "YYYYMMDDHHII (請使用 24 小時制)"; expirytime seconds; drurl_check/lmsg "=N"."""
    message = OutboundSMS(
        ("+886911222333",),
        "hi",
        schedule_at=datetime(2030, 3, 12, 10, 30, 59, tzinfo=UTC),  # 18:30 in Taipei
        validity=timedelta(hours=2),
        options={"callback_url": "https://a.tw/dr", "callback_check": False, "long": False},
    )
    (request,) = only(tw.send(message))
    fields = query(request)
    assert fields["sendtime"] == "203003121830"
    assert fields["expirytime"] == "7200"
    assert fields["drurl"] == "https://a.tw/dr"
    assert fields["drurl_check"] == "N"
    assert fields["lmsg"] == "N"
    assert list(fields)[:5] == ["username", "password", "sendtime", "expirytime", "mobile"]


def test_send_defaults_send_nothing_extra(tw: TwSMS) -> None:
    (request,) = only(tw.send(sms("+886911222333", callback_check=True, long=True)))
    assert set(query(request)) == {"username", "password", "mobile", "message"}


# -- send: validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "text", "options", "needle"),
    [
        (("+886911222333",), "hi 😀", {}, "emoji"),  # §6 00180
        (("+886911222333",), "hi ☀", {}, "emoji"),
        (("+886911222333",), "中" * 336, {}, "at most 335"),  # §3 "中文最長 335 個字"
        (("+886911222333",), "a" * 766, {}, "at most 765"),  # §3 "英文最長 765 個字"
        (("+886911222333",), "中" * 71, {"long": False}, "long=False"),
        (("+886911222333",), "a" * 161, {"long": False}, "long=False"),
        (("+886911222333", "+8613512345678"), "中" * 71, {}, "international"),  # §2 note 5
        (("+8613512345678",), "a" * 161, {}, "international"),
        (("+886911222333",), "   ", {}, "empty"),
    ],
)
def test_validate_refuses_text(tw: TwSMS, to: tuple[str, ...], text: str, options: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        tw.validate(sms(*to, text=text, **options))
    assert caught.value.field == "text"
    assert needle in str(caught.value)


@pytest.mark.parametrize(
    ("to", "text"),
    [
        ("+886911222333", "中" * 335),
        ("+886911222333", "a" * 765),
        ("+8613512345678", "中" * 70),  # one SMS abroad is fine
        ("+8613512345678", "a" * 160),
    ],
)
def test_validate_accepts_limits(tw: TwSMS, to: str, text: str) -> None:
    tw.validate(sms(to, text=text))


@pytest.mark.parametrize("seconds", [299, 28801, 86400])
def test_validity_out_of_range(tw: TwSMS, seconds: int) -> None:
    """§3 expirytime "範圍：300~28800 秒"."""
    message = OutboundSMS(("+886911222333",), "hi", validity=timedelta(seconds=seconds))
    with pytest.raises(InvalidSchedule) as caught:
        tw.validate(message)
    assert caught.value.field == "validity"


@pytest.mark.parametrize("seconds", [300, 28800])
def test_validity_limits_ok(tw: TwSMS, seconds: int) -> None:
    tw.validate(OutboundSMS(("+886911222333",), "hi", validity=timedelta(seconds=seconds)))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"callback_url": "ftp://x"}, "callback_url"),
        ({"callback_url": "not a url"}, "callback_url"),
        ({"long": "N"}, "long"),
        ({"callback_check": 0}, "callback_check"),
        ({"subject": "x"}, "subject"),
    ],
)
def test_validate_options(tw: TwSMS, options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        tw.validate(sms("+886911222333", **options))
    assert caught.value.field == field


def test_send_validates_before_any_request(tw: TwSMS) -> None:
    with pytest.raises(InvalidMessage):
        only(tw.send(sms("+886911222333", text="😀")))


def test_client_preparation_runs_provider_validation(tw: TwSMS) -> None:
    with pytest.raises(InvalidMessage):
        prepare_sms(tw, "0911-222-333", "中" * 71, None, None, {"long": False})
    with pytest.raises(InvalidSchedule):
        prepare_sms(tw, "0911222333", "hi", None, 60, {})
    message = prepare_sms(tw, "0911222333", "hi", None, 600, {"callback_url": "https://a.tw/x"})
    assert message.recipients == ("+886911222333",)


# -- estimate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, Encoding.GSM7, 1),  # "英文最長 160 個字，扣 1 點數"
        ("a" * 161, Encoding.GSM7, 2),  # "每 153 個字扣 1 點數"
        ("a" * 765, Encoding.GSM7, 5),
        ("中" * 70, Encoding.UCS2, 1),  # "中文最長 70 個字，扣 1 點數"
        ("中" * 71, Encoding.UCS2, 2),  # "每 67 個字扣 1 點數"
        ("中" * 335, Encoding.UCS2, 5),
        ("é" * 100, Encoding.UCS2, 2),  # not ASCII: counted as Chinese
    ],
)
def test_text_info(text: str, encoding: Encoding, parts: int) -> None:
    info = text_info(text)
    assert (info.encoding, info.parts) == (encoding, parts)


def test_estimate_taiwan_one_international_three(tw: TwSMS) -> None:
    """§3 "台灣門號每則扣 1 通,國際門號每則扣 3 通"."""
    estimate = tw.estimate(["+886911222333", "+886922333444", "+8613512345678"], "中" * 71)
    assert estimate.parts == 2
    assert estimate.points == Decimal(2 + 2 + 6)
    assert estimate.recipients == 3 and estimate.characters == 71
    assert tw.estimate(["+886911222333"], "hello").points == Decimal(1)


# -- send: replies and exchanges -----------------------------------------------------------


def test_parse_send_document_sample() -> None:
    """§3 "接收: {"code":"00000","text":"Success","msgid":222160591}"."""
    result = parse_send(OK_SEND, "+886911222333")
    assert result.message_id == "222160591" and result.accepted
    assert parse_send(body(msgid="222160591"), "+886911222333").message_id == "222160591"
    assert parse_send('{"code":0,"msgid":12345678}', "+886911222333").message_id == "12345678"


def test_send_exchange_one_request_per_recipient_with_partial_failure(tw: TwSMS) -> None:
    exchange = tw.send(sms("+886911222333", "+886922333444", "+886933444555", "+886944555666"))
    requests = next(exchange)
    assert len(requests) == 4  # yielded together: AsyncClient runs them concurrently
    assert [query(r)["mobile"] for r in requests] == ["0911222333", "0922333444", "0933444555", "0944555666"]
    outcomes: list[Outcome] = [
        reply(OK_SEND),
        reply(err("00100", "手機號碼格式錯誤")),
        Timeout("no answer", provider="twsms"),
        reply("<html>oops</html>"),
    ]
    with pytest.raises(StopIteration) as stop:
        exchange.send(outcomes)
    result = stop.value.value
    assert [m.recipient for m in result.messages] == [
        "+886911222333",
        "+886922333444",
        "+886933444555",
        "+886944555666",
    ]
    assert result.messages[0].message_id == "222160591"
    assert isinstance(result.messages[1].error, InvalidRecipient)
    assert result.messages[1].error.recipient == "+886922333444"
    assert isinstance(result.messages[2].error, Timeout)
    assert isinstance(result.messages[3].error, MalformedResponse)


def test_send_error_replies_per_recipient(tw: TwSMS) -> None:
    result = drive(tw.send(sms("+886911222333")), lambda r: err("00020", "通數不足"))
    (message,) = result.messages
    assert isinstance(message.error, InsufficientCredit) and message.error.code == "00020"


# -- code tables ---------------------------------------------------------------------------


def test_error_table_covers_every_documented_code() -> None:
    """§6 code / text 說明: every code but 00000 (完成) is in ERRORS."""
    documented = {code for code, _ in doc_table("codes.tsv")}
    assert documented - {"00000"} == set(ERRORS)
    assert "00000" in documented


EXPECTED_CLASS = {
    "00010": AuthenticationError,
    "00011": AuthenticationError,
    "00012": AuthenticationError,
    "00020": InsufficientCredit,
    "00030": AccountError,
    "00031": AccountError,
    "00040": AccountError,
    "00041": AccountError,
    "00050": InvalidSchedule,
    "00060": InvalidSchedule,
    "00150": InvalidSchedule,
    "00100": InvalidRecipient,
    "00110": InvalidMessage,
    "00120": InvalidMessage,
    "00130": InvalidMessage,
    "00180": InvalidMessage,
    "00140": InvalidRequest,
    "00170": InvalidRequest,
    "00300": NotFound,
    "99998": ProviderUnavailable,
    "99999": ProviderUnavailable,
}


@pytest.mark.parametrize(("code", "text"), [row for row in doc_table("codes.tsv") if row[0] != "00000"])
def test_error_for_every_code(code: str, text: str) -> None:
    exc = error_for(code, text)
    assert isinstance(exc, ERRORS[code][0])
    assert exc.code == code and exc.provider == "twsms"
    assert text in str(exc)
    if code in EXPECTED_CLASS:
        assert isinstance(exc, EXPECTED_CLASS[code])
    # the error as a whole reply, through a parser
    with pytest.raises(ERRORS[code][0]):
        parse_balance(err(code, text))


@pytest.mark.parametrize(
    ("code", "field"),
    [("00140", "callback_url"), ("00170", "callback_url"), ("00060", "validity"), ("00150", "schedule_at")],
)
def test_error_fields(code: str, field: str) -> None:
    exc = error_for(code)
    assert isinstance(exc, InvalidRequest) and exc.field == field


def test_unknown_code_is_rejected_with_code_and_text() -> None:
    exc = error_for("12345", "新錯誤")
    assert type(exc) is Rejected and exc.code == "12345" and "新錯誤" in str(exc)


@pytest.mark.parametrize(("word", "meaning"), doc_table("statustext.tsv"))
def test_every_documented_statustext(word: str, meaning: str) -> None:
    """§8 statustext 說明: every row is mapped, and a query reply carries it through."""
    assert word in STATUS
    report = parse_status(body(statuscode="0", statustext=word), recipient="+886911222333", message_id="1")
    assert report.status is STATUS[word]
    assert report.provider_status == word


def test_status_table_values() -> None:
    assert STATUS["DELIVRD"] is Status.DELIVERED
    assert STATUS["EXPIRED"] is Status.EXPIRED
    assert STATUS["DELETED"] is Status.CANCELED
    assert STATUS["UNDELIV"] is Status.UNDELIVERABLE
    assert STATUS["ACCEPTD"] is Status.SUBMITTED
    assert STATUS["REJECTD"] is Status.REJECTED
    assert STATUS["00001"] is Status.SUBMITTED
    assert STATUS["00310"] is Status.SCHEDULED


def test_unknown_statustext_is_unknown() -> None:
    report = parse_status(body(statustext="NEWWORD"), recipient=None, message_id="1")
    assert report.status is Status.UNKNOWN and report.provider_status == "NEWWORD"


# -- status --------------------------------------------------------------------------------


def test_status_request_matches_document_sample(tw: TwSMS) -> None:
    """§4 "傳送: .../json/sms_query.php?username=test&password=1234&mobile=0911222333&msgid=123456789"."""
    (request,) = only(tw.status([MessageRef("123456789", "+886911222333")]))
    assert request.url == "https://api.twsms.com/json/sms_query.php" and request.method == "POST"
    assert query(request) == sample_fields("query_request.txt")


def test_status_document_sample(tw: TwSMS) -> None:
    """§4 "接收: {...,"statustext":"DELIVRD","donetime":"20180520183042"}"."""
    (report,) = drive(tw.status([MessageRef("123456789", "+886911222333")]), lambda r: OK_QUERY)
    assert report.status is Status.DELIVERED
    assert report.provider_status == "DELIVRD"
    assert report.message_id == "123456789" and report.recipient == "+886911222333"
    assert report.done_at == datetime(2018, 5, 20, 18, 30, 42, tzinfo=TAIPEI)
    assert report.raw["statuscode"] == "0"


@pytest.mark.parametrize(("code", "status"), [("00001", Status.SUBMITTED), ("00310", Status.SCHEDULED)])
def test_status_pending_codes_are_not_errors(tw: TwSMS, code: str, status: Status) -> None:
    """§6 00001 "狀態尚未回復", 00310 "預約尚未送出": answers, not failures."""
    (report,) = drive(tw.status([MessageRef("1", "+886911222333")]), lambda r: err(code))
    assert report.status is status and report.provider_status == code


def test_status_many_refs_at_once(tw: TwSMS) -> None:
    refs = [MessageRef(str(i), f"+88691122233{i}") for i in range(5)]
    seen: list[HttpRequest] = []
    reports = drive(tw.status(refs), lambda r: body(statustext="DELIVRD"), seen)
    assert len(only(tw.status(refs))) == 5
    assert [r.message_id for r in reports] == ["0", "1", "2", "3", "4"]
    assert [query(r)["msgid"] for r in seen] == ["0", "1", "2", "3", "4"]


def test_status_not_found_asks_again_with_outrange(tw: TwSMS) -> None:
    """§4 outrange "=Y：查詢超過三天以上的紀錄"."""
    seen: list[HttpRequest] = []

    def answer(request: HttpRequest) -> str:
        return OK_QUERY if query(request).get("outrange") == "Y" else err("00300", "找不到 msgid")

    (report,) = drive(tw.status([MessageRef("1", "+886911222333")]), answer, seen)
    assert report.status is Status.DELIVERED
    assert [query(r).get("outrange") for r in seen] == [None, "Y"]


def test_status_not_found(tw: TwSMS) -> None:
    refs = [MessageRef("1", "+886911222333"), MessageRef("2", "+886911222333")]
    with pytest.raises(NotFound):
        drive(tw.status(refs), lambda r: err("00300"))
    reports = drive(tw.status(refs), lambda r: OK_QUERY if query(r)["msgid"] == "1" else err("00300"))
    assert [(r.status, r.provider_status) for r in reports] == [
        (Status.DELIVERED, "DELIVRD"),
        (Status.UNKNOWN, "00300"),
    ]


def test_status_other_errors_raise(tw: TwSMS) -> None:
    refs = [MessageRef("1", "+886911222333"), MessageRef("2", "+886911222333")]
    with pytest.raises(AuthenticationError):
        drive(tw.status(refs), lambda r: OK_QUERY if query(r)["msgid"] == "1" else err("00012"))
    with pytest.raises(ConnectError):
        drive(tw.status(refs[:1]), lambda r: ConnectError("down", provider="twsms"))


@pytest.mark.parametrize(
    ("ref", "field"),
    [(MessageRef(message_id="123"), "recipient"), (MessageRef(recipient="+886911222333"), "message_id")],
)
def test_status_ref_needs_recipient_and_msgid(tw: TwSMS, ref: MessageRef, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        only(tw.status([ref]))
    assert caught.value.field == field


def test_status_no_refs_no_requests(tw: TwSMS) -> None:
    assert drive(tw.status([]), lambda r: pytest.fail("no request expected")) == []


def test_no_mms(tw: TwSMS) -> None:
    with pytest.raises(UnsupportedFeature):
        only(tw.status([MessageRef("1", "+886911222333")], mms=True))


# -- balance -------------------------------------------------------------------------------


def test_balance(tw: TwSMS) -> None:
    """§4 checkpoint "=Y：查詢剩餘簡訊通數（使用此功能時 mobile 與 msgid 不需填寫）"; reply ``point``."""
    seen: list[HttpRequest] = []
    assert drive(tw.balance(), lambda r: body(point=437), seen) == Decimal(437)
    assert query(seen[0]) == {"username": "test", "password": "1234", "checkpoint": "Y"}
    assert parse_balance(body(point="1,234")) == Decimal(1234)
    with pytest.raises(AuthenticationError):
        drive(tw.balance(), lambda r: err("00010", "帳號或密碼格式錯誤"))
    for bad in (body(), body(point="many"), body(point=True), body(point=None)):
        with pytest.raises(MalformedResponse):
            parse_balance(bad)


# -- cancel --------------------------------------------------------------------------------


def test_cancel_request_and_count(tw: TwSMS) -> None:
    """§4 delttime "=Y：刪除預約的簡訊"."""
    refs = [MessageRef(str(i), "+886911222333") for i in range(4)]
    answers = {
        "0": body(),
        "1": body(statustext="DELETED"),
        "2": err("00310"),
        "3": body(statustext="DELIVRD"),
    }
    seen: list[HttpRequest] = []
    result = drive(tw.cancel(refs), lambda r: answers[query(r)["msgid"]], seen)
    assert query(seen[0]) == {
        "username": "test",
        "password": "1234",
        "delttime": "Y",
        "mobile": "0911222333",
        "msgid": "0",
    }
    assert result.canceled == 2
    assert "00310" in result.raw


def test_cancel_pending_answers_are_not_cancels() -> None:
    assert parse_cancel(body()) is True
    assert parse_cancel(err("00310")) is False  # still scheduled: not deleted
    assert parse_cancel(err("00001")) is False
    assert parse_cancel(body(statustext="EXPIRED")) is False


def test_cancel_errors(tw: TwSMS) -> None:
    refs = [MessageRef("1", "+886911222333"), MessageRef("2", "+886911222333")]
    with pytest.raises(NotFound):
        drive(tw.cancel(refs), lambda r: err("00300"))
    result = drive(tw.cancel(refs), lambda r: body() if query(r)["msgid"] == "1" else err("99999"))
    assert result.canceled == 1 and "ProviderUnavailable" in result.raw


# -- replies (moQuery) ---------------------------------------------------------------------


def test_replies_request_matches_document_sample() -> None:
    """§5 "傳送: .../smsmo_query.php?username=test123&password=test123&snumber=12345&sdate=2012-03-24"."""
    provider = TwSMS("test123", "test123")
    (request,) = only(provider.replies(day=date(2012, 3, 24), code="12345"))
    assert request.url == "https://api.twsms.com/json/smsmo_query.php"
    assert query(request) == sample_fields("mo_request.txt")


def test_replies_document_sample() -> None:
    """§5 "接收: {"code":"00000",...,"moResp":[{"seq":"221831","date":"20180906102939",...}]}"."""
    provider = TwSMS("test", "1234", two_way_code="12345")
    seen: list[HttpRequest] = []
    first, second = drive(provider.replies(), lambda r: MO_REPLY, seen)
    assert query(seen[0]) == {"username": "test", "password": "1234", "snumber": "12345"}  # no sdate
    assert first.provider == "twsms" and first.provider_id == "221831"
    assert first.sender == "+886911222333"
    assert first.text == CHINESE
    assert first.received_at == datetime(2018, 9, 6, 10, 29, 39, tzinfo=TAIPEI)
    assert second.provider_id == "221832" and first.raw["seq"] == "221831"


def test_replies_none_is_empty(tw: TwSMS) -> None:
    """§6 00410 "沒有任何 mo 資料"."""
    assert drive(tw.replies(code="12345"), lambda r: err("00410", "沒有任何 mo 資料")) == []
    assert parse_replies(body(moResp=[])) == []
    assert parse_replies(body(moResp={"0": {"mobile": "0911222333", "message": "x"}}))[0].text == "x"


def test_replies_errors(tw: TwSMS) -> None:
    with pytest.raises(InvalidRequest) as caught:
        only(tw.replies())
    assert caught.value.field == "code"
    with pytest.raises(InvalidRequest):
        only(tw.replies(code="12a45"))
    with pytest.raises(InvalidRequest) as caught:
        drive(tw.replies(code="12345"), lambda r: err("00400"))
    assert caught.value.field == "code" and caught.value.code == "00400"


def test_replies_day_from_aware_datetime(tw: TwSMS) -> None:
    (request,) = only(tw.replies(day=datetime(2024, 1, 1, 20, 0, tzinfo=UTC), code="12345"))
    assert query(request)["sdate"] == "2024-01-02"


# -- malformed replies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "<html>502</html>",
        "[]",
        '{"text":"Success"}',
        '{"code":null}',
        '"00000"',
        "{" * 5000,
        "[" * 100000,
    ],
)
def test_malformed_replies(text: str) -> None:
    parsers = [
        lambda t: parse_send(t, "+886911222333"),
        lambda t: parse_status(t, recipient=None, message_id="1"),
        parse_cancel,
        parse_balance,
        parse_replies,
    ]
    for parse in parsers:
        with pytest.raises(MalformedResponse):
            parse(text)


def test_malformed_specific_fields() -> None:
    with pytest.raises(MalformedResponse):
        parse_send(body(), "+886911222333")  # no msgid
    with pytest.raises(MalformedResponse):
        parse_status(body(), recipient=None, message_id="1")  # no statustext
    with pytest.raises(MalformedResponse):
        parse_replies(body(moResp="x"))
    with pytest.raises(MalformedResponse):
        parse_replies(body(moResp=[{"seq": "1"}]))


def test_lenient_replies() -> None:
    assert parse_send('\ufeff {"code":"00000","msgid":1,}\r\n', "+886911222333").message_id == "1"
    assert parse_send('Notice: x<br>{"code":"00000","msgid":"7"}', "+886911222333").message_id == "7"


def test_malformed_body_is_redacted() -> None:
    provider = TwSMS("test", "hunter22")
    with pytest.raises(MalformedResponse) as caught:
        drive(provider.balance(), lambda r: "error: password=hunter22 rejected")
    assert "hunter22" not in caught.value.body and "hunter22" not in str(caught.value)


# -- callback ------------------------------------------------------------------------------


def test_webhook_document_sample() -> None:
    """§4 主動式 "smsresp=%7B%22code%22...%22downtime%22%3A%2220180520183042%22%7D", sent by GET."""
    result = parse_webhook(method="GET", query=CALLBACK.encode(), body=b"", content_type="")
    (report,) = result.reports
    assert result.provider == "twsms" and result.replies == ()
    assert report.provider == "twsms"
    assert report.message_id == "12345678"
    assert report.recipient == "+886911222333"
    assert report.status is Status.DELIVERED
    assert report.provider_status == "DELIVRD"
    assert report.done_at == datetime(2018, 5, 20, 18, 30, 42, tzinfo=TAIPEI)
    assert report.raw["statuscode"] == "0"
    assert result.ack == WebhookAck(200, b"OK", "text/plain") == webhook_ack()


def test_webhook_probe_without_smsresp() -> None:
    """§3 drurl "此參數所帶入的網址將自動檢測是否 http code = 200"."""
    for method, q in (("GET", b""), ("GET", b"smsresp="), ("HEAD", b"check=1")):
        result = parse_webhook(method=method, query=q, body=b"", content_type="")
        assert result.reports == () and result.ack.status == 200 and result.ack.body == b"OK"


def test_webhook_post_form_and_json_and_variants() -> None:
    form = parse_webhook(
        method="POST",
        query=b"",
        body=CALLBACK.encode(),
        content_type="application/x-www-form-urlencoded",
    )
    assert form.reports[0].message_id == "12345678"
    data = {"msgid": 222160591, "mobile": "8613512345678", "statustext": "UNDELIV", "donetime": "x"}
    bare = parse_webhook(method="POST", query=b"", body=json.dumps(data).encode(), content_type="application/json")
    (report,) = bare.reports
    assert report.message_id == "222160591" and report.recipient == "+8613512345678"
    assert report.status is Status.UNDELIVERABLE and report.done_at is None
    twice = "smsresp=" + quote(quote(json.dumps(data), safe=""), safe="")
    assert parse_webhook(method="GET", query=twice.encode(), body=b"", content_type="").reports == (report,)


@pytest.mark.parametrize(
    "q",
    [
        b"smsresp=notjson",
        b"smsresp=%5B%5D",
        b"smsresp=" + quote(json.dumps({"statustext": "DELIVRD"})).encode(),
        b"smsresp=" + quote(json.dumps({"msgid": "1"})).encode(),
        b"smsresp=%FF%FE",
        b"%FF=1",
        b"smsresp=" + b"%7B" * 20000,
    ],
)
def test_webhook_malformed(q: bytes) -> None:
    with pytest.raises(InvalidWebhook):
        parse_webhook(method="GET", query=q, body=b"", content_type="")


# -- fuzzing: only formosms errors escape ----------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        k: json_values | st.sampled_from(["00000", "00001", "00310", "00410", "DELIVRD", "0911222333"])
        for k in ("code", "text", "msgid", "mobile", "statustext", "donetime", "downtime", "point", "moResp")
    },
)


@settings(max_examples=300, deadline=None)
@given(q=st.binary(max_size=300), b=st.binary(max_size=300), method=st.sampled_from(["GET", "POST", "PUT"]))
def test_webhook_fuzz_bytes(q: bytes, b: bytes, method: str) -> None:
    with contextlib.suppress(InvalidWebhook):
        parse_webhook(method=method, query=q, body=b, content_type="application/x-www-form-urlencoded")


@settings(max_examples=300, deadline=None)
@given(data=fields)
def test_webhook_fuzz_fields(data: dict[str, object]) -> None:
    q = ("smsresp=" + quote(json.dumps(data), safe="")).encode()
    with contextlib.suppress(InvalidWebhook):
        parse_webhook(method="GET", query=q, body=b"", content_type="")


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=200), fields.map(json.dumps)))
def test_reply_parsers_fuzz(text: str) -> None:
    parsers = [
        lambda t: parse_send(t, "+886911222333"),
        lambda t: parse_status(t, recipient="+886911222333", message_id="1"),
        parse_cancel,
        parse_balance,
        parse_replies,
    ]
    for parse in parsers:
        with contextlib.suppress(FormosmsError):
            parse(text)
