"""SMS-Get codec tests: quoted from specs/smsget-api.txt (sections 一–五) and provider-notes.md."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qsl, quote, urlencode

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
    Rejected,
    UnsupportedFeature,
)
from formosms.model import Encoding, Feature, Status, WebhookAck
from formosms.providers.base import MessageRef, OutboundSMS, from_dsn
from formosms.providers.smsget import (
    ERRORS,
    STATUS,
    SMSGet,
    error_for,
    number_from_wire,
    parse_credit_reply,
    parse_send_reply,
    parse_webhook,
    schedule_fields,
    wire_number,
)
from formosms.providers.smsget_codes import status_of
from formosms.timefmt import TAIPEI
from formosms.transport import HttpRequest
from tests.helpers import drive, fixture, query, reply

PASSWORD = "p@ss+w&rd%"


def provider(**kwargs: object) -> SMSGet:
    return SMSGet("demo", PASSWORD, **kwargs)  # type: ignore[arg-type]


def sms(*to: str, text: str = "hello", when: datetime | None = None, **options: object) -> OutboundSMS:
    return OutboundSMS(tuple(to), text, when, None, dict(options))


def ok_reply(msgid: str = "12345678", used: int = 1, left: int = 437) -> str:
    return json.dumps({"stats": True, "error_code": "000", "error_msg": f"{msgid}|{used}|{left}"})


# -- the class ----------------------------------------------------------------------------------


def test_declared_capabilities() -> None:
    p = provider()
    assert p.name == "smsget"
    assert p.features == {
        Feature.SEND,
        Feature.SCHEDULE,
        Feature.LONG_SMS,
        Feature.TWO_WAY,
        Feature.DELIVERY_CALLBACK,
        Feature.BALANCE,
        Feature.INTERNATIONAL,
    }
    # "收件人上限 250 人"
    assert p.max_recipients == 250
    assert p.default_base_url == "https://sms-get.com"
    assert p.send_options == {"two_way"}
    assert p.dsn_options == {"two_way_code"}
    assert p.rate_limit is None


def test_dsn_and_secrets() -> None:
    p = from_dsn("smsget://demo:secret@?two_way_code=03")
    assert isinstance(p, SMSGet)
    assert p.two_way_code == "03"
    assert "secret" not in repr(p)
    assert "secret" not in repr(p.build_balance())
    for bad in ("3", "003", "ab", "", 3):
        with pytest.raises(ConfigurationError):
            SMSGet("demo", "pw", two_way_code=bad)  # type: ignore[arg-type]
    assert provider(base_url="http://sms-get.com/").base_url == "http://sms-get.com"


def test_no_status_query_cancel_or_mms() -> None:
    # provider-notes: "No status query exists: delivery is known only through callbacks."
    p = provider()
    with pytest.raises(UnsupportedFeature):
        next(p.status([MessageRef("12345678")]))
    with pytest.raises(UnsupportedFeature):
        next(p.cancel([MessageRef("12345678")]))
    with pytest.raises(UnsupportedFeature):
        next(p.replies())


# -- requests ---------------------------------------------------------------------------------


def test_send_request_fields_immediate() -> None:
    # 一: "單次送大量收件人名單請用 POST 的方式"; method "1" =>立即發送
    request = provider().build_send(("+886912345678", "+8613512345678"), "您好 hello")
    assert request.method == "POST"
    assert request.url == "https://sms-get.com/api_send.php"
    assert request.params == ()  # nothing (no password) in the URL
    fields = query(request)
    assert fields == {
        "username": "demo",
        "password": PASSWORD,
        "method": "1",
        "sms_msg": "您好 hello",
        "phone": "0912345678,13512345678",
    }
    documented = {k for k, _ in parse_qsl(fixture("smsget", "send_url_query.txt").strip())}
    assert set(fields) <= documented
    assert request.all_headers()["Content-Type"] == "application/x-www-form-urlencoded"


def test_send_request_scheduled() -> None:
    # 一: send_date "YYYY/MM/DD", hour 00~23, min 00~59 (Taiwan time)
    when = datetime(2030, 1, 2, 16, 5, tzinfo=UTC)  # 2030-01-03 00:05 in Taipei
    fields = query(provider().build_send(("+886912345678",), "hi", when))
    assert fields["method"] == "2"
    assert (fields["send_date"], fields["hour"], fields["min"]) == ("2030/01/03", "00", "05")
    documented = {k for k, _ in parse_qsl(fixture("smsget", "send_url_query.txt").strip())}
    assert set(fields) == documented


def test_schedule_rounds_seconds_up() -> None:
    when = datetime(2030, 12, 31, 23, 59, 30, tzinfo=TAIPEI)
    assert schedule_fields(when) == [("send_date", "2031/01/01"), ("hour", "00"), ("min", "00")]
    exact = datetime(2030, 5, 6, 7, 8, tzinfo=TAIPEI)
    assert schedule_fields(exact) == [("send_date", "2030/05/06"), ("hour", "07"), ("min", "08")]


def test_encoding_once() -> None:
    text = "100% a+b & c#d ]]> <x>\n第二行 😀"
    request = provider().build_send(("+886912345678",), text)
    body = request.body()
    assert body is not None
    raw = body.decode("ascii")
    assert "sms_msg=100%25%20a%2Bb%20%26%20c%23d%20%5D%5D%3E%20%3Cx%3E%0A" in raw
    assert "password=p%40ss%2Bw%26rd%25" in raw
    assert "phone=0912345678&" in raw or raw.endswith("phone=0912345678")
    assert query(request)["sms_msg"] == text
    assert query(request)["password"] == PASSWORD
    assert PASSWORD not in repr(request)


def test_two_way_request() -> None:
    # 三: http://sms-get.com/api_send_twoway.php with the same fields
    p = provider()
    seen: list[HttpRequest] = []
    drive(p.send(sms("+886912345678", two_way=True)), lambda r: ok_reply(), seen)
    assert seen[0].url == "https://sms-get.com/api_send_twoway.php"
    assert query(seen[0])["phone"] == "0912345678"


def test_two_way_taiwan_only() -> None:
    # 三: "雙向簡訊僅台灣手機門號可送達"
    p = provider()
    with pytest.raises(InvalidRecipient) as err:
        p.validate(sms("+886912345678", "+85251234567", two_way=True))
    assert err.value.recipient == "+85251234567"
    assert err.value.field == "to"
    with pytest.raises(InvalidRequest) as bad:
        p.validate(sms("+886912345678", two_way="yes"))
    assert bad.value.field == "two_way"
    p.validate(sms("+85251234567", two_way=False))


def test_balance_request() -> None:
    request = provider().build_balance()
    assert request.url == "https://sms-get.com/api_query_credit.php"
    documented = {k for k, _ in parse_qsl(fixture("smsget", "credit_url_query.txt").strip())}
    assert query(request) == {"username": "demo", "password": PASSWORD}
    assert set(query(request)) == documented


# -- numbers -------------------------------------------------------------------------------------

WIRE = [
    # 一: "台灣門號:0912345XXX(共 10 碼)", "大陸門號:135XXXXX123(共 11 碼)", "香港門號:54XXX123(共8碼)",
    # "美國門號:001123XXXX123(共 13 碼)", the others "前須加上國際碼".
    ("+886912345678", "0912345678"),
    ("+8613512345678", "13512345678"),
    ("+85254123123", "54123123"),
    ("+85366123123", "85366123123"),
    ("+819012345678", "819012345678"),
    ("+60123456789", "60123456789"),
    ("+84912345678", "84912345678"),
    ("+628123456789", "628123456789"),
    ("+66812345678", "66812345678"),
    ("+61412345678", "61412345678"),
    ("+6581234567", "6581234567"),
    ("+639171234567", "639171234567"),
    ("+971501234567", "971501234567"),
    ("+85512345678", "85512345678"),
    ("+12025550123", "0012025550123"),
    ("+821012345678", "821012345678"),
]


@pytest.mark.parametrize(("e164", "wire"), WIRE)
def test_wire_numbers(e164: str, wire: str) -> None:
    assert wire_number(e164) == wire
    assert number_from_wire(wire) == e164


@pytest.mark.parametrize("e164", ["+447911123456", "+14165550123", "+33612345678"])
def test_unlisted_countries_refused(e164: str) -> None:
    with pytest.raises(InvalidRecipient) as err:
        provider().validate(sms("+886912345678", e164))
    assert err.value.recipient == e164
    assert e164 in str(err.value)


def test_client_refuses_before_network() -> None:
    p = provider()
    with pytest.raises(InvalidRecipient):
        prepare_sms(p, ["0912345678", "+447911123456"], "hi", None, None, {})
    with pytest.raises(UnsupportedFeature):
        prepare_sms(p, "0912345678", "hi", None, 3600, {})
    with pytest.raises(InvalidRequest) as err:
        prepare_sms(p, "0912345678", "hi", None, None, {"callback_url": "https://x"})
    assert err.value.field == "callback_url"
    later = datetime.now(UTC) + timedelta(days=1)
    message = prepare_sms(p, "0912345678", "hi", later, None, {"two_way": True})
    assert message.schedule_at is not None and message.schedule_at.tzinfo == TAIPEI


# -- send / credit replies ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["send_reply_ok.json", "send_reply_ok_spaces.json"])
def test_parse_send_reply_samples(name: str) -> None:
    # 一: "成功: 訊息 ID 使用點數 剩餘點數" (notes: "12345678|1|437")
    outcome = parse_send_reply(fixture("smsget", name), ("+886912345678", "+8613512345678"))
    assert outcome.batch_id == "12345678"
    assert [m.message_id for m in outcome.messages] == ["12345678", "12345678"]
    assert [m.recipient for m in outcome.messages] == ["+886912345678", "+8613512345678"]
    assert all(m.accepted and m.provider_status == "000" for m in outcome.messages)
    assert outcome.cost == Decimal(1)
    assert outcome.balance == Decimal(437)


@pytest.mark.parametrize("stats", [True, "true", "True", "TRUE", 1])
def test_stats_forms(stats: object) -> None:
    # notes: "stats is a JSON boolean; accept "true"/"True" strings too."
    body = json.dumps({"stats": stats, "error_code": 0, "error_msg": "9|2|3.5|"})
    outcome = parse_send_reply(body, ("+886912345678",))
    assert (outcome.batch_id, outcome.cost, outcome.balance) == ("9", Decimal(2), Decimal("3.5"))


def test_send_reply_error_sample() -> None:
    with pytest.raises(AuthenticationError) as err:
        parse_send_reply(fixture("smsget", "send_reply_error.json"), ("+886912345678",))
    assert err.value.code == "005"
    assert err.value.provider == "smsget"
    assert "帳號密碼錯誤" in str(err.value)


@pytest.mark.parametrize("code", sorted(ERRORS))
def test_every_error_code(code: str) -> None:
    cls, meaning = ERRORS[code]
    body = json.dumps({"stats": False, "error_code": code, "error_msg": "說明"})
    with pytest.raises(cls) as err:
        parse_send_reply(body, ("+886912345678",))
    assert type(err.value) is cls
    assert (err.value.code, err.value.provider) == (code, "smsget")
    assert meaning in str(err.value)
    with pytest.raises(cls):
        parse_credit_reply(body)


def test_error_classes() -> None:
    assert isinstance(error_for("001"), InvalidRequest)
    assert isinstance(error_for("002"), InvalidSchedule)
    assert isinstance(error_for("003"), InvalidSchedule)
    assert isinstance(error_for("004"), InvalidMessage)
    assert isinstance(error_for("005"), AuthenticationError)
    assert isinstance(error_for("006"), AccountError)
    assert isinstance(error_for("007"), InvalidRecipient)
    eight = error_for("008")
    assert isinstance(eight, InvalidRequest) and eight.field == "to"
    assert isinstance(error_for("009"), InsufficientCredit)
    assert isinstance(error_for("010"), AccountError)
    unknown = error_for("099", "奇怪")
    assert type(unknown) is Rejected and unknown.code == "099" and "奇怪" in str(unknown)


def test_error_contradictions() -> None:
    # stats true with an error code, or stats false without one, is still an error
    with pytest.raises(InsufficientCredit):
        parse_send_reply('{"stats":true,"error_code":"009","error_msg":"點數不足"}', ("+886912345678",))
    with pytest.raises(Rejected) as err:
        parse_send_reply('{"stats":false,"error_msg":"x"}', ("+886912345678",))
    assert err.value.code is None


def test_error_text_is_redacted() -> None:
    body = json.dumps({"stats": False, "error_code": "001", "error_msg": f"bad password={PASSWORD}"})
    with pytest.raises(InvalidRequest) as err:
        parse_send_reply(body, ("+886912345678",), secrets=(PASSWORD,))
    assert PASSWORD not in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html>502</html>",
        "[]",
        '{"error_code":"000"}',
        '{"stats":"maybe","error_code":"000","error_msg":"1|1|1"}',
        '{"stats":true,"error_code":"000","error_msg":""}',
        '{"stats":true,"error_code":"000","error_msg":"1|x|3"}',
        '{"stats":true,"error_code":"000","error_msg":"1|2|3|4"}',
        '{"stats":true,"error_code":["000"],"error_msg":"1|2|3"}',
    ],
)
def test_malformed_send_replies(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_send_reply(body, ("+886912345678",))


@pytest.mark.parametrize("name", ["credit_reply_ok.json", "credit_reply_ok_spaces.json"])
def test_parse_credit_reply(name: str) -> None:
    # 五: "成功: 帳號 剩餘點數"
    assert parse_credit_reply(fixture("smsget", name)) == Decimal(437)


@pytest.mark.parametrize(
    "body", ["{}", '{"stats":true,"error_code":"000","error_msg":""}', '{"stats":true,"error_msg":"demo"}']
)
def test_malformed_credit_replies(body: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_credit_reply(body)


# -- exchanges --------------------------------------------------------------------------------


def test_send_splits_by_250_and_merges() -> None:
    recipients = [f"+8869{i:08d}" for i in range(600)]
    seen: list[HttpRequest] = []
    counter = iter(range(1, 10))

    def answer(request: HttpRequest) -> str:
        n = next(counter)
        return ok_reply(str(n), used=len(query(request)["phone"].split(",")), left=1000 - n)

    result = drive(provider().send(sms(*recipients, text="x")), answer, seen)
    assert [len(query(r)["phone"].split(",")) for r in seen] == [250, 250, 100]
    assert len(result.messages) == 600 and not result.failed
    assert result.batch_ids == ("1", "2", "3") and result.batch_id is None
    assert result.messages[0].message_id == "1" and result.messages[599].message_id == "3"
    assert result.cost == Decimal(600)
    assert result.balance == Decimal(997)


def test_send_partial_failure() -> None:
    recipients = [f"+8869{i:08d}" for i in range(600)]
    answers: Iterator[str | FormosmsError] = iter(
        [
            ok_reply("1"),
            '{"stats":false,"error_code":"009","error_msg":"點數不足"}',
            ConnectError("refused", provider="smsget"),
        ]
    )
    result = drive(provider().send(sms(*recipients)), lambda r: next(answers))
    assert len(result.accepted) == 250
    assert all(isinstance(m.error, InsufficientCredit) for m in result.messages[250:500])
    assert all(isinstance(m.error, ConnectError) for m in result.messages[500:])
    assert result.batch_id == "1"


def test_send_single_batch_and_http_error() -> None:
    result = drive(provider().send(sms("+886912345678")), lambda r: ok_reply())
    assert result.batch_id == "12345678" and result.message_ids == ["12345678"]
    failed = drive(provider().send(sms("+886912345678")), lambda r: reply("oops", status=200))
    assert isinstance(failed.messages[0].error, MalformedResponse)


def test_send_refuses_unlisted_country_before_request() -> None:
    with pytest.raises(InvalidRecipient):
        drive(provider().send(sms("+886912345678", "+447911123456")), lambda r: ok_reply())


def test_balance_exchange() -> None:
    assert drive(provider().balance(), lambda r: fixture("smsget", "credit_reply_ok.json")) == Decimal(437)
    with pytest.raises(AuthenticationError):
        drive(provider().balance(), lambda r: fixture("smsget", "send_reply_error.json"))


# -- estimate -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "text", "encoding", "parts", "points"),
    [
        # "純英文 160 個字內算一則 超過 160 字,每 153 字算一則"
        (["+886912345678"], "a" * 160, Encoding.GSM7, 1, 1),
        (["+886912345678"], "a" * 161, Encoding.GSM7, 2, 2),
        (["+886912345678"], "a" * 307, Encoding.GSM7, 3, 3),
        # "中英文 70 個字內算一則 超過 70 字,每 67 算一則"
        (["+886912345678"], "中" * 70, Encoding.UCS2, 1, 1),
        (["+886912345678"], "中" * 71, Encoding.UCS2, 2, 2),
        (["+886912345678"], "中" * 135, Encoding.UCS2, 3, 3),
        # "台灣、香港門號每則扣一點 中國大陸門號每則扣二點"
        (["+8613512345678"], "中" * 71, Encoding.UCS2, 2, 4),
        (["+85251234567"], "hi", Encoding.GSM7, 1, 1),
        (["+886912345678", "+8613512345678", "+85251234567", "+819012345678"], "hi", Encoding.GSM7, 1, 5),
    ],
)
def test_estimate(to: list[str], text: str, encoding: Encoding, parts: int, points: int) -> None:
    estimate = provider().estimate(to, text)
    assert (estimate.encoding, estimate.parts, estimate.points) == (encoding, parts, Decimal(points))
    assert estimate.recipients == len(to) and estimate.characters == len(text)
    assert estimate.provider == "smsget"


# -- status table -------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "status"), sorted(STATUS.items()))
def test_every_status(word: str, status: Status) -> None:
    assert status_of(word) is status
    assert status_of(word.lower()) is status
    body = urlencode({"sms_id": "9", "content": f"0912345678|a1|2024-01-01 10:00:00|{word}"})
    report = parse_webhook(method="POST", query=b"", body=body.encode(), content_type=FORM).reports[0]
    assert (report.status, report.provider_status) == (status, word)


def test_unknown_status() -> None:
    assert status_of("WHATEVER") is Status.UNKNOWN
    assert STATUS["DELIVRD"] is Status.DELIVERED


# -- webhooks -----------------------------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"
OK = WebhookAck(200, b"ok", "text/plain")


def test_delivery_callback_document_sample() -> None:
    # 二: "0912xxxxxx 59c4e123 2013-01-01 21:08:07 DELIVRD"; "我們將以 POST 方式傳送 ... 回應"ok"字串"
    content = fixture("smsget", "delivery_content.txt").strip()
    body = urlencode({"sms_id": "12345678", "content": content}).encode()
    result = parse_webhook(method="POST", query=b"", body=body, content_type=FORM)
    assert result.provider == "smsget" and result.replies == ()
    assert result.ack == OK
    (report,) = result.reports
    assert report.status is Status.DELIVERED
    assert report.provider_status == "DELIVRD"
    assert report.recipient == "0912xxxxxx"  # the document masks the number
    assert (report.message_id, report.batch_id, report.record_no) == ("12345678", "12345678", "59c4e123")
    assert report.done_at == datetime(2013, 1, 1, 21, 8, 7, tzinfo=TAIPEI)
    assert report.raw["content"] == content and report.raw["sms_id"] == "12345678"


def test_delivery_callback_pipe_records_over_get() -> None:
    # notes: "each recipient's record is phone|id|time|STATUS ... records separated by commas"
    content = (
        "0912345678|59c4e123|2013-01-01 21:08:07|DELIVRD,"
        "13512345678|59c4e124|2013-01-01 21:09:00|UNDELIV, 0012025550123|x9|bad time|EXPIRED,"
    )
    query_bytes = urlencode({"sms_id": "777", "content": content}).encode()
    result = parse_webhook(method="get", query=query_bytes, body=b"", content_type="")
    assert [r.recipient for r in result.reports] == ["+886912345678", "+8613512345678", "+12025550123"]
    assert [r.status for r in result.reports] == [Status.DELIVERED, Status.UNDELIVERABLE, Status.EXPIRED]
    assert [r.record_no for r in result.reports] == ["59c4e123", "59c4e124", "x9"]
    assert result.reports[2].done_at is None
    assert result.ack.body == b"ok"


def test_reply_callback_document_sample() -> None:
    # 四: "回覆內容為 UTF-8 格式,且經過 URL ENCODE"; "回傳範例【03雙向簡訊回傳】"
    content = fixture("smsget", "reply_content.txt").strip()
    body = urlencode({"content": content}).encode()
    result = parse_webhook(method="POST", query=b"", body=body, content_type=FORM)
    assert result.reports == () and result.ack == OK
    (inbound,) = result.replies
    assert inbound.text == "雙向簡訊回傳"
    assert inbound.sender == "0912xxxxxx"
    assert inbound.provider_id == "59c4e123"
    assert inbound.received_at == datetime(2013, 1, 1, 21, 8, 7, tzinfo=TAIPEI)
    assert inbound.reply_to is None and inbound.provider == "smsget"
    assert inbound.raw["text"].startswith("03%E9")


def test_reply_callback_pipe_form_and_codes() -> None:
    text = "03好的 + 100% & ok"
    content = f"0912345678|a1|2024-02-03 04:05:06|{quote(text)},0912345679|a2|2024-02-03 04:05:07|04yes+no"
    body = urlencode({"content": content}).encode()
    result = parse_webhook(method="POST", query=b"", body=body, content_type=FORM)
    assert [m.text for m in result.replies] == ["好的 + 100% & ok", "yes no"]
    assert result.replies[0].sender == "+886912345678"
    coded = parse_webhook(method="POST", query=b"", body=body, content_type=FORM, two_way_code="03")
    assert [m.text for m in coded.replies] == ["好的 + 100% & ok", "04yes no"]
    p = provider(two_way_code="04")
    assert [m.text for m in p.parse_webhook(method="POST", query=b"", body=body, content_type=FORM).replies] == [
        "03好的 + 100% & ok",
        "yes no",
    ]


def test_reply_already_decoded_once() -> None:
    # The document's URL shows the text encoded once only: then it arrives decoded.
    body = b"content=0912345678 a1 2013-01-01 21:08:07 03%E9%9B%99%E5%90%91"
    (inbound,) = parse_webhook(method="POST", query=b"", body=body, content_type=FORM).replies
    assert inbound.text == "雙向"


@pytest.mark.parametrize(
    ("text", "reason"),
    [("03%E9%9B", "utf-8"), ("03%ZZ", "percent"), ("03100%", "percent"), ("03%FF", "utf-8")],
)
def test_reply_bad_encoding(text: str, reason: str) -> None:
    body = urlencode({"content": f"0912345678|a1|2013-01-01 21:08:07|{text}"}).encode()
    with pytest.raises(InvalidWebhook):
        parse_webhook(method="POST", query=b"", body=body, content_type=FORM)


@pytest.mark.parametrize(
    ("method", "query_bytes", "body", "content_type"),
    [
        ("POST", b"", b"", FORM),
        ("POST", b"", b"sms_id=1", FORM),
        ("POST", b"", b"sms_id=1&content=", FORM),
        ("POST", b"", b"sms_id=1&content=,,", FORM),
        ("POST", b"", b"sms_id=&content=0912345678|a|2013-01-01 21:08:07|DELIVRD", FORM),
        ("POST", b"", b"sms_id=1&content=0912345678|a|DELIVRD", FORM),
        ("POST", b"", b"sms_id=1&content=0912345678 a DELIVRD", FORM),
        ("POST", b"", b"sms_id=1&content=0912345678|a|t|DELIVRD|x", FORM),
        ("POST", b"", b"sms_id=1&content=|a|t|DELIVRD", FORM),
        ("POST", b"", b"content=0912345678 a1", FORM),
        ("POST", b"", b"content=0912345678|a1|t", FORM),
        ("POST", b"", b"sms_id=1&content=%FF%FE", FORM),
        ("POST", b"", b'{"content":"x"}', "application/json"),
        ("PUT", b"", b"sms_id=1&content=0912345678|a|t|DELIVRD", FORM),
    ],
)
def test_invalid_webhooks(method: str, query_bytes: bytes, body: bytes, content_type: str) -> None:
    with pytest.raises(InvalidWebhook):
        parse_webhook(method=method, query=query_bytes, body=body, content_type=content_type)


# -- robustness ---------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "post", "PUT"]),
    query_bytes=st.binary(max_size=200),
    body=st.binary(max_size=300),
    content_type=st.sampled_from([FORM, "", "text/plain", "multipart/form-data"]),
)
def test_parse_webhook_random_bytes(method: str, query_bytes: bytes, body: bytes, content_type: str) -> None:
    with contextlib.suppress(InvalidWebhook):
        parse_webhook(method=method, query=query_bytes, body=body, content_type=content_type)


record = st.lists(st.text(max_size=30), min_size=0, max_size=6).map(lambda xs: "|".join(xs))


@settings(max_examples=300, deadline=None)
@given(
    sms_id=st.one_of(st.none(), st.text(max_size=10)),
    records=st.lists(st.one_of(record, st.text(max_size=60)), max_size=4),
    code=st.one_of(st.none(), st.text(max_size=3)),
)
def test_parse_webhook_random_fields(sms_id: str | None, records: list[str], code: str | None) -> None:
    fields = {"content": ",".join(records)}
    if sms_id is not None:
        fields["sms_id"] = sms_id
    try:
        result = parse_webhook(
            method="POST", query=b"", body=urlencode(fields).encode(), content_type=FORM, two_way_code=code
        )
    except InvalidWebhook:
        return
    assert result.ack == OK


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.one_of(
        st.text(max_size=200),
        st.fixed_dictionaries({"stats": json_value, "error_code": json_value, "error_msg": json_value}).map(json.dumps),
        json_value.map(json.dumps),
    )
)
def test_reply_parsers_raise_only_formosms_errors(body: str) -> None:
    for parse in (lambda b: parse_send_reply(b, ("+886912345678",)), parse_credit_reply):
        with contextlib.suppress(FormosmsError):
            parse(body)
