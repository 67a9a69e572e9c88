"""The SMSGo emulator, driven over HTTP as a client would, against ``shared/specs/smsgo-api.md``.

Each test quotes the clean reading (section + a short quote) for what it checks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.sandbox import SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.smsgo import SMSGoEmulator
from formosms.timefmt import TAIPEI
from tests.helpers import wait_for

USER, PASSWORD, API_KEY = "demo", "demo-secret", "demo-api-key"
MAGIC = "magicid=tccrd_sms_gateway_rpack"


@dataclass
class Env:
    url: str
    http: httpx.Client

    def send(self, **fields: str) -> httpx.Response:
        return self.http.get("/smsgo/sms_gw/sendsms.aspx", params={"username": USER, "password": PASSWORD, **fields})

    def call(self, page: str, **fields: str) -> httpx.Response:
        return self.http.get(f"/smsgo/sms_gw/{page}", params={"username": USER, "password": PASSWORD, **fields})

    def messages(self) -> list[dict[str, Any]]:
        return self.http.get("/_sandbox/smsgo/messages").json()  # type: ignore[no-any-return]

    def balance(self, user: str = USER) -> int:
        return int(self.http.get("/_sandbox").json()["smsgo"]["accounts"][user])

    def account(self, **values: Any) -> None:
        self.http.post("/_sandbox/smsgo/accounts", json=values).raise_for_status()

    def faults(self, **values: Any) -> None:
        self.http.post("/_sandbox/smsgo/faults", json=values).raise_for_status()

    def config(self, **values: Any) -> None:
        self.http.post("/_sandbox/config", json=values).raise_for_status()


def start(seed: int = 7) -> tuple[ServerThread, Env]:
    sandbox = create_sandbox(SandboxConfig(seed=seed, delivery_delay=0.05), emulators=[SMSGoEmulator])
    server = ServerThread(sandbox.app).start()
    return server, Env(server.url, httpx.Client(base_url=server.url, timeout=10))


@pytest.fixture(scope="module")
def served() -> Iterator[Env]:
    server, env = start()
    try:
        yield env
    finally:
        env.http.close()
        server.stop()


@pytest.fixture
def env(served: Env) -> Env:
    """The module's sandbox, back to a clean state: no messages, no faults, a full demo account."""
    served.http.post("/_sandbox/reset").raise_for_status()
    served.config(delivery_delay=0.05, outcome_mix={"delivered": 1.0})
    served.account(username=USER, password=PASSWORD, points=100000, api_keys=[API_KEY])
    return served


@dataclass
class Receiver:
    """A customer's web server: records every request, answers with ``respond``."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    respond: Callable[[dict[str, str]], Response] = lambda query: PlainTextResponse("ok")
    url: str = ""

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            query = dict(request.query_params)
            self.calls.append({"path": request.url.path, "query": query, "method": request.method})
            return self.respond(query)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with ServerThread(receiver.app()) as server:
        receiver.url = server.url
        yield receiver


def lines(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200
    return dict(line.split("=", 1) for line in response.text.splitlines() if line)


def ack(query: dict[str, str]) -> Response:
    return PlainTextResponse(f"{MAGIC}\nmsgid={query['msgid']}\n")


def later(hours: float = 1) -> str:
    return (datetime.now(TAIPEI) + timedelta(hours=hours)).strftime("%Y/%m/%d %H:%M:%S")


# -- §1 send -------------------------------------------------------------------------------


def test_send_plain_reply(env: Env) -> None:
    """§1 Reply: "msgid=…\\nstatuscode=0\\nstatusstr=OK\\npoint=1"; one msgid of 15–16 digits."""
    response = env.send(dstaddr="0988123456", encoding="BIG5", smbody="簡訊測試")
    reply = lines(response)
    assert response.text.startswith("msgid=") and "\r" not in response.text
    assert reply["statuscode"] == "0" and reply["statusstr"] == "OK" and reply["point"] == "1"
    assert reply["msgid"].isdigit() and len(reply["msgid"]) == 16
    [message] = env.messages()
    assert message["recipient"] == "0988123456" and message["text"] == "簡訊測試"
    assert message["message_id"] == reply["msgid"] and message["points"] == "1"
    assert env.balance() == 100000 - 1


def test_send_json_reply(env: Env) -> None:
    """§1 rtype=JSON: {"result":{"msgid":1504280910499665,"statuscode":"0","statusstr":"OK","point":1}}."""
    response = env.send(dstaddr="0988123456", smbody="hello", encoding="ASCII", rtype="JSON")
    body = response.json()
    msgid = body["result"]["msgid"]
    assert isinstance(msgid, int) and len(str(msgid)) == 16
    assert response.text == f'{{"result":{{"msgid":{msgid},"statuscode":"0","statusstr":"OK","point":1}}}}'


def test_send_xml_answers_plain_text(env: Env) -> None:
    """§1 "The XML shape is not documented": the emulator answers plain text."""
    assert lines(env.send(dstaddr="0988123456", smbody="hi", rtype="XML"))["statuscode"] == "0"


def test_send_by_post_form_and_api_key(env: Env) -> None:
    """§1 "The official iOS sample also POSTs form bodies"; "password is the account password
    or the account's API Key"."""
    response = env.http.post(
        "/smsgo/sms_gw/sendsms.aspx",
        data={"username": USER, "password": API_KEY, "dstaddr": "0988123456", "smbody": "測試 test"},
    )
    assert lines(response)["statuscode"] == "0"
    assert env.messages()[0]["text"] == "測試 test"


