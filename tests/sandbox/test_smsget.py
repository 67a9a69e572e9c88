"""The SMS-Get emulator over real HTTP, checked against ``shared/specs/smsget-api.txt``.

Each test quotes the document (section + a short quote) for the behaviour it checks.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.sandbox import Sandbox, SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.app import demo_accounts
from formosms.sandbox.smsget import SMSGetEmulator
from formosms.timefmt import TAIPEI
from tests.helpers import wait_for

USER, PASSWORD = "demo", "demo-secret"
TW, TW2 = "0912345678", "0922333444"


# -- harness --------------------------------------------------------------------------------
@dataclass
class Inbox:
    """What one test's callback URL received; answers come from a script, then ``default``."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    default: tuple[int, str] = (200, "ok")
    calls: list[dict[str, Any]] = field(default_factory=list)


class Receiver:
    """A tiny callback receiver shared by the module; each test gets its own path."""

    def __init__(self) -> None:
        self.inboxes: dict[str, Inbox] = {}
        self.lock = threading.Lock()

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                inbox = self.inboxes.get(request.url.path)
                if inbox is None:
                    return PlainTextResponse("no such inbox", status_code=404)
                inbox.calls.append(
                    {
                        "method": request.method,
                        "query": request.url.query,
                        "body": body,
                        "content_type": request.headers.get("content-type", ""),
                    }
                )
                status, text = inbox.answers.pop(0) if inbox.answers else inbox.default
            return PlainTextResponse(text, status_code=status)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@dataclass
