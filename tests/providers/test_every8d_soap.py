"""EVERY8D SOAP (Web Services) API 2.1 codec and session, against the document's own samples.

Fixtures: ``tests/fixtures/every8d-soap`` (the inner ``…Result`` strings; see its README).
The fake service below answers SOAP envelopes the way an ASP.NET ``.asmx`` does.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote
from xml.sax.saxutils import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formosms.client import prepare_personalized, settle
from formosms.errors import (
    AuthenticationError,
    ConnectError,
    FormosmsError,
    InsufficientCredit,
    InvalidMessage,
    InvalidRequest,
    InvalidWebhook,
    MalformedResponse,
    NotFound,
    PartialFailure,
    ProviderUnavailable,
    Rejected,
)
from formosms.model import Attachment, Feature, Personalized, Status
from formosms.providers.base import MessageRef, OutboundMMS, OutboundSMS, from_dsn, registry
from formosms.providers.every8d_soap import (
    ERRORS,
    STATUS,
    Every8dSoap,
    content_xml,
    envelope,
    parse_connection,
    parse_status_xml,
    parse_webhook,
    soap_result,
)
from formosms.timefmt import TAIPEI
from formosms.transport import HttpRequest, Outcome
from tests.helpers import drive, fixture

KEY = "e9df35fce357589a8e78c44c3e2abcdd"  # 1.1 sample SESSION_KEY
UUID = "220478cc-8506-49b2-93b7-2505f651c12e"
CONNECTION = fixture("every8d-soap", "getConnection_result.xml")
SEND_RESULT = fixture("every8d-soap", "sendSMS_result.txt").strip()
STATUS_RESULT = fixture("every8d-soap", "getDeliveryStatus_result.xml")
TW = "+886912345678"
TW2 = "+886922333444"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
TEMPURI = "{http://tempuri.org/}"
BASE = "https://oms.every8d.com/API21/SOAP/"


def soap_reply(operation: str, inner: str, *, ns: str = SOAP12) -> str:
    """What an .asmx answers: the result string XML-escaped inside ``<…Result>``."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">'
        f'<soap:Body><{operation}Response xmlns="http://tempuri.org/"><{operation}Result>{escape(inner)}'
        f"</{operation}Result></{operation}Response></soap:Body></soap:Envelope>"
    )


def call_of(request: HttpRequest) -> tuple[str, dict[str, str]]:
    """The operation and its parameters, read back from the envelope (one XML decode)."""
    root = ET.fromstring(request.body() or b"")
    body = root.find(f"{{{SOAP12}}}Body")
    assert body is not None
    (element,) = list(body)
    operation = element.tag.removeprefix(TEMPURI)
    assert element.tag == TEMPURI + operation
    return operation, {child.tag.removeprefix(TEMPURI): child.text or "" for child in element}


class FakeService:
    """Answers by operation; records (operation, params) of every call."""

    def __init__(self, **handlers: str | Callable[[dict[str, str]], str]):
        self.handlers: dict[str, str | Callable[[dict[str, str]], str]] = {"getConnection": CONNECTION}
        self.handlers.update(handlers)
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> Outcome | str:
        operation, params = call_of(request)
        self.calls.append((operation, params))
        self.requests.append(request)
        handler = self.handlers[operation]
        inner = handler if isinstance(handler, str) else handler(params)
        return soap_reply(operation, inner)

    @property
    def operations(self) -> list[str]:
        return [op for op, _ in self.calls]


@pytest.fixture
def e8() -> Every8dSoap:
    return Every8dSoap("uid1", "s3cret-pw")


def connection(code: str, description: str = "x") -> str:
    return (
        f"<SMS><GET_CONNECTION><CODE>{code}</CODE><SESSION_KEY></SESSION_KEY>"
        f"<DESCRIPTION>{description}</DESCRIPTION></GET_CONNECTION></SMS>"
    )