def test_default_encoding_is_big5(env: Env) -> None:
    """§1 encoding: "one of BIG5 (default), …"."""
    env.send(dstaddr="0988123456", smbody="hi")
    assert env.messages()[0]["extra"]["encoding"] == "BIG5"


def test_page_names_are_case_insensitive(env: Env) -> None:
    """IIS (.asp/.aspx) pages: the names used across the document vary in case (queryBulk.asp)."""
    assert lines(env.call("SendSMS.aspx", dstaddr="0988123456", smbody="x"))["statuscode"] == "0"
    assert env.call("nothing.asp").status_code == 404


def test_many_recipients_share_one_msgid(env: Env) -> None:
    """§1 dstaddr: "Up to 50 numbers separated by commas"; FAQ 2."""
    numbers = [f"09120000{i:02d}" for i in range(50)]
    reply = lines(env.send(dstaddr=",".join(numbers), smbody="hi"))
    assert reply["statuscode"] == "0" and reply["point"] == "50"
    stored = env.messages()
    assert [m["recipient"] for m in stored] == numbers
    assert {m["message_id"] for m in stored} == {reply["msgid"]}


# -- table 1 errors ------------------------------------------------------------------------


def test_empty_body_is_cgi_string_error(env: Env) -> None:
    """FAQ 7 / §1: "an empty body gives msgid=-1, statuscode=-1, statusstr=CGI string error!!, point=0"."""
    response = env.send(dstaddr="0988123456", smbody="")
    assert response.text == "msgid=-1\nstatuscode=-1\nstatusstr=CGI string error!!\npoint=0\n"
    assert env.messages() == [] and env.balance() == 100000


@pytest.mark.parametrize("missing", ["username", "password", "dstaddr"])
def test_missing_fields_are_cgi_string_error(env: Env, missing: str) -> None:
    """§8 -1: "CGI string error or unknown (malformed or missing parameters)"."""
    params = {"username": USER, "password": PASSWORD, "dstaddr": "0988123456", "smbody": "x"}
    del params[missing]
    reply = lines(env.http.get("/smsgo/sms_gw/sendsms.aspx", params=params))
    assert reply["statuscode"] == "-1" and reply["msgid"] == "-1"


def test_json_error_reply(env: Env) -> None:
    """§1: "On error statuscode is negative … and msgid is negative too" (JSON: msgid a number)."""
    body = env.send(dstaddr="0988123456", smbody="", rtype="JSON").json()
    assert body == {"result": {"msgid": -1, "statuscode": "-1", "statusstr": "CGI string error!!", "point": 0}}


