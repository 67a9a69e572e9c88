"""The EVERY8D SOAP (Web Services API 2.1) emulator over real HTTP.

Checked against ``shared/specs/every8d-soap-api-2.1.txt`` and the EVERY8D sections of
``shared/specs/provider-notes.md``. Each test quotes the document (section + a short quote)
for the behaviour it checks. Envelopes are built and parsed here by hand (no formosms
codec), so a misreading on either side shows up as a failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from formosms.sandbox import Account, Sandbox, SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.every8d_soap import Every8dSoapEmulator
from formosms.timefmt import TAIPEI
from tests.helpers import wait_for

NAME = "every8d-soap"
USER, PASSWORD = "demo", "demo-secret"
TW, TW2 = "0912345678", "0922333444"
TEMPURI = "http://tempuri.org/"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "every8d-soap"
CSV_REPLY = re.compile(r"(\d+\.\d\d),(\d+),(\d+),(\d+),([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


# -- harness --------------------------------------------------------------------------------------
@dataclass
class Receiver:
    """A callback receiver: records every request, answers from a script."""

    answers: list[int] = field(default_factory=list)
    default: int = 200
    calls: list[dict[str, Any]] = field(default_factory=list)


class ReceiverHub:
    """One receiver server for the module; each test gets its own path (and ``Receiver``),
    so a late callback from an earlier test's sandbox cannot land in the next test."""

    def __init__(self) -> None:
        self.receivers: dict[str, Receiver] = {}
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            with self.lock:
                receiver = self.receivers.get(request.path_params["token"], Receiver())
                receiver.calls.append(
                    {
                        "method": request.method,
                        "path": request.url.path,
                        "query": request.url.query,
                        "params": dict(parse_qsl(request.url.query, keep_blank_values=True)),
                    }
                )
                status = receiver.answers.pop(0) if receiver.answers else receiver.default
            return PlainTextResponse("", status_code=status)

        return Starlette(routes=[Route("/{token}/report.aspx", handle, methods=["GET", "POST"])])


def envelope(op: str, params: dict[str, str], version: str = "1.2") -> str:
    """A document/literal request, every value XML-escaped (provider notes)."""
    ns = SOAP12 if version == "1.2" else SOAP11
    fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in params.items())
    return (
        f'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Body>'
        f'<{op} xmlns="{TEMPURI}">{fields}</{op}></soap:Body></soap:Envelope>'
    )


def headers_for(op: str, version: str) -> dict[str, str]:
    if version == "1.2":
        return {"Content-Type": "application/soap+xml; charset=utf-8"}
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{TEMPURI}{op}"'}


def result_of(reply: httpx.Response, op: str, version: str = "1.2") -> str:
    """The ``{op}Result`` string: the first of the two parses."""
    assert reply.status_code == 200, reply.text
    ns = SOAP12 if version == "1.2" else SOAP11
    assert reply.headers["content-type"].startswith("application/soap+xml" if version == "1.2" else "text/xml")
    root = SafeET.fromstring(reply.content)
    assert root.tag == f"{{{ns}}}Envelope"
    node = root.find(f"{{{ns}}}Body/{{{TEMPURI}}}{op}Response/{{{TEMPURI}}}{op}Result")
    assert node is not None, reply.text
    return node.text or ""


def fault_of(reply: httpx.Response, version: str = "1.2") -> str:
    """A SOAP Fault's reason (asserting HTTP 500 and the Fault shape of ``version``)."""
    assert reply.status_code == 500, reply.text
    ns = SOAP12 if version == "1.2" else SOAP11
    root = SafeET.fromstring(reply.content)
    fault = root.find(f"{{{ns}}}Body/{{{ns}}}Fault")
    assert fault is not None, reply.text
    path = f"{{{ns}}}Reason/{{{ns}}}Text" if version == "1.2" else "faultstring"
    reason = fault.find(path)
    assert reason is not None
    return reason.text or ""


def xml(text: str) -> Element:
    """The second parse: the Result string is itself an XML document."""
    return SafeET.fromstring(text.encode("utf-8"))