def status_xml(n: int, total: int, status: str = "100", start: int = 0) -> str:
    rows = "".join(
        f"<SMS><NAME/><MOBILE>+8869{i + start:08d}   </MOBILE><SENT_TIME>2010/3/20 03:27:50</SENT_TIME>"
        f"<COST>1.00</COST><STATUS>{status}</STATUS></SMS>"
        for i in range(n)
    )
    return f'<SMS_LOG><CODE>0</CODE><GET_DELIVERY_STATUS COUNT="{total}">{rows}</GET_DELIVERY_STATUS></SMS_LOG>'


# -- the class -----------------------------------------------------------------------------------


def test_declared_capabilities() -> None:
    assert Every8dSoap.name == "every8d-soap" and registry()["every8d-soap"] is Every8dSoap
    assert Every8dSoap.default_base_url == "https://oms.every8d.com"
    assert Every8dSoap.max_recipients == 1000
    assert Every8dSoap.send_options == {"subject"}  # the callback URL is set up by EVERY8D (3.1)
    assert Feature.PERSONALIZED in Every8dSoap.features and Feature.MMS in Every8dSoap.features
    assert Feature.REPLIES_POLL not in Every8dSoap.features
    provider = from_dsn("every8d-soap://uid1:s3cret-pw@")
    assert isinstance(provider, Every8dSoap) and "s3cret-pw" not in repr(provider)


# -- envelopes and the two layers ----------------------------------------------------------------


def test_envelope_is_soap12_in_tempuri() -> None:
    request = Every8dSoap("u", "p").soap_request("getCredit", [("sessionKey", KEY)])
    assert request.method == "POST" and request.url == BASE + "SMS.asmx"
    assert request.all_headers() == {"Content-Type": "application/soap+xml; charset=utf-8"}
    assert call_of(request) == ("getCredit", {"sessionKey": KEY})


def test_envelope_escapes_every_value_once() -> None:
    """provider-notes: "One public client built envelopes without escaping and broke on < and &"."""
    text = "100% + & # ]]> < > \" ' a=b\n第二行 😀"
    raw = envelope("sendSMS", [("content", text)])
    assert b"&amp; # ]]&gt; &lt; &gt;" in raw
    root = ET.fromstring(raw)
    assert root.find(f".//{TEMPURI}content").text == text  # type: ignore[union-attr]


def test_result_is_read_from_12_and_11_envelopes() -> None:
    assert soap_result(soap_reply("sendSMS", SEND_RESULT), "sendSMS") == SEND_RESULT
    assert soap_result(soap_reply("sendSMS", SEND_RESULT, ns=SOAP11), "sendSMS") == SEND_RESULT
    assert soap_result(soap_reply("eraseBooking", ""), "eraseBooking") == ""


def test_fault_and_missing_result() -> None:
    fault = (
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Receiver'
        "</soap:Value></soap:Code><soap:Reason><soap:Text>Server was unable to process request."
        "</soap:Text></soap:Reason></soap:Fault></soap:Body></soap:Envelope>"
    )
    with pytest.raises(Rejected) as caught:
        soap_result(fault, "sendSMS")
    assert "unable to process" in str(caught.value)
    with pytest.raises(MalformedResponse):
        soap_result(soap_reply("getCredit", "1"), "sendSMS")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not xml",
        "<a><b></a>",
        '<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><x>&b;</x>',  # entity expansion
        '<!DOCTYPE x SYSTEM "http://evil/x.dtd"><x/>',
    ],
)
def test_hostile_or_broken_envelopes(body: str) -> None:
    with pytest.raises(MalformedResponse):
        soap_result(body, "getCredit")


def test_inner_xml_with_a_dtd_is_refused() -> None:
    inner = (
        '<!DOCTYPE SMS [<!ENTITY k "x">]>'
        "<SMS><GET_CONNECTION><CODE>0</CODE><SESSION_KEY>&k;</SESSION_KEY></GET_CONNECTION></SMS>"
    )
    with pytest.raises(MalformedResponse):
        parse_connection(soap_result(soap_reply("getConnection", inner), "getConnection"))


# -- session -------------------------------------------------------------------------------------