@pytest.mark.parametrize(
    ("username", "password"), [("demo", "wrong"), ("nobody", "demo-secret"), ("demo", "demo-api-keyX")]
)
def test_wrong_credentials_are_authorisation_error(env: Env, username: str, password: str) -> None:
    """§8 -2: "authorisation error (account / password / IP not allowed)"."""
    response = env.http.get(
        "/smsgo/sms_gw/sendsms.aspx",
        params={"username": username, "password": password, "dstaddr": "0988123456", "smbody": "x"},
    )
    assert lines(response) == {
        "msgid": "-2",
        "statuscode": "-2",
        "statusstr": "Authorization error",
        "point": "0",
    }


def test_ip_not_allowed_is_authorisation_error(env: Env) -> None:
    """§9: "calls from a non-listed IP fail with -2"."""
    env.account(username="locked", password="pw", allowed_ips=["10.9.9.9"])
    reply = lines(
        env.http.get(
            "/smsgo/sms_gw/sendsms.aspx",
            params={"username": "locked", "password": "pw", "dstaddr": "0988123456", "smbody": "x"},
        )
    )
    assert reply["statuscode"] == "-2"
    env.account(username="open", password="pw", allowed_ips=["127.0.0.1"])
    reply = lines(
        env.http.get(
            "/smsgo/sms_gw/sendsms.aspx",
            params={"username": "open", "password": "pw", "dstaddr": "0988123456", "smbody": "x"},
        )
    )
    assert reply["statuscode"] == "0"


def test_disabled_account_is_closed_user(env: Env) -> None:
    """§8 -6: "closed user"."""
    env.account(username="closed", password="pw", enabled=False)
    reply = lines(
        env.http.get(
            "/smsgo/sms_gw/sendsms.aspx",
            params={"username": "closed", "password": "pw", "dstaddr": "0988123456", "smbody": "x"},
        )
    )
    assert reply["statuscode"] == "-6" and reply["msgid"] == "-6"


@pytest.mark.parametrize("encoding", ["UTF8", "BIG-5", "GSM"])
def test_unknown_encoding(env: Env, encoding: str) -> None:
    """§1 encoding "one of BIG5 … PUSH"; §8 -7 "invalid encoding"."""
    assert lines(env.send(dstaddr="0988123456", smbody="x", encoding=encoding))["statuscode"] == "-7"


@pytest.mark.parametrize(
    "number", ["0288123456", "098812345", "+886988123456", "8613681912700", "+8699", "09881234567"]
)
def test_bad_recipient(env: Env, number: str) -> None:
    """§1 dstaddr: "Taiwan: 09 + 8 digits … International: + then country code then number"; §8 -5."""
    assert lines(env.send(dstaddr=f"0988123456,{number}", smbody="x"))["statuscode"] == "-5"
    assert env.messages() == []


def test_unencoded_plus_is_a_bad_recipient(env: Env) -> None:
    """§1: international numbers go as "%2b8613681912700 on the wire"; a literal "+" in a query
    string decodes to a space, so " 8613681912700" is refused (-5)."""
    response = env.http.get(
        f"/smsgo/sms_gw/sendsms.aspx?username={USER}&password={PASSWORD}&dstaddr=+8613681912700&smbody=x"
    )
    assert lines(response)["statuscode"] == "-5"
    # and the double-encoded form "%252b…" arrives as "%2b…": refused too
    assert lines(env.send(dstaddr="%2b8613681912700", smbody="x"))["statuscode"] == "-5"


@pytest.mark.parametrize("count", [51, 0])
def test_recipient_amount(env: Env, count: int) -> None:
    """§8 -9: "invalid msisdn amount (number of recipients out of range)"; at most 50 (§1)."""
    dstaddr = ",".join(["0988123456"] * count) or ","
    assert lines(env.send(dstaddr=dstaddr, smbody="x"))["statuscode"] == "-9"