@dataclass
class Env:
    sandbox: Sandbox
    http: httpx.Client
    control: httpx.Client
    receiver: Receiver
    callback_url: str

    @property
    def emulator(self) -> Every8dSoapEmulator:
        emulator = self.sandbox.emulators[NAME]
        assert isinstance(emulator, Every8dSoapEmulator)
        return emulator

    def post(self, op: str, service: str = "SMS", version: str = "1.2", **params: str) -> httpx.Response:
        return self.http.post(
            f"/API21/SOAP/{service}.asmx",
            content=envelope(op, params, version),
            headers=headers_for(op, version),
        )

    def call(self, op: str, service: str = "SMS", version: str = "1.2", **params: str) -> str:
        return result_of(self.post(op, service, version, **params), op, version)

    def login(self, user: str = USER, password: str = PASSWORD, service: str = "SMS") -> str:
        root = xml(self.call("getConnection", service, userID=user, password=password))
        assert root.findtext("GET_CONNECTION/CODE") == "0", root
        return root.findtext("GET_CONNECTION/SESSION_KEY") or ""

    def send(self, key: str, content: str = "hello", mobile: str = TW, send_time: str = "", **more: str) -> str:
        return self.call(
            "sendSMS", sessionKey=key, subject="", content=content, mobile=mobile, sendTime=send_time, **more
        )

    def status(self, key: str, batch: str, page: str = "", op: str = "getDeliveryStatus") -> Element:
        service = "MMS" if "MMS" in op else "SMS"
        return xml(self.call(op, service, sessionKey=key, batchID=batch, pageNo=page))

    def messages(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.control.get(f"/_sandbox/{NAME}/messages").json()
        return rows

    def account(self, **values: Any) -> None:
        reply = self.control.post(f"/_sandbox/{NAME}/accounts", json={"username": USER, **values})
        assert reply.status_code == 200, reply.text

    def faults(self, **values: Any) -> None:
        reply = self.control.post(f"/_sandbox/{NAME}/faults", json=values)
        assert reply.status_code == 200, reply.text

    def points(self) -> Decimal:
        return self.sandbox.state(NAME).accounts[USER].points

    def states(self) -> list[str]:
        return [m["state"] for m in self.messages()]


class Host:
    """One uvicorn server for the module, serving each test's own fresh sandbox.

    A sandbox is just an ASGI app plus an ``Engine`` whose timers and callback workers run
    on the serving loop; swapping the app per test (and closing the engine on that loop
    afterwards) keeps tests isolated without paying uvicorn's ~0.2 s shutdown per test.
    """

    def __init__(self) -> None:
        self.current: Sandbox | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.current is not None
        await self.current.app(scope, receive, send)

    @contextlib.contextmanager
    def serve(self, seed: int | None, accounts: list[Account]) -> Iterator[Sandbox]:
        sandbox = create_sandbox(
            SandboxConfig(seed=seed, delivery_delay=0.05), emulators=[Every8dSoapEmulator], accounts=accounts
        )
        emulator = sandbox.emulators[NAME]
        assert isinstance(emulator, Every8dSoapEmulator)
        emulator.callback_backoff = 0.01
        self.current = sandbox
        try:
            yield sandbox
        finally:
            assert self.loop is not None
            asyncio.run_coroutine_threadsafe(sandbox.engine.close(), self.loop).result(5)
            self.current = None


@dataclass
class Hub:
    """Module-wide: the callback receivers, the sandbox host and HTTP clients (an httpx
    client costs ~50 ms to build, so they are shared)."""

    receivers: ReceiverHub
    receivers_url: str
    host: Host
    http: httpx.Client  # base: the emulator's prefix
    control: httpx.Client  # base: the server root


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    registry, host = ReceiverHub(), Host()
    with (
        ServerThread(registry.app()) as receivers,
        ServerThread(host) as server,
        httpx.Client(base_url=server.url + "/every8d-soap", timeout=10) as http,
        httpx.Client(base_url=server.url, timeout=10) as control,
    ):
        yield Hub(registry, receivers.url, host, http, control)


@pytest.fixture
def receiver(hub: Hub, request: pytest.FixtureRequest) -> tuple[Receiver, str]:
    token = re.sub(r"\W", "_", request.node.name)
    rec = hub.receivers.receivers[token] = Receiver()
    return rec, f"{hub.receivers_url}/{token}/report.aspx"


@pytest.fixture
def env(hub: Hub, receiver: tuple[Receiver, str]) -> Iterator[Env]:
    rec, url = receiver
    with hub.host.serve(1, [Account(USER, PASSWORD, points=Decimal(100), callback_url=url)]) as sandbox:
        yield Env(sandbox, hub.http, hub.control, rec, url)


def taipei_in(**delta: float) -> str:
    return f"{datetime.now(TAIPEI) + timedelta(**delta):%Y%m%d%H%M%S}"


def batch_of(reply: str) -> str:
    match = CSV_REPLY.fullmatch(reply)
    assert match, reply
    return match.group(5)


def count(status: Element) -> str | None:
    """§3.2 ``<GET_DELIVERY_STATUS COUNT="1230">`` "此批總發送筆數"."""
    head = status.find("GET_DELIVERY_STATUS")
    return None if head is None else head.get("COUNT")


def rows(status: Element) -> list[dict[str, str]]:
    return [{child.tag: child.text or "" for child in sms} for sms in status.iter("SMS")]


# -- §1.1 getConnection -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_get_connection_format(env: Env, version: str) -> None:
    """§1.1 "傳回值的格式為一 xml 字串": <SMS><GET_CONNECTION><CODE>0</CODE><SESSION_KEY>…
    <DESCRIPTION>取得連線成功; §0 "SOAP 1.1, SOAP 1.2", answered in the version asked."""
    text = env.call("getConnection", version=version, userID=USER, password=PASSWORD)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?><SMS><GET_CONNECTION>')
    root = xml(text)
    assert root.tag == "SMS"
    assert root.findtext("GET_CONNECTION/CODE") == "0"
    assert re.fullmatch(r"[0-9a-f]{32}", root.findtext("GET_CONNECTION/SESSION_KEY") or "")
    assert root.findtext("GET_CONNECTION/DESCRIPTION") == "取得連線成功"


def test_one_session_key_per_account(env: Env) -> None:
    """§1.1 "因一個帳號只會有一個 SessionKey": logging in again (SOAP 1.1, or on MMS.asmx)
    gives the same key back while it is valid."""
    key = env.login()
    assert env.login() == key
    assert (
        xml(env.call("getConnection", version="1.1", userID=USER, password=PASSWORD)).findtext(
            "GET_CONNECTION/SESSION_KEY"
        )
        == key
    )
    assert env.login(service="MMS") == key


@pytest.mark.parametrize(
    ("user", "password", "code", "text"),
    [
        ("nobody", PASSWORD, "-100", "取得連線失敗，無此帳號"),
        (USER, "wrong", "-101", "取得連線失敗，密碼錯誤"),
        (USER, "", "-101", "取得連線失敗，密碼錯誤"),
    ],
)
def test_get_connection_errors(env: Env, user: str, password: str, code: str, text: str) -> None:
    """§1.1 CODE "-100：取得連線失敗，無此帳號 -101：取得連線失敗，密碼錯誤"."""
    root = xml(env.call("getConnection", userID=user, password=password))
    assert root.findtext("GET_CONNECTION/CODE") == code
    assert root.findtext("GET_CONNECTION/DESCRIPTION") == text
    assert not root.findtext("GET_CONNECTION/SESSION_KEY")


def test_ten_failures_lock_the_account(env: Env) -> None:
    """§1.1 "-999：帳號已封鎖，請洽服務窗口。認證錯誤超過 10 次將封鎖此服務。" The lock stays
    (right password too) until the account is updated through the control API."""
    for _ in range(10):
        assert xml(env.call("getConnection", userID=USER, password="bad")).findtext("GET_CONNECTION/CODE") == "-101"
    for password in ("bad", PASSWORD):
        root = xml(env.call("getConnection", userID=USER, password=password))
        assert root.findtext("GET_CONNECTION/CODE") == "-999"
        assert "封鎖" in (root.findtext("GET_CONNECTION/DESCRIPTION") or "")
    env.account(password=PASSWORD)  # the "服務窗口" unlocks it
    assert env.login()


def test_success_resets_the_failure_count(env: Env) -> None:
    """§1.1 counts authentication errors; a good login in between starts the count again."""
    for _ in range(9):
        env.call("getConnection", userID=USER, password="bad")
    env.login()
    for _ in range(9):
        env.call("getConnection", userID=USER, password="bad")
    assert env.login()


# -- §1.3 closeConnection, sessions ------------------------------------------------------------------
def test_close_connection_kills_the_key_for_everyone(env: Env) -> None:
    """§1.3 '"1" :關閉連線成功 "-1" : 關閉連線失敗'; §1.1 "於 closeConnection 後該 SessionKey
    就會失效"; §1.2 "-301 Session 資料不存在，請重新登入。" in each operation's own format."""
    key = env.login()
    assert env.call("closeConnection", sessionKey=key) == "1"
    assert env.call("closeConnection", sessionKey=key) == "-1"
    assert env.send(key) == "-301,Session 資料不存在，請重新登入。"
    assert env.call("getCredit", sessionKey=key) == "-301,Session 資料不存在，請重新登入。"
    assert env.call("eraseBooking", sessionKey=key, batchID="x").startswith("-301,")
    status = env.status(key, "x")
    assert status.tag == "SMS_LOG" and status.findtext("CODE") == "-301"
    assert env.login() != key  # a new key after the close


def test_unknown_session_key(env: Env) -> None:
    """§1.2 註 1 "-301 Session 資料不存在，請重新登入。"."""
    assert env.send("0" * 32) == "-301,Session 資料不存在，請重新登入。"
    assert env.call("sendMMS", "MMS", sessionKey="", subject="", content="x", mobile=TW).startswith("-301,")


def test_session_key_expires_the_next_day(env: Env) -> None:
    """§1.1 "SessionKey 有效期為單日，隔日即失效" (Taiwan date)."""
    key = env.login()
    assert env.call("getCredit", sessionKey=key) == "100.00"
    env.emulator.clock = lambda: time.time() + 86400
    assert env.call("getCredit", sessionKey=key).startswith("-301,")
    new_key = env.login()
    assert new_key != key
    assert env.call("getCredit", sessionKey=new_key) == "100.00"


# -- §1.2 / §2.1 sendSMS ------------------------------------------------------------------------------
def test_send_sms_reply_and_record(env: Env) -> None:
    """§1.2 "CREDIT,SENDED,COST,UNSEND,BATCH_ID" (5 fields, provider notes newer sample
    ``1230.00,4,4,0,<uuid>``); mobile "+886912345678 或 0912345678 … 以半形逗點隔開"."""
    key = env.login()
    reply = env.send(key, content="你好", mobile=f"{TW},+886922333444")
    match = CSV_REPLY.fullmatch(reply)
    assert match, reply
    assert match.groups()[:4] == ("98.00", "2", "2", "0")
    assert env.points() == Decimal(98)
    rows_ = env.messages()
    assert [(r["recipient"], r["text"], r["batch_id"], r["points"]) for r in rows_] == [
        (TW, "你好", match.group(5), "1"),
        ("+886922333444", "你好", match.group(5), "1"),
    ]
    assert all(r["validity"] == 1440 * 60 for r in rows_)  # §2.2 "預設 1440 分鐘"


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_xml_special_characters_round_trip(env: Env, version: str) -> None:
    """Provider notes: "XML-escape every input. One public client … broke on < and &"."""
    key = env.login()
    text = 'a<b & c>d "q" ]]> 中'
    reply = env.call("sendSMS", version=version, sessionKey=key, subject="", content=text, mobile=TW, sendTime="")
    assert CSV_REPLY.fullmatch(reply)
    assert env.messages()[0]["text"] == text


@pytest.mark.parametrize(
    ("length", "points"),
    [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4), (268, 4), (269, 5), (333, 5), (400, 6)],
)
def test_long_sms_pricing(env: Env, length: int, points: int) -> None:
    """§1.2 "1~70(字) 扣 1 點/則 71~134 2 … 269~333(字) 扣 5 點/則"; "超過 333 字仍可發送，
    系統將自動拆則" (67 characters a part)."""
    key = env.login()
    reply = env.send(key, content="中" * length)
    assert CSV_REPLY.fullmatch(reply), reply
    assert reply.split(",")[2] == str(points)
    assert env.points() == Decimal(100 - points)