def test_connection_document_sample() -> None:
    """1.1: ``<?xml version=" 1.0" …?><SMS><GET_CONNECTION><CODE>0</CODE >`` and a spaced key."""
    assert parse_connection(CONNECTION) == KEY


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("-97", ProviderUnavailable),  # "系統忙碌中，請稍後再試"
        ("-100", AuthenticationError),  # "取得連線失敗，無此帳號"
        ("-101", AuthenticationError),  # "取得連線失敗，密碼錯誤"
        ("-999", AuthenticationError),  # "帳號已封鎖…認證錯誤超過 10 次將封鎖此服務"
        ("-5000", Rejected),
    ],
)
def test_failed_login_is_raised_once(e8: Every8dSoap, code: str, error: type[FormosmsError]) -> None:
    service = FakeService(getConnection=connection(code, "說明"))
    with pytest.raises(error) as caught:
        drive(e8.balance(), service)
    assert caught.value.code == code and "說明" in str(caught.value)
    assert service.operations == ["getConnection"]  # never retried: 10 failures lock the account
    assert service.calls[0][1] == {"userID": "uid1", "password": "s3cret-pw"}
    assert not e8.has_session


def test_login_is_lazy_and_reused(e8: Every8dSoap) -> None:
    service = FakeService(getCredit="2310.00")
    assert drive(e8.balance(), service) == Decimal("2310.00")
    assert drive(e8.balance(), service) == Decimal("2310.00")
    assert service.operations == ["getConnection", "getCredit", "getCredit"]
    assert [params.get("sessionKey") for _, params in service.calls[1:]] == [KEY, KEY]
    assert "closeConnection" not in service.operations  # never closed implicitly


def test_session_key_is_a_secret(e8: Every8dSoap) -> None:
    drive(e8.balance(), FakeService(getCredit="1"))
    assert KEY in e8.secrets and "s3cret-pw" in e8.secrets
    assert e8.redact(f"key={KEY}") == "key=***" and KEY not in repr(e8)
    assert KEY in e8.soap_request("getCredit", [("sessionKey", KEY)]).secrets


def test_malformed_login_reply_does_not_leak_the_password(e8: Every8dSoap) -> None:
    with pytest.raises(MalformedResponse) as caught:
        drive(e8.balance(), lambda r: "<oops s3cret-pw")
    assert "s3cret-pw" not in caught.value.body and "s3cret-pw" not in str(caught.value)


def test_session_gone_logs_in_again_once(e8: Every8dSoap) -> None:
    """1.2 "-301 Session 資料不存在，請重新登入。"."""
    answers = iter(["-301,Session 資料不存在，請重新登入。", "2310.00"])
    service = FakeService(getCredit=lambda p: next(answers))
    assert drive(e8.balance(), service) == Decimal("2310.00")
    assert service.operations == ["getConnection", "getCredit", "getConnection", "getCredit"]


def test_session_gone_twice_is_an_authentication_error(e8: Every8dSoap) -> None:
    service = FakeService(getCredit="-301, Session 資料不存在")
    with pytest.raises(AuthenticationError) as caught:
        drive(e8.balance(), service)
    assert caught.value.code == "-301"
    assert service.operations == ["getConnection", "getCredit", "getConnection", "getCredit"]


def test_relogin_failure_keeps_earlier_answers(e8: Every8dSoap) -> None:
    logins = iter([CONNECTION, connection("-97")])
    service = FakeService(
        getConnection=lambda p: next(logins),
        sendSMS=lambda p: SEND_RESULT if p["mobile"].startswith("+8869000") else "-301,gone",
    )
    numbers = (*tuple(f"+8869000{i:05d}" for i in range(1000)), TW)
    result = drive(e8.send(OutboundSMS(numbers, "hi")), service)
    assert len(result.accepted) == 1000
    assert isinstance(result.failed[0].error, ProviderUnavailable) and result.failed[0].recipient == TW


def test_concurrent_calls_share_one_relogin(e8: Every8dSoap) -> None:
    state = {"key": "old"}

    def login(params: dict[str, str]) -> str:
        state["key"] = "new" if state["key"] == "old" else state["key"]
        return connection("0").replace("<SESSION_KEY></SESSION_KEY>", f"<SESSION_KEY>{state['key']}</SESSION_KEY>")

    e8._session_key = "old"
    service = FakeService(
        getConnection=login,
        sendSMS=lambda p: SEND_RESULT if p["sessionKey"] == "new" else "-301,gone",
    )
    numbers = tuple(f"+8869{i:08d}" for i in range(2000))
    result = drive(e8.send(OutboundSMS(numbers, "hi")), service)
    assert service.operations == ["sendSMS", "sendSMS", "getConnection", "sendSMS", "sendSMS"]
    assert len(result.accepted) == 2000