def test_not_enough_points_charges_nothing(env: Env) -> None:
    """§8 -8: "not enough points"."""
    env.account(username="poor", password="pw", points=2)
    params = {
        "username": "poor",
        "password": "pw",
        "dstaddr": "0988123456,0988123457,0988123458",
        "smbody": "x",
    }
    reply = lines(env.http.get("/smsgo/sms_gw/sendsms.aspx", params=params))
    assert reply == {"msgid": "-8", "statuscode": "-8", "statusstr": "Not enough points", "point": "0"}
    assert env.balance("poor") == 2 and env.messages() == []


@pytest.mark.parametrize("dlvtime", ["2030-01-01 10:00:00", "20300101100000", "2030/13/01 10:00:00", "tomorrow"])
def test_malformed_dlvtime(env: Env, dlvtime: str) -> None:
    """§1 dlvtime: "format YYYY/MM/DD hh24:mm:ss (Taiwan time)"; anything else is -1."""
    assert lines(env.send(dstaddr="0988123456", smbody="x", dlvtime=dlvtime))["statuscode"] == "-1"


# -- lengths and points --------------------------------------------------------------------


def test_single_sms_is_truncated(env: Env) -> None:
    """§1 note 1: "BIG5/ASCII/UCS2 are single-part only: text beyond the limit is truncated by SMSGo"
    (70 characters with any Chinese, 160 pure English)."""
    chinese = "測" * 100
    assert lines(env.send(dstaddr="0988123456", smbody=chinese, encoding="UCS2"))["point"] == "1"
    english = "a" * 200
    assert lines(env.send(dstaddr="0988123457", smbody=english, encoding="ASCII"))["point"] == "1"
    exact = "b" * 160
    assert lines(env.send(dstaddr="0988123458", smbody=exact, encoding="PASCII"))["point"] == "1"
    first, second, third = env.messages()
    assert first["text"] == "測" * 70 and first["extra"]["truncated"] is True
    assert second["text"] == "a" * 160 and second["extra"]["truncated"] is True
    assert third["text"] == exact and "truncated" not in third["extra"]


@pytest.mark.parametrize(
    ("encoding", "text", "points"),
    [
        ("LBIG5", "測" * 70, "1"),
        ("LBIG5", "測" * 71, "2"),
        ("LUCS2", "測" * 330, "5"),
        ("LASCII", "a" * 160, "1"),
        ("LASCII", "a" * 300, "2"),
        ("LASCII", "a" * 330, "3"),
    ],
)
def test_long_sms_points(env: Env, encoding: str, text: str, points: str) -> None:
    """§1 smbody: "With LBIG5/LASCII/LUCS2: up to 330 characters" — one point per part (67/153)."""
    assert lines(env.send(dstaddr="0988123456", smbody=text, encoding=encoding))["point"] == points
    assert env.messages()[0]["text"] == text


def test_long_sms_beyond_330_is_truncated(env: Env) -> None:
    """§1 note 2: "Long SMS … carries at most 330 Chinese characters"."""
    assert lines(env.send(dstaddr="0988123456", smbody="測" * 400, encoding="LBIG5"))["point"] == "5"
    message = env.messages()[0]
    assert message["text"] == "測" * 330 and message["extra"]["truncated"] is True


def test_push_points(env: Env) -> None:
    """§1 note 3: "PUSH: smbody + wapurl together at most 88 bytes, a Chinese character counting 3
    bytes; beyond 88 bytes the system converts it to a long SMS and charges accordingly"."""
    short = lines(env.send(dstaddr="0988123456", encoding="PUSH", smbody="測試", wapurl="www.test.com"))
    assert short["point"] == "1"
    # 30 Chinese characters = 90 bytes: long; 30 + 12 = 42 characters -> 1 part of 67
    assert (
        lines(env.send(dstaddr="0988123456", encoding="PUSH", smbody="測" * 30, wapurl="www.test.com"))["point"] == "1"
    )
    # 80 Chinese characters + url = 92 characters -> 2 parts of 67
    assert (
        lines(env.send(dstaddr="0988123456", encoding="PUSH", smbody="測" * 80, wapurl="www.test.com"))["point"] == "2"
    )
    assert env.messages()[0]["extra"]["wapurl"] == "www.test.com"
    assert lines(env.send(dstaddr="0988123456", encoding="PUSH", smbody="no link"))["statuscode"] == "-1"