def test_international_costs_three_times(env: Env) -> None:
    """§1.2 "※國際簡訊(非+886 開頭)則需以三倍點數計價之"."""
    key = env.login()
    reply = env.send(key, content="x" * 71, mobile="+85291234567")
    assert reply.split(",")[1:4] == ["1", "6", "0"]
    assert env.points() == Decimal(94)


def test_international_switched_off(env: Env) -> None:
    """§1.2 "請注意先登入至網站開啟您的國際簡訊…此設定預設為關閉"; §3.2 STATUS "500 表該門號
    為國際門號，請至系統設定開啟國際簡訊發送功能": not sent, not charged."""
    env.account(international=False, callback_url=env.callback_url)
    key = env.login()
    reply = env.send(key, mobile=f"{TW},+85291234567")
    assert reply.split(",")[:4] == ["99.00", "1", "1", "0"]
    status = env.status(key, batch_of(reply))
    assert [r["STATUS"] for r in rows(status)][1] == "500"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"content": ""}, "-24"),
        ({"mobile": ""}, "-41"),
        ({"mobile": " , "}, "-41"),
        ({"mobile": "0912-345-678"}, "-306"),
        ({"mobile": "+1-202-895-1800"}, "-306"),
        ({"mobile": f"{TW},12345"}, "-306"),
        ({"mobile": "+88622345678"}, "-306"),  # a Taiwan landline
        ({"send_time": "2024-01-01 10:00"}, "-6"),
        ({"send_time": "20241399000000"}, "-6"),
        ({"send_time": "20090131153000"}, "-4"),  # more than 24 h ago
    ],
)
def test_send_sms_errors_charge_nothing(env: Env, fields: dict[str, str], code: str) -> None:
    """Errors "-<code>,<message>" (provider notes: "-306,手機格式不符:+1-202-895-1800", -24
    empty content, -41 no mobile); §3.2 "-4 訊息預計發送時間已逾期 24 小時以上", "-6 DT(預計發送
    時間)格式錯誤"."""
    key = env.login()
    reply = env.send(key, **fields)
    assert reply.split(",", 1)[0] == code, reply
    assert env.points() == Decimal(100)
    assert env.messages() == []