def test_close_session(e8: Every8dSoap) -> None:
    """1.3 closeConnection: "1" 關閉連線成功, "-1" 關閉連線失敗; only when asked."""
    assert drive(e8.close_session(), FakeService()) is False  # no session: no request
    service = FakeService(getCredit="1", closeConnection="1")
    drive(e8.balance(), service)
    assert drive(e8.close_session(), service) is True
    assert service.calls[-1] == ("closeConnection", {"sessionKey": KEY})
    assert not e8.has_session
    drive(e8.balance(), service)
    assert drive(e8.close_session(), FakeService(closeConnection="-1")) is False


# -- sends ---------------------------------------------------------------------------------------


def test_send_uses_send_sms_without_validity(e8: Every8dSoap) -> None:
    """1.2 sendSMS(sessionKey, subject, content, mobile, sendTime)."""
    service = FakeService(sendSMS=SEND_RESULT)
    message = OutboundSMS(
        (TW, TW2), "測試 <&>", schedule_at=datetime(2009, 1, 31, 7, 30, tzinfo=UTC), options={"subject": "s&"}
    )
    result = settle(drive(e8.send(message), service))
    operation, params = service.calls[1]
    assert operation == "sendSMS" and service.requests[1].url == BASE + "SMS.asmx"
    assert list(params) == ["sessionKey", "subject", "content", "mobile", "sendTime"]
    assert params == {
        "sessionKey": KEY,
        "subject": "s&",
        "content": "測試 <&>",
        "mobile": f"{TW},{TW2}",
        "sendTime": "20090131153000",
    }
    assert result.batch_id == UUID and result.balance == Decimal("1230.00") and result.cost == Decimal("4.0")
    assert [m.message_id for m in result.messages] == [UUID, UUID]


def test_send_with_validity_uses_send_message(e8: Every8dSoap) -> None:
    """2.2 sendMessage(…, retryTime) "簡訊有效期限，單位：分鐘"."""
    service = FakeService(sendMessage=SEND_RESULT)
    drive(e8.send(OutboundSMS((TW,), "hi", validity=timedelta(hours=2))), service)
    operation, params = service.calls[1]
    assert operation == "sendMessage" and params["retryTime"] == "120" and params["sendTime"] == ""


def test_send_splits_and_reports_partial_failure(e8: Every8dSoap) -> None:
    numbers = tuple(f"+8869{i:08d}" for i in range(2500))
    replies = iter([SEND_RESULT, "-99, 主機端發生不明錯誤", f"0.00,0,0,500,{UUID}"])
    service = FakeService(sendSMS=lambda p: next(replies))
    result = drive(e8.send(OutboundSMS(numbers, "x")), service)
    assert [len(p["mobile"].split(",")) for op, p in service.calls if op == "sendSMS"] == [1000, 1000, 500]
    assert len(result.accepted) == 1000
    assert all(isinstance(m.error, ProviderUnavailable) for m in result.messages[1000:2000])
    assert all(isinstance(m.error, InsufficientCredit) for m in result.messages[2000:])
    assert result.batch_ids == (UUID, UUID)
    with pytest.raises(PartialFailure):
        settle(result)


def test_send_transport_failure_is_kept_per_recipient(e8: Every8dSoap) -> None:
    def answer(request: HttpRequest) -> Outcome | str:
        if call_of(request)[0] == "getConnection":
            return soap_reply("getConnection", CONNECTION)
        return ConnectError("down", provider="every8d-soap")

    result = drive(e8.send(OutboundSMS((TW,), "x")), answer)
    assert isinstance(result.messages[0].error, ConnectError)