def test_international(env: Env) -> None:
    """§1 dstaddr: "%2b8613681912700 on the wire (86 = China, then 11 digits starting 13/15/18)";
    note 5: "International SMS: encoding may only be BIG5/ASCII/UCS2"."""
    reply = lines(env.send(dstaddr="+8613681912700", smbody="你好", encoding="UCS2"))
    assert reply["statuscode"] == "0" and reply["point"] == "1"  # no international price documented
    assert env.messages()[0]["recipient"] == "+8613681912700"
    assert lines(env.send(dstaddr="+8613681912700", smbody="x", encoding="LUCS2"))["statuscode"] == "-7"
    assert lines(env.send(dstaddr="+14155550123", smbody="x", encoding="PASCII"))["statuscode"] == "-7"


def test_replyurl_surcharge(env: Env, receiver: Receiver) -> None:
    """§1 replyurl: "costs extra: 1 more point per 10 messages"."""
    numbers = ",".join(f"09120000{i:02d}" for i in range(11))
    assert lines(env.send(dstaddr=numbers, smbody="x", replyurl=receiver.url + "/mo"))["point"] == "13"
    assert lines(env.send(dstaddr="0988123456", smbody="x", replyurl=receiver.url + "/mo"))["point"] == "2"
    # "Only with BIG5/ASCII/UCS2": ignored (no surcharge) with a long encoding
    assert lines(env.send(dstaddr="0988123456", smbody="x", encoding="LBIG5", replyurl="http://x/"))["point"] == "1"
    assert lines(env.send(dstaddr="0988123456", smbody="x", replyurl="http://x/" + "a" * 300))["statuscode"] == "-1"
    # note 4: "A valid replyurl turns on replies": not a URL, no replies and no surcharge
    assert lines(env.send(dstaddr="0988123456", smbody="x", replyurl="mailto:me"))["point"] == "1"


# -- schedule, cancel, queries -------------------------------------------------------------


def test_schedule_query_cancel_refund(env: Env) -> None:
    """§1 dlvtime "scheduled time, format YYYY/MM/DD hh24:mm:ss (Taiwan time)"; §5 "Cancel a
    scheduled send … treat a statuscode=0 as success"."""
    reply = lines(env.send(dstaddr="0988123456,0988123457", smbody="x", dlvtime=later()))
    msgid = reply["msgid"]
    assert env.balance() == 100000 - 2
    message = env.messages()[0]
    assert message["state"] == "scheduled"
    assert abs(message["send_at"] - (time.time() + 3600)) < 5
    assert env.call("query.asp", msgid=msgid, dstaddr="0988123456").text == "0|SCHEDULED|0988123456"

    cancel = lines(env.call("sendsms_cancel.asp", msgid=msgid))
    assert cancel == {"msgid": msgid, "statuscode": "0", "statusstr": "OK", "point": "2"}
    assert env.balance() == 100000
    assert {m["state"] for m in env.messages()} == {"canceled"}
    assert env.call("query.asp", msgid=msgid, dstaddr="0988123457").text == "-10|DELETED|0988123457"
    again = lines(env.call("sendsms_cancel.asp", msgid=msgid))
    assert again["statuscode"] == "-1" and again["msgid"] == "-1"


def test_cancel_json_and_unknown(env: Env) -> None:
    """§5: "treat a statuscode=0 (plain or JSON) as success, anything else as failure"."""
    msgid = lines(env.send(dstaddr="0988123456", smbody="x", dlvtime=later(2)))["msgid"]
    body = env.call("sendsms_cancel.asp", msgid=msgid, rtype="JSON").json()
    assert body == {"result": {"msgid": int(msgid), "statuscode": "0", "statusstr": "OK", "point": 1}}
    unknown = lines(env.call("sendsms_cancel.asp", msgid="1234567890123456"))
    assert unknown["statuscode"] == "-1" and unknown["statusstr"] == "Unknown msgid"
    assert lines(env.call("sendsms_cancel.asp"))["statuscode"] == "-1"
    assert lines(env.call("sendsms_cancel.asp", msgid=msgid, password="bad"))["statuscode"] == "-2"