def test_bad_mobile_is_named(env: Env) -> None:
    """Provider notes: ``-306,手機格式不符:+1-202-895-1800``."""
    key = env.login()
    assert env.send(key, mobile="+1-202-895-1800") == "-306,手機格式不符:+1-202-895-1800"


def test_past_send_time_sends_now(env: Env) -> None:
    """§1.2 sendTime "若傳遞時間已逾現在之時間，將立即發送"."""
    key = env.login()
    reply = env.send(key, send_time=taipei_in(hours=-1))
    assert CSV_REPLY.fullmatch(reply)
    wait_for(lambda: env.states() == ["delivered"])


def test_insufficient_credit_unsend(env: Env) -> None:
    """§1.2 UNSEND "無額度時發送的通數，當該值大於 0 而剩餘點數等於 0 時表示有部份的簡訊因無額度
    而無法被發送": the credit covers 3 of 5; the other 2 are recorded as 301 and cost nothing."""
    env.account(points="3", callback_url=env.callback_url)
    key = env.login()
    mobiles = ",".join(f"09123456{i:02d}" for i in range(5))
    reply = env.send(key, mobile=mobiles)
    assert reply.split(",")[:4] == ["0.00", "3", "3", "2"]
    assert env.points() == 0
    status = env.status(key, batch_of(reply))
    assert [r["STATUS"] for r in rows(status)][3:] == ["301", "301"]
    assert [r["COST"] for r in rows(status)] == ["1.00"] * 3 + ["0.00"] * 2


# -- §2.2 sendMessage -----------------------------------------------------------------------------------
def test_send_message_retry_time(env: Env) -> None:
    """§2.2 "retryTime 簡訊有效期限, 單位: 分鐘"."""
    key = env.login()
    reply = env.call("sendMessage", sessionKey=key, subject="s", content="hi", mobile=TW, sendTime="", retryTime="30")
    assert CSV_REPLY.fullmatch(reply)
    assert env.messages()[0]["validity"] == 1800


def test_send_message_bad_retry_time(env: Env) -> None:
    """§2.2 註 1 "-99 主機端發生不明錯誤" for a retryTime that is not minutes."""
    key = env.login()
    reply = env.call("sendMessage", sessionKey=key, subject="", content="hi", mobile=TW, sendTime="", retryTime="soon")
    assert reply == "-99,主機端發生不明錯誤，請與廠商窗口聯繫。"


# -- §2.3 sendParamSMS ----------------------------------------------------------------------------------
def test_send_param_sms_document_sample(env: Env) -> None:
    """§2.3 ContentXML 格式 (the document's sample): one USER per recipient, text in CDATA;
    "+886…" numbers are Taiwan (1 point each)."""
    key = env.login()
    sample = (FIXTURES / "contentXML_sample.xml").read_text(encoding="utf-8")
    reply = env.call("sendParamSMS", sessionKey=key, subject="", contentXML=sample, sendTime="")
    assert reply.split(",")[:4] == ["98.00", "2", "2", "0"]
    assert [(m["recipient"], m["text"]) for m in env.messages()] == [
        ("+886900000001", "ok ok\njava hello<>@#$$%^&*()"),
        ("+886900000002", "這是什麼的測試內容喔<>@#$$%^&*()"),
    ]
    names = [r["NAME"] for r in rows(env.status(key, batch_of(reply)))]
    assert names == ["TEST", "Eric1"]


def test_send_param_sms_split_cdata_and_local_numbers(env: Env) -> None:
    """§2.3 MOBILE "若傳送電話為國內手機時，如 0933123456。請務必轉為+886933123456，避免點數計算
    錯誤": a ``09…`` number is priced as international (×3). Text with ``]]>`` comes in two
    CDATA sections (provider notes) and is read back whole."""
    key = env.login()
    content = (
        '<REPS><USER NAME="A" MOBILE="+886933123456" EMAIL="" SENDTIME="">'
        "<![CDATA[x]]]]><![CDATA[>y]]></USER>"
        '<USER NAME="B" MOBILE="0933123456" EMAIL="" SENDTIME=""><![CDATA[hi]]></USER></REPS>'
    )
    reply = env.call("sendParamSMS", sessionKey=key, subject="", contentXML=content, sendTime="")
    assert reply.split(",")[:4] == ["96.00", "2", "4", "0"]
    assert [(m["text"], m["points"]) for m in env.messages()] == [("x]]>y", "1"), ("hi", "3")]


def test_send_param_sms_own_send_time(env: Env) -> None:
    """§2.3 SENDTIME "如需預約不同傳送時間請在此設定": one USER scheduled, one now; eraseBooking
    deletes only the one still waiting."""
    key = env.login()
    later = taipei_in(days=1)
    content = (
        f'<REPS><USER NAME="" MOBILE="+886933123456" EMAIL="" SENDTIME="{later}"><![CDATA[later]]></USER>'
        '<USER NAME="" MOBILE="+886933123457" EMAIL="" SENDTIME=""><![CDATA[now]]></USER></REPS>'
    )
    batch = batch_of(env.call("sendParamSMS", sessionKey=key, subject="", contentXML=content, sendTime=""))
    wait_for(lambda: env.states() == ["scheduled", "delivered"])
    assert env.call("eraseBooking", sessionKey=key, batchID=batch) == "1,1"
    assert [r["STATUS"] for r in rows(env.status(key, batch))] == ["303", "100"]
    assert env.points() == Decimal(99)


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("<REPS><USER MOBILE='+886933123456'>unclosed", "-99"),
        ('<!DOCTYPE r [<!ENTITY e "x">]><REPS><USER MOBILE="+886933123456">&e;</USER></REPS>', "-99"),
        ("<REPS></REPS>", "-41"),
        ('<REPS><USER NAME="" MOBILE="" EMAIL="" SENDTIME=""><![CDATA[x]]></USER></REPS>', "-41"),
        ('<REPS><USER NAME="" MOBILE="+886933123456" EMAIL="" SENDTIME=""></USER></REPS>', "-24"),
        ('<REPS><USER NAME="" MOBILE="12" EMAIL="" SENDTIME=""><![CDATA[x]]></USER></REPS>', "-306"),
        ('<REPS><USER NAME="" MOBILE="+886933123456" SENDTIME="tomorrow"><![CDATA[x]]></USER></REPS>', "-6"),
    ],
)
def test_send_param_sms_errors(env: Env, content: str, code: str) -> None:
    """§2.3 "負值代表發送失敗，系統無法處理該命令"; nothing accepted, nothing charged."""
    key = env.login()
    reply = env.call("sendParamSMS", sessionKey=key, subject="", contentXML=content, sendTime="")
    assert reply.split(",", 1)[0] == code, reply
    assert env.points() == Decimal(100) and env.messages() == []