def test_validate_refuses_what_xml_cannot_carry(e8: Every8dSoap) -> None:
    with pytest.raises(InvalidMessage) as caught:
        e8.validate(OutboundSMS((TW,), "bell \x07"))
    assert caught.value.field == "text"
    with pytest.raises(InvalidMessage) as caught:
        e8.validate(OutboundSMS((TW,), "ok", options={"subject": "\x00"}))
    assert caught.value.field == "subject"
    e8.validate(OutboundSMS((TW,), "tab\tand\nnewline ]]> <&> 😀"))


# -- personalized --------------------------------------------------------------------------------


def test_content_xml_matches_the_document_sample() -> None:
    """2.3 ContentXML: two USER elements, CDATA text with ``<>@#$$%^&*()``."""
    doc = ET.fromstring(fixture("every8d-soap", "contentXML_sample.xml"))
    items = [
        Personalized(user.get("MOBILE", ""), user.text or "", user.get("NAME", ""), user.get("EMAIL", ""))
        for user in doc
    ]
    ours = ET.fromstring(content_xml(items))
    assert [(u.attrib, u.text) for u in ours] == [(u.attrib, u.text) for u in doc]
    assert content_xml(items[:1]).startswith(
        '<REPS><USER NAME="TEST" MOBILE="+886900000001" EMAIL="" SENDTIME=""><![CDATA[ok ok\njava hello<>'
    )


def test_content_xml_splits_cdata_end_and_quotes_attributes() -> None:
    text = "a]]>b]]]]>c"
    item = Personalized(
        TW, text, name='A "B" <C> & D\n', email="x@y.tw", send_at=datetime(2009, 1, 31, 7, 30, tzinfo=UTC)
    )
    xml = content_xml([item])
    assert "<![CDATA[a]]]]><![CDATA[>b]]]]]]><![CDATA[>c]]>" in xml
    (user,) = ET.fromstring(xml)
    assert user.text == text
    assert user.attrib == {
        "NAME": 'A "B" <C> & D\n',
        "MOBILE": TW,
        "EMAIL": "x@y.tw",
        "SENDTIME": "20090131153000",
    }


def test_send_personalized(e8: Every8dSoap) -> None:
    """2.3 sendParamSMS(sessionKey, subject, contentXML, sendTime); MOBILE "請務必轉為+886933123456"."""
    service = FakeService(sendParamSMS=SEND_RESULT)
    items = prepare_personalized(e8, [Personalized("0933123456", "嗨 ]]> <b>", name="王")])
    result = settle(drive(e8.send_personalized(items, subject="活動"), service))
    operation, params = service.calls[1]
    assert operation == "sendParamSMS" and list(params) == ["sessionKey", "subject", "contentXML", "sendTime"]
    assert params["contentXML"] == content_xml(items)  # escaped once in the envelope, read back intact
    (user,) = ET.fromstring(params["contentXML"])
    assert user.get("MOBILE") == "+886933123456" and user.text == "嗨 ]]> <b>"
    assert result.messages[0].recipient == "+886933123456" and result.batch_id == UUID