def test_cancel_after_sending_fails(env: Env) -> None:
    """FAQ 6: "there is no way to recall messages once sent"."""
    msgid = lines(env.send(dstaddr="0988123456", smbody="x"))["msgid"]
    reply = lines(env.call("sendsms_cancel.asp", msgid=msgid))
    assert reply["statuscode"] == "-1" and env.balance() == 100000 - 1


def test_past_dlvtime_sends_now(env: Env) -> None:
    """§1 dlvtime: "Empty = now" — a time already past is sent at once as well."""
    past = (datetime.now(TAIPEI) - timedelta(hours=1)).strftime("%Y/%m/%d %H:%M:%S")
    assert lines(env.send(dstaddr="0988123456", smbody="x", dlvtime=past))["statuscode"] == "0"
    message = env.messages()[0]
    assert message["send_at"] is None
    wait_for(lambda: env.messages()[0]["state"] == "delivered")


def test_query_plain_and_json(env: Env) -> None:
    """§2: "Plain reply: statuscode|statusstr|phone (e.g. 0|DELIVRD|0988123456)"; JSON with the
    document's trailing comma and camelCase keys."""
    msgid = lines(env.send(dstaddr="0988123456", smbody="x"))["msgid"]
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    assert env.call("query.asp", msgid=msgid, dstaddr="0988123456").text == "0|DELIVRD|0988123456"
    response = env.call("query.asp", msgid=msgid, dstaddr="0988123456", rtype="JSON")
    assert response.text == (
        '{"results":{"result": [{"statusCode": "0","statusStr":"DELIVRD","cellphone":"0988123456"},]}}'
    )
    # the v6.4 example queries by msgid alone
    assert env.call("query.asp", msgid=msgid).text == "0|DELIVRD|0988123456"


def test_query_pending_and_unknown(env: Env) -> None:
    """§2 (state before a final one undocumented: 0|SENT); unknown msgid: §8 -1 "…or unknown"."""
    env.config(delivery_delay=30)
    msgid = lines(env.send(dstaddr="0988123456", smbody="x"))["msgid"]
    assert env.call("query.asp", msgid=msgid, dstaddr="0988123456").text == "0|SENT|0988123456"
    assert env.call("query.asp", msgid=msgid, dstaddr="0988000000").text == "-1|Unknown msgid|0988000000"
    assert env.call("query.asp", msgid="99", dstaddr="0988123456").text.startswith("-1|")
    assert env.call("query.asp", msgid=msgid, password="x").text.startswith("-2|")
    body = env.call("query.asp", msgid="99", rtype="JSON").text
    assert json.loads(body.replace("},]", "}]"))["results"]["result"][0]["statusCode"] == "-1"


def test_failed_outcomes_use_table_2(env: Env) -> None:
    """§6 table 2: UNDELIV "undeliverable", EXPIRED, REJECTD (statuscode non-zero when not DELIVRD)."""
    env.config(outcome_mix={"undeliverable": 1.0})
    msgid = lines(env.send(dstaddr="0988123456", smbody="x"))["msgid"]
    wait_for(lambda: env.messages()[0]["state"] == "undeliverable")
    assert env.call("query.asp", msgid=msgid, dstaddr="0988123456").text == "-10|UNDELIV|0988123456"


def test_query_bulk(env: Env) -> None:
    """§3: "one record per line, lines separated by \\r\\n: statuscode|statusstr|phone|msgid"."""
    first = lines(env.send(dstaddr="0988123456,0988123457", smbody="x"))["msgid"]
    second = lines(env.send(dstaddr="0988123458", smbody="y", dlvtime=later()))["msgid"]
    wait_for(lambda: sum(m["state"] == "delivered" for m in env.messages()) == 2)
    response = env.call("queryBulk.asp", msgid=f"{first},{second},1111111111111111")
    assert response.text.split("\r\n") == [
        f"0|DELIVRD|0988123456|{first}",
        f"0|DELIVRD|0988123457|{first}",
        f"0|SCHEDULED|0988123458|{second}",
        "-1|Unknown msgid||1111111111111111",
    ]
    narrowed = env.call("queryBulk.asp", msgid=f"{first},{second}", dstaddr="0988123457,0988123458")
    assert narrowed.text.split("\r\n") == [
        f"0|DELIVRD|0988123457|{first}",
        f"0|SCHEDULED|0988123458|{second}",
    ]