# -- §3.2 getDeliveryStatus -------------------------------------------------------------------------------
def test_delivery_status_format(env: Env) -> None:
    """§3.2 <SMS_LOG><CODE>0</CODE><DESCRIPTION>發送狀態查詢成功</DESCRIPTION>
    <GET_DELIVERY_STATUS COUNT="…"><SMS><NAME/><MOBILE>+886933123123</MOBILE>
    <SENT_TIME>2010/3/20 03:27:50</SENT_TIME><COST>1.00</COST><STATUS>100</STATUS>; STATUS
    "0 訊息已成功傳送給電信端" then "100 成功送達手機"; MOBILE padded (provider notes)."""
    env.sandbox.config.delivery_delay = 0.5
    key = env.login()
    batch = batch_of(env.send(key, mobile=f"{TW},{TW2}"))
    first = env.status(key, batch)
    assert first.findtext("CODE") == "0"
    assert first.findtext("DESCRIPTION") == "發送狀態查詢成功"
    assert count(first) == "2"
    assert [r["STATUS"] for r in rows(first)] == ["0", "0"]
    wait_for(lambda: env.states() == ["delivered", "delivered"])
    done = rows(env.status(key, batch))
    assert [r["STATUS"] for r in done] == ["100", "100"]
    row = done[0]
    assert set(row) == {"NAME", "MOBILE", "SENT_TIME", "COST", "STATUS"}
    assert row["MOBILE"] == "+886912345678".ljust(20)
    assert row["MOBILE"].strip() == "+886912345678"
    now = datetime.now(TAIPEI)
    assert re.fullmatch(rf"{now.year}/{now.month}/{now.day} \d\d:\d\d:\d\d", row["SENT_TIME"])
    assert row["COST"] == "1.00"


def test_delivery_status_unknown_batch(env: Env) -> None:
    """§3.2 "COUNT 此批總發送筆數": a batch the account does not own has none."""
    key = env.login()
    status = env.status(key, "220478cc-8506-49b2-93b7-2505f651c12e")
    assert status.findtext("CODE") == "0"
    assert count(status) == "0" and rows(status) == []


def test_delivery_status_pages_of_1000(env: Env) -> None:
    """§3.2 "每次最多回傳 1000 筆資料 … 欲查詢第 1001~2000 筆資料時，PageNo 傳入"2""."""
    env.account(points="2000", callback_url="")
    key = env.login()
    mobiles = ",".join(f"09{i:08d}" for i in range(1001))
    batch = batch_of(env.send(key, mobile=mobiles))
    first, second, third = (env.status(key, batch, page) for page in ("", "2", "3"))
    assert [len(rows(s)) for s in (first, second, third)] == [1000, 1, 0]
    assert [count(s) for s in (first, second, third)] == ["1001"] * 3
    assert len(rows(env.status(key, batch, "1"))) == 1000


@pytest.mark.parametrize(("outcome", "code"), [("undeliverable", "101"), ("expired", "107"), ("rejected", "-3")])
def test_final_status_codes(env: Env, outcome: str, code: str) -> None:
    """§3.2 接收狀態代碼表: 101 "無法送達受話方手機", 107, -3 "該訊息傳送失敗"."""
    env.control.post("/_sandbox/config", json={"outcome_mix": {outcome: 1.0}})
    key = env.login()
    batch = batch_of(env.send(key))
    wait_for(lambda: env.states() == [outcome])
    assert rows(env.status(key, batch))[0]["STATUS"] == code


# -- §4 getCredit, eraseBooking ------------------------------------------------------------------------------
def test_get_credit(env: Env) -> None:
    """§4.1 "回傳餘額。範例：2310.00"."""
    key = env.login()
    assert env.call("getCredit", sessionKey=key) == "100.00"
    env.send(key, content="a" * 71)
    assert env.call("getCredit", sessionKey=key) == "98.00"


def test_scheduled_then_erased_refunds(env: Env) -> None:
    """§1.2 "預約發送：請傳入預計發送時間 … YYYYMMDDhhmmss"; §3.2 "300 預約簡訊", "303 取消預約";
    §4.2 "a:刪除的筆數, b:回補的點數", "空值 查無資料"."""
    key = env.login()
    batch = batch_of(env.send(key, content="x" * 80, mobile=f"{TW},{TW2}", send_time=taipei_in(days=1)))
    assert env.points() == Decimal(96)
    assert env.states() == ["scheduled", "scheduled"]
    assert [r["STATUS"] for r in rows(env.status(key, batch))] == ["300", "300"]
    assert env.call("eraseBooking", sessionKey=key, batchID=batch) == "2,4"
    assert env.points() == Decimal(100)
    assert [r["STATUS"] for r in rows(env.status(key, batch))] == ["303", "303"]
    assert env.call("eraseBooking", sessionKey=key, batchID=batch) == ""
    assert env.call("eraseBooking", sessionKey=key, batchID="no-such-batch") == ""


def test_scheduled_message_is_sent_at_its_time(env: Env) -> None:
    """§1.2 sendTime: a near-future time waits, then goes out."""
    key = env.login()
    env.send(key, send_time=taipei_in(seconds=1.5))
    assert env.states() == ["scheduled"]
    wait_for(lambda: env.states() == ["delivered"], timeout=5)