def test_personalized_splits_by_1000(e8: Every8dSoap) -> None:
    items = [Personalized(f"+8869{i:08d}", f"t{i}") for i in range(1001)]
    service = FakeService(sendParamSMS=SEND_RESULT)
    result = drive(e8.send_personalized(items), service)
    assert [len(ET.fromstring(p["contentXML"])) for op, p in service.calls if op == "sendParamSMS"] == [
        1000,
        1,
    ]
    assert len(result.messages) == 1001


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (Personalized(TW, "bad \x01"), "messages[0].text"),
        (Personalized(TW, "ok", name="名" * 51), "messages[0].name"),  # NAME 長度 50
    ],
)
def test_personalized_refused_locally(e8: Every8dSoap, item: Personalized, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        next(e8.send_personalized([item]))
    assert caught.value.field == field


def test_personalized_is_unsupported_over_http() -> None:
    from formosms.errors import UnsupportedFeature
    from formosms.providers.every8d import Every8d

    with pytest.raises(UnsupportedFeature):
        prepare_personalized(Every8d("u", "p"), [Personalized(TW, "x")])


# -- MMS -----------------------------------------------------------------------------------------


def test_send_mms(e8: Every8dSoap) -> None:
    """5.1 sendMMS on MMS.asmx; attachment "(binary base64 encoded + urlEncode)"; jpg/jpeg/png."""
    import base64

    data = bytes(range(256)) * 4  # base64 with + / and = padding
    message = OutboundMMS((TW,), "看圖", Attachment(data, "PNG"), "主旨")
    service = FakeService(sendMMS=SEND_RESULT)
    result = drive(e8.send_mms(message), service)
    operation, params = service.calls[1]
    assert operation == "sendMMS" and service.requests[1].url == BASE + "MMS.asmx"
    assert list(params) == [
        "sessionKey",
        "subject",
        "content",
        "mobile",
        "sendTime",
        "retryTime",
        "attachment",
        "type",
    ]
    assert "+" not in params["attachment"] and "%2B" in params["attachment"]
    assert base64.b64decode(unquote(params["attachment"]), validate=True) == data
    assert params["type"] == "png" and params["retryTime"] == "" and params["subject"] == "主旨"
    assert result.batch_id == UUID


def test_soap_mms_refuses_gif(e8: Every8dSoap) -> None:
    with pytest.raises(InvalidMessage) as caught:
        next(e8.send_mms(OutboundMMS((TW,), "t", Attachment(b"GIF89a", "gif"), "s")))
    assert caught.value.field == "attachment"


# -- status --------------------------------------------------------------------------------------


def test_status_document_sample() -> None:
    """3.2: ``<GET_DELIVERY_STATUS COUNT="1230"><SMS>< NAME>Roger</NAME>…`` (``< NAME>`` tolerated)."""
    total, (roger,) = parse_status_xml(STATUS_RESULT, UUID)
    assert total == 1230
    assert roger.recipient == "+886933123123" and roger.status is Status.DELIVERED
    assert roger.provider_status == "100" and roger.cost == Decimal("1.00")
    assert roger.done_at == datetime(2010, 3, 20, 3, 27, 50, tzinfo=TAIPEI)  # "2010/3/20 03:27:50"
    assert roger.batch_id == UUID and roger.message_id == UUID and roger.provider == "every8d-soap"
    assert roger.raw["replies"] == [{"time": "2010/03/23 12:05:09", "message": "回覆簡訊"}]
    assert roger.raw["NAME"] == "Roger"


def test_mms_status_document_sample() -> None:
    total, reports = parse_status_xml(fixture("every8d-soap", "getMMSDeliveryStatus_result.xml"), UUID)
    assert total == 1230 and len(reports) == 1  # the "...." row is a placeholder
    assert reports[0].raw["replies"] == []


def test_status_document_sample_as_printed_is_not_xml() -> None:
    """The printed 3.2 sample stops after ``<SMS>....</SMS>``: no reply could look like that."""
    with pytest.raises(MalformedResponse):
        parse_status_xml(fixture("every8d-soap", "getDeliveryStatus_doc_truncated.xml"), UUID)


def test_status_trims_padded_mobile_and_reads_errors() -> None:
    """provider-notes: "MOBILE values in delivery status come padded with trailing spaces"."""
    _, (report,) = parse_status_xml(status_xml(1, 1), "b")
    assert report.recipient == "+886900000000"
    with pytest.raises(AuthenticationError):
        parse_status_xml("<SMS_LOG><CODE>-100</CODE><DESCRIPTION>帳號錯誤</DESCRIPTION></SMS_LOG>", "b")
    with pytest.raises(ProviderUnavailable):
        parse_status_xml("-99,主機端發生不明錯誤", "b")
    assert parse_status_xml("", "b") == (0, [])
    assert parse_status_xml("<SMS_LOG><CODE>0</CODE></SMS_LOG>", "b") == (0, [])


@pytest.mark.parametrize(
    "text",
    [
        "<SMS_LOG/>",
        '<SMS_LOG><CODE>0</CODE><GET_DELIVERY_STATUS COUNT="x"/></SMS_LOG>',
        "<SMS_LOG><CODE>0</CODE><GET_DELIVERY_STATUS><SMS><MOBILE>1</MOBILE><COST>z</COST></SMS></GET_DELIVERY_STATUS></SMS_LOG>",
        "ok",
    ],
)
def test_malformed_status(text: str) -> None:
    with pytest.raises(MalformedResponse):
        parse_status_xml(text, "b")


def test_status_table_is_shared_and_complete() -> None:
    for line in fixture("every8d-soap", "status_codes.tsv").splitlines()[1:]:
        code = line.split("\t")[0]
        _, (report,) = parse_status_xml(
            f'<SMS_LOG><CODE>0</CODE><GET_DELIVERY_STATUS COUNT="1"><SMS><MOBILE>{TW}</MOBILE>'
            f"<STATUS>{code}</STATUS></SMS></GET_DELIVERY_STATUS></SMS_LOG>",
            "b",
        )
        assert report.status is STATUS[code] and report.provider_status == code
    _, (unknown,) = parse_status_xml(status_xml(1, 1, status="4242"), "b")
    assert unknown.status is Status.UNKNOWN and unknown.provider_status == "4242"
    assert "-301" in ERRORS and ERRORS["-999"][0] is AuthenticationError


def test_status_pages_until_count(e8: Every8dSoap) -> None:
    """3.2 pageNo: "可傳入空字串…第 1001~2000 筆資料時，PageNo 傳入 "2""."""
    pages = {
        "": status_xml(1000, 2500),
        "2": status_xml(1000, 2500, start=1000),
        "3": status_xml(500, 2500, "0"),
    }
    service = FakeService(getDeliveryStatus=lambda p: pages[p["pageNo"]])
    reports = drive(e8.status([MessageRef(batch_id="b1")]), service)
    assert [p["pageNo"] for op, p in service.calls if op == "getDeliveryStatus"] == ["", "2", "3"]
    assert [p["batchID"] for op, p in service.calls[1:]] == ["b1"] * 3
    assert len(reports) == 2500 and reports[-1].status is Status.SUBMITTED


def test_mms_status_and_session_in_status(e8: Every8dSoap) -> None:
    answers = iter(["<SMS_LOG><CODE>-301</CODE></SMS_LOG>", status_xml(1, 1, "700")])
    service = FakeService(getMMSDeliveryStatus=lambda p: next(answers))
    (report,) = drive(e8.status([MessageRef(batch_id="b1")], mms=True), service)
    assert report.status is Status.SUBMITTED
    assert service.operations == [
        "getConnection",
        "getMMSDeliveryStatus",
        "getConnection",
        "getMMSDeliveryStatus",
    ]
    assert service.requests[1].url == BASE + "MMS.asmx"


def test_status_error_is_raised(e8: Every8dSoap) -> None:
    with pytest.raises(InvalidRequest):
        next(e8.status([MessageRef(recipient=TW)]))
    service = FakeService(getDeliveryStatus="<SMS_LOG><CODE>-97</CODE></SMS_LOG>")
    with pytest.raises(ProviderUnavailable):
        drive(e8.status([MessageRef(batch_id="b1")]), service)


# -- balance and cancel --------------------------------------------------------------------------


def test_balance_document_sample(e8: Every8dSoap) -> None:
    """4.1 getCredit "回傳餘額。範例：2310.00"."""
    service = FakeService(getCredit=fixture("every8d-soap", "getCredit_result.txt"))
    assert drive(e8.balance(), service) == Decimal("2310.00")
    assert service.calls[1] == ("getCredit", {"sessionKey": KEY})


def test_cancel(e8: Every8dSoap) -> None:
    """4.2 eraseBooking / 4.3 eraseMMSBooking: "a,b" or 空值 (查無資料)."""
    service = FakeService(eraseBooking="2,2.0", eraseMMSBooking="")
    result = drive(e8.cancel([MessageRef(batch_id=UUID)]), service)
    assert (result.canceled, result.refunded) == (2, Decimal("2.0"))
    assert service.calls[1] == ("eraseBooking", {"sessionKey": KEY, "batchID": UUID})
    assert service.requests[1].url == BASE + "SMS.asmx"
    with pytest.raises(NotFound):
        drive(e8.cancel([MessageRef(batch_id=UUID)], mms=True), service)
    assert service.calls[-1][0] == "eraseMMSBooking" and service.requests[-1].url == BASE + "MMS.asmx"


def test_estimate_is_the_http_apis(e8: Every8dSoap) -> None:
    assert e8.estimate([TW, "+12025550123"], "a" * 200).points == Decimal(3 + 9)


# -- callbacks -----------------------------------------------------------------------------------


def test_callback_sample_with_userid() -> None:
    """3.1 "report.aspx?BatchID=xxxx&RM=xxxx&RT=xxx&STATUS=xxx&SM=xxxx&MR=xxxx&USERID=xxxx"."""
    sample = fixture("every8d-soap", "callback_query.txt").strip().encode()
    (report,) = parse_webhook(method="GET", query=sample, body=b"", content_type="").reports
    assert report.provider == "every8d-soap" and report.raw["USERID"] == "xxxx"
    result = parse_webhook(
        method="GET",
        query=b"BatchID=b&RM=%2B886961295288&RT=20090210120000&STATUS=999&SM=ok&USERID=u1",
        body=b"",
        content_type="",
    )
    (message,) = result.replies
    assert message.provider == "every8d-soap" and message.text == "ok" and message.reply_to == "b"
    assert (result.ack.status, result.ack.body) == (200, b"")
    with pytest.raises(InvalidWebhook):
        parse_webhook(method="GET", query=b"", body=b"", content_type="")


# -- nothing but FormosmsError escapes -----------------------------------------------------------

xmlish = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "<SMS_LOG>",
                "</SMS_LOG>",
                "<CODE>",
                "</CODE>",
                "0",
                "-301",
                '<GET_DELIVERY_STATUS COUNT="3">',
                "</GET_DELIVERY_STATUS>",
                "<SMS>",
                "</SMS>",
                "<MOBILE>",
                "</MOBILE>",
                "<STATUS>",
                "</STATUS>",
                "<COST>",
                "</COST>",
                "<SESSION_KEY>",
                "</SESSION_KEY>",
                "<GET_CONNECTION>",
                "</GET_CONNECTION>",
                "< NAME>",
                "&amp;",
                "&",
                "<![CDATA[",
                "]]>",
                "x",
                " ",
                "1.0",
                "<?xml version='1.0'?>",
            ]
        ),
        max_size=30,
    ).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(text=xmlish)