def test_point_query(env: Env) -> None:
    """§4: JSON {"results":{"result": [{"statuscode": "0","point": "6220"}]}}; plain: the number."""
    env.send(dstaddr="0988123456", smbody="x")
    assert env.call("query_point.asp").text == "99999"
    assert env.call("query_point.asp", rtype="JSON").text == (
        '{"results":{"result": [{"statuscode": "0","point": "99999"}]}}'
    )
    assert lines(env.call("query_point.asp", password="bad"))["statuscode"] == "-2"
    body = env.call("query_point.asp", password="bad", rtype="JSON").json()
    assert body["results"]["result"][0]["statuscode"] == "-2"


# -- §6 delivery report ----------------------------------------------------------------------


def test_delivery_report(env: Env, receiver: Receiver) -> None:
    """§6: "<response URL>?msgid=<MsgId>&statuscode=<StatusCode>&statusstr=<StatusStr>[&dstaddr=…]"
    (HTTP GET); acknowledged by "magicid=tccrd_sms_gateway_rpack\\nmsgid=<the MsgId received>\\n"."""
    receiver.respond = ack
    msgid = lines(env.send(dstaddr="0988123456,+8613681912700", smbody="x", response=receiver.url + "/dlr?k=1"))[
        "msgid"
    ]
    wait_for(lambda: len(receiver.calls) == 2)
    time.sleep(0.3)  # no retry follows a correct acknowledgement
    assert len(receiver.calls) == 2
    by_number = {c["query"]["dstaddr"]: c for c in receiver.calls}
    assert set(by_number) == {"0988123456", "+8613681912700"}
    call = by_number["0988123456"]
    assert call["method"] == "GET" and call["path"] == "/dlr"
    assert call["query"] == {
        "k": "1",
        "msgid": msgid,
        "statuscode": "0",
        "statusstr": "DELIVRD",
        "dstaddr": "0988123456",
    }


def test_delivery_report_failure_code(env: Env, receiver: Receiver) -> None:
    """§6 table 2 "statusstr final states": an expired message reports EXPIRED."""
    receiver.respond = ack
    env.config(outcome_mix={"expired": 1.0})
    env.send(dstaddr="0988123456", smbody="x", response=receiver.url + "/dlr")
    wait_for(lambda: len(receiver.calls) == 1)
    assert receiver.calls[0]["query"]["statusstr"] == "EXPIRED"
    assert receiver.calls[0]["query"]["statuscode"] == "-10"


ANSWERS: dict[str, Callable[[dict[str, str]], Response]] = {
    "other-body": lambda q: PlainTextResponse("ok"),
    "crlf": lambda q: PlainTextResponse(f"{MAGIC}\r\nmsgid={q['msgid']}\r\n"),
    "wrong-msgid": lambda q: PlainTextResponse(f"{MAGIC}\nmsgid=1\n"),
    "http-500": lambda q: PlainTextResponse(f"{MAGIC}\nmsgid={q['msgid']}\n", status_code=500),
}


def test_delivery_report_retried_three_times(env: Env, receiver: Receiver) -> None:
    """§6: "If your server cannot be reached or does not answer this, SMSGo treats the report as not
    received and retries 3 times" (the body must be exactly the two \\n-terminated lines)."""
    receiver.respond = lambda q: ANSWERS[q["variant"]](q)
    for variant in ANSWERS:
        env.send(dstaddr="0988123456", smbody="x", response=f"{receiver.url}/dlr?variant={variant}")
    wait_for(lambda: len(receiver.calls) == 4 * len(ANSWERS), timeout=8)
    time.sleep(1.0)
    counts = {v: sum(c["query"]["variant"] == v for c in receiver.calls) for v in ANSWERS}
    assert counts == dict.fromkeys(ANSWERS, 4)  # 1 + 3 retries each, then SMSGo gives up