def test_erase_after_sending_finds_nothing(env: Env) -> None:
    """§4.2 "空值 查無資料": nothing left to delete once sent; no refund."""
    key = env.login()
    batch = batch_of(env.send(key))
    wait_for(lambda: env.states() == ["delivered"])
    assert env.call("eraseBooking", sessionKey=key, batchID=batch) == ""
    assert env.points() == Decimal(99)


# -- §5 MMS -------------------------------------------------------------------------------------
def png(size: int) -> str:
    """§5.1 attachment "binary base64 encoded + urlEncode"."""
    return quote(base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\xff" * (size - 8)).decode())


def send_mms(env: Env, key: str, **fields: str) -> str:
    params = {
        "sessionKey": key,
        "subject": "Sale",
        "content": "圖文",
        "mobile": TW,
        "sendTime": "",
        "retryTime": "",
        "attachment": png(1000),
        "type": "png",
    }
    params.update(fields)
    return env.call("sendMMS", "MMS", **params)


@pytest.mark.parametrize(("size", "points"), [(1000, 3), (60 * 1024, 5), (290 * 1024, 5)])
def test_send_mms_pricing(env: Env, size: int, points: int) -> None:
    """§5.1 "圖加文大小 300KB 之限制"; provider notes: "3 points up to 50 KB, 5 points up to
    300 KB"."""
    key = env.login(service="MMS")
    reply = send_mms(env, key, attachment=png(size))
    assert reply.split(",")[1:4] == ["1", str(points), "0"]
    assert env.messages()[0]["kind"] == "mms"
    assert env.points() == Decimal(100 - points)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"attachment": ""}, "-304"),
        ({"attachment": "not base64!"}, "-304"),
        ({"type": ""}, "-305"),
        ({"type": "gif"}, "-305"),
        ({"attachment": png(301 * 1024)}, "-314"),
        ({"mobile": "+85291234567"}, "-306"),  # "MMS 簡訊不支援國際門號"
        ({"subject": "中" * 16}, "-303"),  # "主旨中英文限制 15 字"
        ({"subject": "a" * 96}, "-303"),  # "純英數限制 95 字"
        ({"content": "x" * 4001}, "-5"),  # "內容最大可發至 4000 字"
        ({"sessionKey": "bad"}, "-301"),
    ],
)
def test_send_mms_errors(env: Env, fields: dict[str, str], code: str) -> None:
    """§5.1 limits; codes from the provider notes (-304 no image, -305 no image type, -314
    image too large, -303 subject, -306 mobile)."""
    key = env.login()
    reply = send_mms(env, key, **fields)
    assert reply.split(",", 1)[0] == code, reply
    assert env.points() == Decimal(100) and env.messages() == []


def test_mms_subject_limits_accept(env: Env) -> None:
    """§5.1 "主旨中英文限制 15 字，純英數限制 95 字"."""
    key = env.login()
    assert CSV_REPLY.fullmatch(send_mms(env, key, subject="中" * 15))
    assert CSV_REPLY.fullmatch(send_mms(env, key, subject="a" * 95))


def test_mms_status_and_erase(env: Env) -> None:
    """§5.2 getMMSDeliveryStatus (same XML as §3.2, STATUS "700 MMS 已發送" from the HTTP
    document's table); §4.3 eraseMMSBooking "a,b"; SMS and MMS batches are separate."""
    key = env.login()
    batch = batch_of(send_mms(env, key))
    wait_for(lambda: env.states() == ["delivered"])
    status = env.status(key, batch, op="getMMSDeliveryStatus")
    assert status.findtext("CODE") == "0"
    assert [(r["STATUS"], r["COST"]) for r in rows(status)] == [("700", "3.00")]
    assert count(env.status(key, batch)) == "0"  # not an SMS batch
    later = batch_of(send_mms(env, key, sendTime=taipei_in(days=1)))
    assert env.call("eraseBooking", sessionKey=key, batchID=later) == ""
    assert env.call("eraseMMSBooking", "MMS", sessionKey=key, batchID=later) == "1,3"
    assert env.points() == Decimal(97)


def test_mms_operations_only_on_mms_asmx(env: Env) -> None:
    """§5 "Web Services 連線位址 …/API21/SOAP/MMS.asmx": sendMMS is not an SMS.asmx operation."""
    key = env.login()
    reason = fault_of(env.post("sendMMS", sessionKey=key))
    assert "sendMMS" in reason
    assert fault_of(env.post("sendSMS", "MMS", sessionKey=key))