class Env:
    sandbox: Sandbox
    http: httpx.Client
    control: httpx.Client

    @property
    def emulator(self) -> SMSGetEmulator:
        emulator = self.sandbox.emulators["smsget"]
        assert isinstance(emulator, SMSGetEmulator)
        return emulator

    def send(self, path: str = "/api_send.php", verb: str = "POST", **fields: str) -> dict[str, Any]:
        data = {"username": USER, "password": PASSWORD, "method": "1", "sms_msg": "hello", "phone": TW}
        data.update(fields)
        reply = self.http.get(path, params=data) if verb == "GET" else self.http.post(path, data=data)
        assert reply.status_code == 200
        result: dict[str, Any] = reply.json()
        return result

    def messages(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.control.get("/_sandbox/smsget/messages").json()
        return rows

    def account(self, **values: Any) -> None:
        reply = self.control.post("/_sandbox/smsget/accounts", json={"username": USER, **values})
        assert reply.status_code == 200, reply.text

    def attempts(self, url: str) -> list[dict[str, Any]]:
        """The emulator's record of its callback attempts to ``url``."""
        return [c for c in self.sandbox.state("smsget").callbacks_sent if c["url"].split("?")[0] == url]

    def points(self) -> Decimal:
        return self.sandbox.state("smsget").accounts[USER].points


def start(seed: int | None = 1, delivery_delay: float = 0.05) -> tuple[Sandbox, ServerThread]:
    sandbox = create_sandbox(SandboxConfig(seed=seed, delivery_delay=delivery_delay), emulators=[SMSGetEmulator])
    server = ServerThread(sandbox.app).start()
    return sandbox, server


@pytest.fixture(scope="module")
def served() -> Iterator[Env]:
    sandbox, server = start()
    with (
        httpx.Client(base_url=server.url + "/smsget", timeout=5) as http,
        httpx.Client(base_url=server.url, timeout=5) as control,
    ):
        yield Env(sandbox, http, control)
    server.stop()


@pytest.fixture
def env(served: Env) -> Env:
    """The module's sandbox, reset to a fresh state: demo account, no faults, no messages."""
    sandbox = served.sandbox
    state = sandbox.state("smsget")
    state.reset()
    state.accounts.clear()
    for account in demo_accounts():
        state.add_account(account)
    sandbox.config.delivery_delay = 0.05
    sandbox.config.outcome_mix = {"delivered": 1.0}
    served.emulator.callback_backoff = 0.01
    return served


@pytest.fixture(scope="module")
def receiver_server() -> Iterator[tuple[Receiver, ServerThread]]:
    receiver = Receiver()
    server = ServerThread(receiver.app()).start()
    yield receiver, server
    server.stop()


@pytest.fixture
def receiver(receiver_server: tuple[Receiver, ServerThread], env: Env) -> Iterator[tuple[Inbox, str]]:
    """A fresh inbox and its URL (a path of its own on the shared receiver).

    Afterwards, wait until the emulator has recorded every call the inbox answered, so no
    late record spills into the next test's (reset) state.
    """
    shared, server = receiver_server
    path = f"/receive/{len(shared.inboxes) + 1}.php"
    inbox = shared.inboxes[path] = Inbox()
    url = server.url + path
    yield inbox, url
    wait_for(lambda: len(env.attempts(url)) >= len(inbox.calls))


def taipei_later(days: int = 2) -> datetime:
    return (datetime.now(TAIPEI) + timedelta(days=days)).replace(second=0, microsecond=0)


# -- §一 傳送簡訊 -------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_send_success_format(env: Env, verb: str) -> None:
    """§一 "HTTP API 存取可使用 GET 及 POST 方式皆可"; 輸出 "000 成功", error_msg
    "訊息 ID 使用點數 剩餘點數" separated by ``|`` (provider-notes: ``12345678|1|437``)."""
    before = env.points()
    reply = env.send(verb=verb, sms_msg="你好", phone=f"{TW},{TW2}")
    assert reply["stats"] is True
    assert reply["error_code"] == "000"
    msgid, used, left = reply["error_msg"].split("|")
    assert re.fullmatch(r"\d{8}", msgid)
    assert used == "2"
    assert Decimal(left) == before - 2 == env.points()
    rows = env.messages()
    assert [(r["recipient"], r["text"], r["message_id"], r["points"]) for r in rows] == [
        (TW, "你好", msgid, "1"),
        (TW2, "你好", msgid, "1"),
    ]


def test_raw_json_shape(env: Env) -> None:
    """§一 輸出 (json 資料型態): ``stats`` True/False, ``error_code`` 3 characters."""
    raw = env.http.post(
        "/api_send.php",
        data={"username": USER, "password": PASSWORD, "method": "1", "sms_msg": "x", "phone": TW},
    )
    data = json.loads(raw.text)
    assert set(data) == {"stats", "error_code", "error_msg"}
    assert data["stats"] is True and data["error_code"] == "000"


def test_text_is_decoded_once(env: Env) -> None:
    """§一 "訊息內容請以 UTF-8 編碼,傳送須先經過 URL ENCODE": one ordinary form encoding."""
    text = "折扣 50% & 免運+贈品 %E4"
    env.send(sms_msg=text)
    assert env.messages()[0]["text"] == text


@pytest.mark.parametrize(
    ("text", "phone", "points"),
    [
        ("a" * 160, TW, 1),  # "純英文 160 個字內算一則"
        ("a" * 161, TW, 2),  # "超過 160 字,每 153 字算一則"
        ("a" * 307, TW, 3),
        ("中" * 70, TW, 1),  # "中英文 70 個字內算一則"
        ("中" * 71, TW, 2),  # "超過 70 字,每 67 算一則"
        ("中" * 135, TW, 3),
        ("中文", "13512345123", 2),  # "中國大陸門號每則扣二點"
        ("中" * 71, "13512345123", 4),
        ("中文", "54123123", 1),  # "台灣、香港門號每則扣一點"
        ("中文", "819012345123", 1),  # other countries: 1 a part (undocumented: assumption)
    ],
)
def test_points_by_document(env: Env, text: str, phone: str, points: int) -> None:
    """§一 sms_msg pricing: per part, Taiwan/HK 1 point, China 2 points."""
    before = env.points()
    reply = env.send(sms_msg=text, phone=phone)
    assert reply["error_code"] == "000", reply
    assert reply["error_msg"].split("|")[1] == str(points)
    assert env.points() == before - points


@pytest.mark.parametrize(
    "phone",
    [
        "0912345678",  # 台灣門號 (共 10 碼)
        "13512345123",  # 大陸門號 (共 11 碼)
        "54123123",  # 香港門號 (共 8 碼)
        "85366123123",  # 澳門 (共 11 碼)
        "819012345123",  # 日本 (共 12 碼)
        "60121234123",  # 馬來西亞 (11)
        "601212345123",  # 馬來西亞 (12)
        "84121234123",  # 越南 (11)
        "628123123123",  # 印尼 (12)
        "6281231231234",  # 印尼 (13)
        "66812312123",  # 泰國 (11)
        "61412312123",  # 澳洲 (11)
        "6581231234",  # 新加坡 (10)
        "639712345123",  # 菲律賓 (12)
        "971512345123",  # 阿聯 (12)
        "85512345123",  # 柬埔寨 (11)
        "0011231234123",  # 美國 (共 13 碼)
        "82112345123",  # 韓國 (11)
    ],
)
def test_documented_phone_formats(env: Env, phone: str) -> None:
    """§一 phone "手機號碼輸入格式" table: every listed country's format is accepted."""
    assert env.send(phone=phone)["error_code"] == "000"


@pytest.mark.parametrize("phone", ["+886912345678", "886912345678", "091234567", "0912-345-678", "12345"])
def test_bad_number_is_parameter_error(env: Env, phone: str) -> None:
    """§一 has no "bad number" code; a number outside the format table is "001 參數錯誤"."""
    before = env.points()
    reply = env.send(phone=phone)
    assert (reply["stats"], reply["error_code"], reply["error_msg"]) == (False, "001", "參數錯誤")
    assert env.points() == before
    assert env.messages() == []


def test_comma_list_with_spaces(env: Env) -> None:
    """§一 "多人名單: 09XX123XXX, 135xxx12xxx (多人發送以逗號隔開)"."""
    reply = env.send(phone=f"{TW}, 13512345123,")
    assert reply["error_code"] == "000"
    assert reply["error_msg"].split("|")[1] == "3"
    assert [r["recipient"] for r in env.messages()] == [TW, "13512345123"]


@pytest.mark.parametrize(
    "fields",
    [
        {"username": ""},
        {"password": ""},
        {"method": "3"},
        {"method": ""},
        {"sms_msg": ""},
    ],
)
def test_parameter_error(env: Env, fields: dict[str, str]) -> None:
    """§一 "001 參數錯誤"; method "只允許以下兩個數值 1 / 2"."""
    reply = env.send(**fields)
    assert (reply["stats"], reply["error_code"]) == (False, "001")


def test_wrong_password(env: Env) -> None:
    """§一 "005 帳號密碼錯誤"."""
    assert env.send(password="nope")["error_code"] == "005"
    assert env.send(username="nobody")["error_msg"] == "帳號密碼錯誤"


def test_ip_not_allowed(env: Env) -> None:
    """§一 "006 IP 無法存取"."""
    env.account(allowed_ips=["10.9.9.9"])
    assert env.send()["error_code"] == "006"
    env.account(allowed_ips=["127.0.0.1"])
    assert env.send()["error_code"] == "000"


def test_zero_recipients(env: Env) -> None:
    """§一 "007 收件者人數為 0"."""
    assert env.send(phone="")["error_code"] == "007"
    assert env.send(phone=" , ")["error_code"] == "007"


def test_more_than_250(env: Env) -> None:
    """§一 "收件人上限 250 人" / "008 收件人超過 250 人"."""
    many = [f"09{n:08d}" for n in range(251)]
    assert env.send(phone=",".join(many))["error_code"] == "008"
    reply = env.send(phone=",".join(many[:250]))
    assert reply["error_code"] == "000"
    assert len(env.messages()) == 250


def test_message_too_long(env: Env) -> None:
    """§一 "004 訊息長度過長" (no maximum documented: 5 parts, 335 / 765 characters)."""
    assert env.send(sms_msg="中" * 336)["error_code"] == "004"
    assert env.send(sms_msg="a" * 766)["error_code"] == "004"
    assert env.send(sms_msg="中" * 335)["error_code"] == "000"
    assert env.send(sms_msg="a" * 765)["error_code"] == "000"


def test_insufficient_points_charges_nothing(env: Env) -> None:
    """§一 "009 點數不足"."""
    env.account(points="1")
    reply = env.send(phone=f"{TW},{TW2}")
    assert (reply["stats"], reply["error_code"], reply["error_msg"]) == (False, "009", "點數不足")
    assert env.points() == 1
    assert env.messages() == []


# -- schedules -------------------------------------------------------------------------------
def test_scheduled_send_waits(env: Env) -> None:
    """§一 method "2"=>預約發送; send_date "YYYY/MM/DD", hour 00~23, min 00~59 (Taiwan time)."""
    when = taipei_later()
    reply = env.send(method="2", send_date=when.strftime("%Y/%m/%d"), hour=when.strftime("%H"), min=when.strftime("%M"))
    assert reply["error_code"] == "000"
    row = env.messages()[0]
    assert row["state"] == "scheduled"
    assert row["send_at"] == when.timestamp()


@pytest.mark.parametrize(
    "fields",
    [
        {"send_date": ""},
        {"send_date": "2030-01-01"},
        {"send_date": "2030/02/30"},
        {"hour": "24"},
        {"hour": "9"},
        {"min": "60"},
        {"min": ""},
    ],
)
def test_bad_schedule(env: Env, fields: dict[str, str]) -> None:
    """§一 "002 預約時間參數錯誤"."""
    base = {"method": "2", "send_date": "2030/01/01", "hour": "10", "min": "30"}
    reply = env.send(**{**base, **fields})
    assert reply["error_code"] == "002"


def test_past_schedule(env: Env) -> None:
    """§一 "003 預約時間過期"."""
    past = datetime.now(TAIPEI) - timedelta(hours=1)
    reply = env.send(method="2", send_date=past.strftime("%Y/%m/%d"), hour=past.strftime("%H"), min="00")
    assert reply["error_code"] == "003"
    assert env.messages() == []


def test_no_status_or_cancel_endpoint(env: Env) -> None:
    """provider-notes "No status query exists": only the three documented scripts answer."""
    for path in ("/api_query.php", "/api_cancel.php", "/api_query_status.php"):
        assert env.http.get(path).status_code == 404


# -- §三 雙向簡訊 ------------------------------------------------------------------------------
def test_two_way_send(env: Env) -> None:
    """§三 api_send_twoway.php answers like §一 ("訊息 ID 使用點數 剩餘點數")."""
    reply = env.send("/api_send_twoway.php", sms_msg="請回覆")
    assert reply["error_code"] == "000"
    assert reply["error_msg"].split("|")[1] == "1"


def test_two_way_not_subscribed(env: Env) -> None:
    """§三 "010 尚未申請雙向功能" (the account has no two-way code)."""
    env.account(two_way_code="")
    reply = env.send("/api_send_twoway.php")
    assert (reply["stats"], reply["error_code"], reply["error_msg"]) == (False, "010", "尚未申請雙向功能")


def test_two_way_taiwan_only(env: Env) -> None:
    """§三 "雙向簡訊僅台灣手機門號可送達"."""
    assert env.send("/api_send_twoway.php", phone="13512345123")["error_code"] == "001"


# -- §五 查詢剩餘點數 ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_credit(env: Env, method: str) -> None:
    """§五 error_msg "帳號 剩餘點數" (provider-notes: ``account|points``)."""
    data = {"username": USER, "password": PASSWORD}
    raw = (
        env.http.get("/api_query_credit.php", params=data)
        if method == "GET"
        else env.http.post("/api_query_credit.php", data=data)
    )
    assert raw.json() == {"stats": True, "error_code": "000", "error_msg": f"{USER}|100000"}
    env.send()
    assert env.http.post("/api_query_credit.php", data=data).json()["error_msg"] == f"{USER}|99999"


def test_credit_errors(env: Env) -> None:
    """§五 "001 參數錯誤 / 005 帳號密碼錯誤 / 006 IP 無法存取"."""
    assert env.http.post("/api_query_credit.php", data={"username": USER}).json()["error_code"] == "001"
    wrong = {"username": USER, "password": "x"}
    assert env.http.post("/api_query_credit.php", data=wrong).json()["error_code"] == "005"
    env.account(allowed_ips=["10.0.0.1"])
    right = {"username": USER, "password": PASSWORD}
    assert env.http.post("/api_query_credit.php", data=right).json()["error_code"] == "006"


# -- §二 接收回傳狀態 ---------------------------------------------------------------------------
RECORD = re.compile(r"(?P<phone>[^|]+)\|(?P<id>[0-9a-f]{8})\|(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\|(?P<st>\w+)")


def test_delivery_callback(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§二 "我們將以 POST 方式傳送" ``sms_id`` + ``content``; "若單筆訊息有多收件人,將以逗點分隔";
    record "電話號碼 簡訊辨識 ID 電信商回報時間 回報狀態" with ``|`` (provider-notes)."""
    rec, url = receiver
    env.account(callback_url=url)
    msgid = env.send(phone=f"{TW},{TW2}")["error_msg"].split("|")[0]
    wait_for(lambda: len(rec.calls) >= 1)
    time.sleep(0.1)
    assert len(rec.calls) == 1  # one callback for the msgid, both records in it
    call = rec.calls[0]
    assert call["method"] == "POST"
    assert "x-www-form-urlencoded" in call["content_type"]
    fields = dict(parse_qsl(call["body"].decode("ascii")))
    assert fields["sms_id"] == msgid
    records = fields["content"].split(",")
    assert len(records) == 2
    parsed = [RECORD.fullmatch(r) for r in records]
    assert all(parsed)
    assert [(m["phone"], m["st"]) for m in parsed if m] == [(TW, "DELIVRD"), (TW2, "DELIVRD")]
    stamp = parsed[0]["time"] if parsed[0] else ""
    age = datetime.now(TAIPEI) - datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=TAIPEI)
    assert abs(age.total_seconds()) < 5  # Taiwan time
    wait_for(lambda: len(env.attempts(url)) == 1)
    assert env.attempts(url)[0]["ok"] is True


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("undeliverable", "UNDELIV"), ("expired", "EXPIRED"), ("rejected", "REJECTD")],
)
def test_callback_statuses(env: Env, receiver: tuple[Inbox, str], outcome: str, status: str) -> None:
    """§二 回報狀態 (the sample shows ``DELIVRD``; the other operator report states)."""
    rec, url = receiver
    env.account(callback_url=url)
    env.control.post("/_sandbox/config", json={"outcome_mix": {outcome: 1.0}})
    env.send()
    wait_for(lambda: len(rec.calls) >= 1)
    content = dict(parse_qsl(rec.calls[0]["body"].decode()))["content"]
    assert content.endswith("|" + status)


def test_callback_retried_without_ok(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§二 "您接收的 URL 僅需要回應"ok"字串即可": anything else (here "OK!" and HTTP 500) is not an
    acknowledgement; the sandbox retries 3 times (the document gives no retry rule)."""
    rec, url = receiver
    rec.answers = [(200, "OK!"), (500, "ok"), (200, "fail")]
    env.account(callback_url=url)
    env.send()
    wait_for(lambda: len(rec.calls) >= 4)
    wait_for(lambda: len(env.attempts(url)) >= 4)
    assert [c["ok"] for c in env.attempts(url)] == [False, False, False, True]
    assert rec.calls[0]["body"] == rec.calls[3]["body"]


def test_callback_gives_up_after_three_retries(env: Env, receiver: tuple[Inbox, str]) -> None:
    """Undocumented retry rule: 1 attempt + 3 retries, then nothing more."""
    rec, url = receiver
    rec.default = (200, "nope")
    env.account(callback_url=url)
    env.send()
    wait_for(lambda: len(rec.calls) >= 4)
    time.sleep(0.2)
    assert len(rec.calls) == 4


def test_ok_with_whitespace_is_accepted(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§二 the body "ok" (a trailing newline from ``echo`` is tolerated)."""
    rec, url = receiver
    rec.default = (200, "ok\n")
    env.account(callback_url=url)
    env.send()
    wait_for(lambda: len(env.attempts(url)) >= 1)
    time.sleep(0.1)
    assert len(rec.calls) == 1


def test_no_callback_without_url(env: Env) -> None:
    """§二 "請先至 API 設定頁面設定 CallBack URL": no URL, no callback."""
    env.send()
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    assert env.sandbox.state("smsget").callbacks_sent == []


def test_lost_recipients_left_out_of_the_batch_report(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§二 "若單筆訊息有多收件人,將以逗點分隔": the report waits for every recipient; one that
    never gets a report (fault ``lost_rate``) is left out instead of holding the batch back."""
    inbox, url = receiver
    env.account(callback_url=url)
    set_faults(env, lost_rate=0.5)
    env.send(phone=",".join(f"09{n:08d}" for n in range(12)))
    state = env.sandbox.state("smsget")
    kept = [m.recipient for m in state.messages if not m.lost]
    assert 0 < len(kept) < 12  # seeded: both kinds occur
    wait_for(lambda: len(inbox.calls) >= 1)
    content = dict(parse_qsl(inbox.calls[0]["body"].decode()))["content"]
    assert [record.split("|")[0] for record in content.split(",")] == kept


def test_duplicate_callbacks_fault(env: Env, receiver: tuple[Inbox, str]) -> None:
    """Fault ``duplicate_callbacks``: the same report arrives twice (receivers must be idempotent)."""
    inbox, url = receiver
    env.account(callback_url=url)
    set_faults(env, duplicate_callbacks=True)
    env.send()
    wait_for(lambda: len(inbox.calls) >= 2)
    assert inbox.calls[0]["body"] == inbox.calls[1]["body"]


# -- §四 雙向簡訊 CallBack ----------------------------------------------------------------------
def test_reply_callback(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§四 content "電話號碼 簡訊辨識 ID 電信商回報時間 回覆內容"; "回覆內容為 UTF-8 格式,且經過
    URL ENCODE"; sample ``03%E9%9B%99…`` keeps the two-way code."""
    rec, url = receiver
    env.account(reply_callback_url=url, two_way_code="03")
    msgid = env.send("/api_send_twoway.php", sms_msg="要參加嗎?")["error_msg"].split("|")[0]
    reply = env.control.post("/_sandbox/smsget/reply", json={"from": TW, "text": "03雙向簡訊回傳", "message_id": msgid})
    assert reply.json()["reply_to"] == msgid
    wait_for(lambda: len(rec.calls) >= 1)
    call = rec.calls[0]
    assert call["method"] == "POST"
    content = dict(parse_qsl(call["body"].decode("ascii")))["content"]
    phone, record_id, stamp, text = content.split("|")
    assert phone == TW
    assert record_id == env.messages()[0]["extra"]["record_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", stamp)
    assert text == "03%E9%9B%99%E5%90%91%E7%B0%A1%E8%A8%8A%E5%9B%9E%E5%82%B3"  # the document's sample
    assert unquote(text) == "03雙向簡訊回傳"


def test_reply_without_code_is_dropped(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§四 "若回傳時未加上雙向簡訊代碼,或簡訊代碼錯誤者,您將無法接收回傳簡訊"."""
    rec, url = receiver
    env.account(reply_callback_url=url, two_way_code="03")
    env.control.post("/_sandbox/smsget/reply", json={"from": TW, "text": "好"})
    env.control.post("/_sandbox/smsget/reply", json={"from": TW, "text": "04好"})
    env.control.post("/_sandbox/smsget/reply", json={"from": TW, "text": "03好"})
    wait_for(lambda: len(rec.calls) >= 1)
    time.sleep(0.1)
    assert len(rec.calls) == 1
    assert dict(parse_qsl(rec.calls[0]["body"].decode()))["content"].endswith("|03%E5%A5%BD")


# -- faults --------------------------------------------------------------------------------
def set_faults(env: Env, **values: Any) -> None:
    assert env.control.post("/_sandbox/smsget/faults", json=values).status_code == 200


def test_fault_5xx(env: Env) -> None:
    set_faults(env, error_rate=1.0)
    assert env.http.post("/api_send.php", data={}).status_code == 500


def test_fault_busy(env: Env) -> None:
    """No busy code is documented: ``stats`` false with the undocumented code 999."""
    set_faults(env, busy_rate=1.0)
    reply = env.send()
    assert reply["stats"] is False and reply["error_code"] == "999"
    assert env.messages() == []


def test_fault_malformed(env: Env) -> None:
    set_faults(env, malformed_rate=1.0)
    raw = env.http.post(
        "/api_send.php",
        data={"username": USER, "password": PASSWORD, "method": "1", "sms_msg": "x", "phone": TW},
    )
    assert raw.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw.text)
    assert len(env.messages()) == 1  # processed, then the answer was garbled: ambiguous


def test_fault_rate_limit(env: Env) -> None:
    set_faults(env, rate_limit=2)
    codes = [
        env.http.post("/api_query_credit.php", data={"username": USER, "password": PASSWORD}).status_code
        for _ in range(6)
    ]
    assert 429 in codes
    time.sleep(0.6)  # the bucket refills at 2 requests/s
    assert env.http.post("/api_query_credit.php", data={"username": USER, "password": PASSWORD}).status_code == 200


# -- determinism -----------------------------------------------------------------------------
def test_seed_determinism() -> None:
    """Same seed → same message ids and per-recipient ids."""
    ids: list[list[tuple[str, str]]] = []
    for _ in range(2):
        # outcomes draw from the same generator as ids: no delivery may happen in between
        sandbox, server = start(seed=42, delivery_delay=60)
        try:
            with httpx.Client(base_url=server.url + "/smsget") as http:
                for _ in range(3):
                    http.post(
                        "/api_send.php",
                        data={
                            "username": USER,
                            "password": PASSWORD,
                            "method": "1",
                            "sms_msg": "x",
                            "phone": f"{TW},{TW2}",
                        },
                    )
            ids.append([(m.message_id, m.extra["record_id"]) for m in sandbox.state("smsget").messages])
        finally:
            server.stop()
    assert len(ids[0]) == 6
    assert ids[0] == ids[1]