def test_no_response_url_no_report(env: Env, receiver: Receiver) -> None:
    """§1 response: "Empty (default) = no report"."""
    env.send(dstaddr="0988123456", smbody="x")
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    time.sleep(0.2)
    assert receiver.calls == []


# -- §7 replies -------------------------------------------------------------------------------


def test_reply_posted_to_replyurl(env: Env, receiver: Receiver) -> None:
    """§7: "Fields: msgid (the original message id), srcaddr (the replier's mobile), dstaddr,
    smbody (reply text), encoding (BIG5/ASCII/UCS2), timestamp"."""
    msgid = lines(env.send(dstaddr="0988123456", smbody="x", replyurl=receiver.url + "/mo"))["msgid"]
    env.http.post("/_sandbox/smsgo/reply", json={"from": "0988123456", "text": "好的 OK", "message_id": msgid})
    env.http.post("/_sandbox/smsgo/reply", json={"from": "0988123456", "text": "yes"})  # tied to the latest
    wait_for(lambda: len(receiver.calls) == 2)
    first, second = sorted(receiver.calls, key=lambda c: c["query"]["smbody"] != "好的 OK")
    query = first["query"]
    assert first["path"] == "/mo" and first["method"] == "GET"
    assert query["msgid"] == msgid and query["srcaddr"] == "0988123456" and query["smbody"] == "好的 OK"
    assert query["encoding"] == "UCS2" and query["dstaddr"].startswith("09")
    stamp = datetime.strptime(query["timestamp"], "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI)
    assert abs(stamp.timestamp() - time.time()) < 5
    assert second["query"]["encoding"] == "ASCII" and second["query"]["msgid"] == msgid


def test_reply_without_replyurl_is_dropped(env: Env, receiver: Receiver) -> None:
    """§1 note 4: "A valid replyurl turns on replies"."""
    msgid = lines(env.send(dstaddr="0988123456", smbody="x", response=receiver.url + "/dlr"))["msgid"]
    wait_for(lambda: len(receiver.calls) >= 1)
    env.http.post("/_sandbox/smsgo/reply", json={"from": "0988123456", "text": "hi", "message_id": msgid})
    time.sleep(0.3)
    assert all(c["path"] == "/dlr" for c in receiver.calls)
    assert env.http.get("/_sandbox/smsgo/summary").json()["replies"] == 1


# -- faults and determinism -------------------------------------------------------------------


def test_busy_fault(env: Env) -> None:
    """§1 "if the reply shows a sending fault, you may resend through the backup URL": -10 send fail."""
    env.faults(busy_rate=1.0)
    response = env.send(dstaddr="0988123456", smbody="x")
    assert response.status_code == 200
    assert lines(response) == {"msgid": "-10", "statuscode": "-10", "statusstr": "Send fail", "point": "0"}
    assert env.messages() == []


def test_error_malformed_and_rate_limit_faults(env: Env) -> None:
    """Fault injection through POST /_sandbox/smsgo/faults: 5xx, malformed (HTML), rate limit."""
    env.faults(error_rate=1.0)
    assert env.send(dstaddr="0988123456", smbody="x").status_code == 500
    env.faults(error_rate=0.0, malformed_rate=1.0)
    response = env.send(dstaddr="0988123456", smbody="x")
    assert response.status_code == 200 and response.text.startswith("<html>")
    assert len(env.messages()) == 1  # processed, then a broken answer: the ambiguous case
    env.faults(malformed_rate=0.0, rate_limit=1.0)
    codes = [env.send(dstaddr="0988123456", smbody="x").status_code for _ in range(5)]
    assert 429 in codes


def test_same_seed_same_ids() -> None:
    """Seed determinism: the same seed gives the same msgids."""
    ids = []
    for _ in range(2):
        server, env = start(seed=42)
        try:
            ids.append([lines(env.send(dstaddr="0988123456", smbody="x"))["msgid"] for _ in range(3)])
        finally:
            env.http.close()
            server.stop()
    assert ids[0] == ids[1]