# -- §3.1 callbacks and replies -----------------------------------------------------------------------------
def test_status_callback_format(env: Env) -> None:
    """§3.1 "(HTTP GET): …?BatchID=xxxx&RM=xxxx&RT=xxx&STATUS=xxx&SM=xxxx&MR=xxxx&USERID=xxxx";
    RM "Encode 後再傳送(+886961295288)", RT "20090210120000"; SM the text (provider notes)."""
    key = env.login()
    batch = batch_of(env.send(key, content="折扣 50% & 免運+贈品"))
    wait_for(lambda: len(env.receiver.calls) == 1)
    call = env.receiver.calls[0]
    assert call["method"] == "GET" and call["path"].endswith("/report.aspx")
    expected = (FIXTURES / "callback_query.txt").read_text().strip()
    assert [k for k, _ in parse_qsl(call["query"], keep_blank_values=True)] == [
        k.split("=")[0] for k in expected.split("&")
    ]
    params = call["params"]
    assert params["BatchID"] == batch
    assert params["RM"] == "+886912345678"
    assert "%2B886912345678" in call["query"]  # encoded once
    assert re.fullmatch(r"\d{14}", params["RT"])
    assert abs(datetime.strptime(params["RT"], "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI).timestamp() - time.time()) < 60
    assert params["STATUS"] == "100"
    assert params["SM"] == "折扣 50% & 免運+贈品"
    assert params["MR"] == ""
    assert params["USERID"] == USER


def test_callback_retried_until_200(env: Env) -> None:
    """§3.1 "若連線不成功(HTTP 連線狀態碼非 200)的狀況下，此 HTTP 呼叫將會進行 Retry"."""
    env.receiver.answers = [500, 404, 302]
    key = env.login()
    env.send(key)
    wait_for(lambda: len(env.receiver.calls) == 4)
    time.sleep(0.2)
    assert len(env.receiver.calls) == 4
    sent = env.sandbox.state(NAME).callbacks_sent
    assert [c["status"] for c in sent] == [500, 404, 302, 200]


def test_callback_gives_up_after_10_retries(env: Env) -> None:
    """§3.1 "Retry 次數最多 10 次，錯誤超過 10 次後將不再傳送": 1 call + 10 retries."""
    env.receiver.default = 503
    key = env.login()
    env.send(key)
    wait_for(lambda: len(env.receiver.calls) == 11, timeout=8)
    time.sleep(0.3)
    assert len(env.receiver.calls) == 11


def test_no_callback_without_url(env: Env) -> None:
    """§3.1 the URL is "給我們做系統設定": an account without one gets no calls."""
    env.account(callback_url="")
    key = env.login()
    env.send(key)
    wait_for(lambda: env.states() == ["delivered"])
    time.sleep(0.1)
    assert env.receiver.calls == []


def test_reply_through_callback_and_status(env: Env) -> None:
    """§3.1 "回覆簡訊之判斷 … STATUS=999 時，即為回覆簡訊。回覆簡訊內容將置於 SM 參數"; §3.2
    <REPLY_SMS><REPLY_TIME>2010/03/23 12:05:09 </REPLY_TIME><MESSAGE><![CDATA[回覆簡訊]]>."""
    key = env.login()
    batch = batch_of(env.send(key))
    wait_for(lambda: len(env.receiver.calls) == 1)
    answer = env.control.post(
        f"/_sandbox/{NAME}/reply", json={"from": TW, "text": "好的 <OK> ]]> 謝謝", "message_id": batch}
    )
    assert answer.status_code == 200
    wait_for(lambda: len(env.receiver.calls) == 2)
    params = env.receiver.calls[1]["params"]
    assert params["STATUS"] == "999"
    assert params["SM"] == "好的 <OK> ]]> 謝謝"
    assert params["BatchID"] == batch
    assert params["RM"] == "+886912345678"
    status = env.status(key, batch)
    reply = status.find("GET_DELIVERY_STATUS/SMS/REPLY_SMS")
    assert reply is not None
    assert reply.findtext("MESSAGE") == "好的 <OK> ]]> 謝謝"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ", reply.findtext("REPLY_TIME") or "")


def test_reply_without_message_goes_to_latest(env: Env) -> None:
    """§3.2 REPLY_SMS sits under the message replied to: with no id named, the latest one
    sent to that number."""
    key = env.login()
    env.send(key, mobile=TW)
    batch = batch_of(env.send(key, mobile=TW))
    env.control.post(f"/_sandbox/{NAME}/reply", json={"from": "+886912345678", "text": "yes"})
    status = env.status(key, batch)
    assert status.findtext("GET_DELIVERY_STATUS/SMS/REPLY_SMS/MESSAGE") == "yes"


# -- SOAP envelope handling ---------------------------------------------------------------------------------
def test_xml_bomb_is_a_fault(env: Env) -> None:
    """Provider notes: parse defensively; a DTD (billion laughs) is refused: SOAP Fault, 500."""
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><getCredit xmlns="{TEMPURI}">'
        "<sessionKey>&lol2;</sessionKey></getCredit></soap:Body></soap:Envelope>"
    )
    reply = env.http.post("/API21/SOAP/SMS.asmx", content=bomb, headers=headers_for("getCredit", "1.2"))
    assert "DTD" in fault_of(reply)


def test_external_entity_is_a_fault(env: Env) -> None:
    """An external entity (XXE) never resolves: SOAP 1.1 Fault, HTTP 500."""
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        f'<soap:Envelope xmlns:soap="{SOAP11}"><soap:Body><getCredit xmlns="{TEMPURI}">'
        "<sessionKey>&x;</sessionKey></getCredit></soap:Body></soap:Envelope>"
    )
    reply = env.http.post("/API21/SOAP/SMS.asmx", content=xxe, headers=headers_for("getCredit", "1.1"))
    assert "DTD" in fault_of(reply, "1.1")


@pytest.mark.parametrize("version", ["1.2", "1.1"])
def test_malformed_envelope_is_a_fault(env: Env, version: str) -> None:
    reply = env.http.post(
        "/API21/SOAP/SMS.asmx", content="<soap:Envelope><broken", headers=headers_for("getCredit", version)
    )
    assert fault_of(reply, version)


def test_unknown_operation_is_a_fault(env: Env) -> None:
    """Only the documented operations exist (namespace http://tempuri.org/)."""
    assert "deleteEverything" in fault_of(env.post("deleteEverything", sessionKey="x"))
    assert fault_of(env.post("deleteEverything", version="1.1"), "1.1")


def test_soap11_needs_matching_soapaction(env: Env) -> None:
    """SOAP 1.1 "SOAPAction" (provider notes): missing or naming another operation → Fault."""
    body = envelope("getCredit", {"sessionKey": "x"}, "1.1")
    missing = env.http.post("/API21/SOAP/SMS.asmx", content=body, headers={"Content-Type": "text/xml"})
    assert "SOAPAction" in fault_of(missing, "1.1")
    other = env.http.post(
        "/API21/SOAP/SMS.asmx",
        content=body,
        headers={"Content-Type": "text/xml", "SOAPAction": f'"{TEMPURI}sendSMS"'},
    )
    assert "SOAPAction" in fault_of(other, "1.1")


def test_soap12_action_parameter(env: Env) -> None:
    """SOAP 1.2 may name the action in the media type; it must match the body."""
    key = env.login()
    body = envelope("getCredit", {"sessionKey": key})
    good = env.http.post(
        "/API21/SOAP/SMS.asmx",
        content=body,
        headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{TEMPURI}getCredit"'},
    )
    assert result_of(good, "getCredit") == "100.00"
    bad = env.http.post(
        "/API21/SOAP/SMS.asmx",
        content=body,
        headers={"Content-Type": f'application/soap+xml; charset=utf-8; action="{TEMPURI}sendSMS"'},
    )
    assert fault_of(bad)