def test_soap_parsers_raise_only_formosms_errors(text: str) -> None:
    for parse in (
        lambda: soap_result(text, "getCredit"),
        lambda: soap_result(soap_reply("getCredit", text), "getCredit"),
        lambda: parse_connection(text),
        lambda: parse_status_xml(text, "b"),
    ):
        with contextlib.suppress(FormosmsError):
            parse()


xml_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00\ufffe\uffff"), max_size=60).filter(
    lambda t: not any(ord(c) < 32 and c not in "\t\n\r" for c in t)
)


@settings(max_examples=300, deadline=None)
@given(text=xml_text, name=xml_text)
def test_any_text_survives_both_layers(text: str, name: str) -> None:
    xml = content_xml([Personalized(TW, text, name=name)])
    raw = envelope("sendParamSMS", [("contentXML", xml), ("subject", text)])
    root = ET.fromstring(raw)
    assert (root.find(f".//{TEMPURI}subject").text or "") == text  # type: ignore[union-attr]
    inner = root.find(f".//{TEMPURI}contentXML").text or ""  # type: ignore[union-attr]
    (user,) = ET.fromstring(inner)
    assert (user.text or "") == text and user.get("NAME") == name


def test_real_driver_posts_soap12(e8: Every8dSoap) -> None:
    """Through httpx (MockTransport): the envelope, its content type, and the session."""
    import httpx

    from formosms.transport import SyncDriver

    service = FakeService(getCredit="2310.00")
    types: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        types.append(request.headers["content-type"])
        fake = HttpRequest("POST", str(request.url), content=request.content)
        body = service(fake)
        assert isinstance(body, str)
        return httpx.Response(200, text=body, headers={"content-type": "application/soap+xml; charset=utf-8"})

    driver = SyncDriver("every8d-soap", 5, client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert driver.run(e8.balance()) == Decimal("2310.00")
    assert types == ["application/soap+xml; charset=utf-8"] * 2
    assert service.operations == ["getConnection", "getCredit"]