def test_version_mismatch(env: Env) -> None:
    """A SOAP 1.1 envelope sent as application/soap+xml: VersionMismatch Fault."""
    reply = env.http.post(
        "/API21/SOAP/SMS.asmx",
        content=envelope("getCredit", {"sessionKey": "x"}, "1.1"),
        headers=headers_for("getCredit", "1.2"),
    )
    assert "version mismatch" in fault_of(reply).lower()


def test_unknown_content_type(env: Env) -> None:
    reply = env.http.post("/API21/SOAP/SMS.asmx", content="{}", headers={"Content-Type": "application/json"})
    assert reply.status_code == 500


def test_unescaped_parameter_xml_is_a_fault(env: Env) -> None:
    """Provider notes: "One public client built envelopes without escaping": contentXML sent
    as raw elements is not a string."""
    key = env.login()
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP12}"><soap:Body><sendParamSMS xmlns="{TEMPURI}">'
        f'<sessionKey>{key}</sessionKey><subject/><contentXML><REPS><USER MOBILE="+886933123456">'
        "<![CDATA[x]]></USER></REPS></contentXML><sendTime/></sendParamSMS></soap:Body></soap:Envelope>"
    )
    reply = env.http.post("/API21/SOAP/SMS.asmx", content=body, headers=headers_for("sendParamSMS", "1.2"))
    assert "contentXML" in fault_of(reply)
    assert env.messages() == []


def test_unqualified_parameters_read_as_missing(env: Env) -> None:
    """Document/literal: parameters belong to http://tempuri.org/; unqualified ones are not
    seen (the session key reads as empty → -301)."""
    key = env.login()
    body = (
        f'<soap:Envelope xmlns:soap="{SOAP12}" xmlns:t="{TEMPURI}"><soap:Body><t:getCredit>'
        f"<sessionKey>{key}</sessionKey></t:getCredit></soap:Body></soap:Envelope>"
    )
    reply = env.http.post("/API21/SOAP/SMS.asmx", content=body, headers=headers_for("getCredit", "1.2"))
    assert result_of(reply, "getCredit").startswith("-301,")


def test_result_is_escaped_xml_string(env: Env) -> None:
    """Provider notes: "Each …Result element holds a string that is itself XML … parse twice"."""
    reply = env.post("getConnection", userID=USER, password=PASSWORD)
    assert "&lt;SMS&gt;&lt;GET_CONNECTION&gt;" in reply.text
    assert f'<getConnectionResponse xmlns="{TEMPURI}">' in reply.text


def test_empty_result_element(env: Env) -> None:
    """§4.2 "空值 查無資料": the Result element is empty."""
    key = env.login()
    reply = env.post("eraseBooking", sessionKey=key, batchID="nothing")
    assert result_of(reply, "eraseBooking") == ""


def test_wsdl(env: Env) -> None:
    """ASMX publishes ``?WSDL``: every documented operation with its parameter names."""
    reply = env.http.get("/API21/SOAP/MMS.asmx", params={"WSDL": ""})
    assert reply.status_code == 200
    root = xml(reply.text)
    names = {e.get("name") for e in root.iter("{http://www.w3.org/2001/XMLSchema}element")}
    assert {"sendMMS", "getMMSDeliveryStatus", "eraseMMSBooking", "getConnection", "attachment"} <= names
    assert "sendSMS" not in names


# -- fault injection ----------------------------------------------------------------------------------------
def test_busy_fault(env: Env) -> None:
    """§1.1 "-97：系統忙碌中，請稍後再試", switched on through the control API; each operation
    answers it in its own format."""
    key = env.login()
    env.faults(busy_rate=1.0)
    root = xml(env.call("getConnection", userID=USER, password=PASSWORD))
    assert root.findtext("GET_CONNECTION/CODE") == "-97"
    assert root.findtext("GET_CONNECTION/DESCRIPTION") == "系統忙碌中，請稍後再試"
    assert env.send(key) == "-97,系統忙碌中，請稍後再試"
    assert env.call("getCredit", version="1.1", sessionKey=key) == "-97,系統忙碌中，請稍後再試"
    assert env.status(key, "x").findtext("CODE") == "-97"
    assert env.messages() == []


def test_server_error_fault(env: Env) -> None:
    env.faults(error_rate=1.0)
    assert env.post("getConnection", userID=USER, password=PASSWORD).status_code == 500


def test_malformed_fault(env: Env) -> None:
    """A malformed answer: HTTP 200 that no XML parser accepts."""
    env.faults(malformed_rate=1.0)
    reply = env.post("getConnection", userID=USER, password=PASSWORD)
    assert reply.status_code == 200
    with pytest.raises(SafeET.ParseError):
        SafeET.fromstring(reply.content)


def test_rate_limit_fault(env: Env) -> None:
    """The document states no rate; one switched on answers HTTP 429 beyond it."""
    env.faults(rate_limit=2)
    codes = [env.post("getConnection", userID=USER, password=PASSWORD).status_code for _ in range(6)]
    assert 429 in codes
    assert env.post("getConnection", userID=USER, password=PASSWORD).status_code == 429
    time.sleep(0.6)  # the bucket refills at 2/s
    assert env.post("getConnection", userID=USER, password=PASSWORD).status_code == 200


# -- determinism ---------------------------------------------------------------------------------------------
def run_once(hub: Hub, seed: int) -> tuple[str, list[str]]:
    http = hub.http
    with hub.host.serve(seed, [Account(USER, PASSWORD, points=Decimal(100))]):

        def call(op: str, **params: str) -> str:
            reply = http.post("/API21/SOAP/SMS.asmx", content=envelope(op, params), headers=headers_for(op, "1.2"))
            return result_of(reply, op)

        key = xml(call("getConnection", userID=USER, password=PASSWORD)).findtext("GET_CONNECTION/SESSION_KEY")
        assert key
        batches = [
            batch_of(call("sendSMS", sessionKey=key, subject="", content="x", mobile=TW, sendTime="")) for _ in range(3)
        ]
        return key, batches


def test_same_seed_same_ids(hub: Hub) -> None:
    """Same seed → same session key and batch ids; another seed → different ones."""
    assert run_once(hub, 42) == run_once(hub, 42)
    assert run_once(hub, 42) != run_once(hub, 43)
