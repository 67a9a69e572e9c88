"""The EVERY8D HTTP emulator over real HTTP, checked against
``shared/specs/every8d-http-api-2.1.txt`` (and provider-notes "EVERY8D HTTP").

Each test quotes the document (section + a short quote) for the behaviour it checks.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.sandbox import Sandbox, SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.app import demo_accounts
from formosms.sandbox.every8d import Every8dEmulator, sms_points
from formosms.timefmt import TAIPEI
from tests.helpers import wait_for

USER, PASSWORD = "demo", "demo-secret"
TW, TW2 = "0912345678", "+886922333444"
SMS = "/API21/HTTP/sendSMS.ashx"
MMS = "/API21/HTTP/MMS/sendMMS.ashx"
STATUS = "/API21/HTTP/getDeliveryStatus.ashx"
MMS_STATUS = "/API21/HTTP/MMS/getDeliveryStatus.ashx"
CREDIT = "/API21/HTTP/getCredit.ashx"
ERASE = "/API21/HTTP/eraseBooking.ashx"
MMS_ERASE = "/API21/HTTP/MMS/eraseBooking.ashx"
SEND_REPLY = re.compile(r"(\d+\.\d\d),(\d+),(\d+),(\d+),([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(200)).decode()


# -- harness --------------------------------------------------------------------------------
@dataclass
class Inbox:
    """What one test's callback URL received; answers come from a script, then ``default``."""

    answers: list[tuple[int, str]] = field(default_factory=list)
    default: tuple[int, str] = (200, "")
    calls: list[dict[str, Any]] = field(default_factory=list)

    def fields(self, index: int) -> dict[str, str]:
        return dict(parse_qsl(self.calls[index]["query"], keep_blank_values=True))


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
                inbox.calls.append({"method": request.method, "query": request.url.query, "body": body})
                status, text = inbox.answers.pop(0) if inbox.answers else inbox.default
            return PlainTextResponse(text, status_code=status)

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])


@dataclass
class Env:
    sandbox: Sandbox
    http: httpx.Client
    control: httpx.Client

    @property
    def emulator(self) -> Every8dEmulator:
        emulator = self.sandbox.emulators["every8d"]
        assert isinstance(emulator, Every8dEmulator)
        return emulator

    def call(self, path: str, verb: str = "POST", **fields: str) -> str:
        data = {"UID": USER, "PWD": PASSWORD, **fields}
        reply = self.http.get(path, params=data) if verb == "GET" else self.http.post(path, data=data)
        assert reply.status_code == 200
        return reply.text

    def send(self, path: str = SMS, verb: str = "POST", **fields: str) -> str:
        data = {"SB": "", "MSG": "hello", "DEST": TW, "ST": ""}
        data.update(fields)
        return self.call(path, verb, **data)

    def send_ok(self, path: str = SMS, **fields: str) -> tuple[Decimal, int, int, int, str]:
        body = self.send(path, **fields)
        match = SEND_REPLY.fullmatch(body)
        assert match, body
        credit, sended, cost, unsend, batch = match.groups()
        return Decimal(credit), int(sended), int(cost), int(unsend), batch

    def mms(self, **fields: str) -> str:
        data = {"SB": "週年慶", "MSG": "圖文", "DEST": TW, "ATTACHMENT": PNG, "TYPE": "png"}
        data.update(fields)
        return self.send(MMS, **data)

    def status(self, batch: str, path: str = STATUS, pno: str = "") -> list[list[str]]:
        lines = self.call(path, BID=batch, PNO=pno).split("\n")
        return [[lines[0]], *[line.split("\t") for line in lines[1:]]]

    def messages(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.control.get("/_sandbox/every8d/messages").json()
        return rows

    def account(self, **values: Any) -> None:
        reply = self.control.post("/_sandbox/every8d/accounts", json={"username": USER, **values})
        assert reply.status_code == 200, reply.text

    def attempts(self, url: str) -> list[dict[str, Any]]:
        """The emulator's record of its callback attempts to ``url``."""
        return [c for c in self.sandbox.state("every8d").callbacks_sent if c["url"].split("?")[0] == url]

    def points(self) -> Decimal:
        return self.sandbox.state("every8d").accounts[USER].points


def start(seed: int | None = 1, delivery_delay: float = 0.05) -> tuple[Sandbox, ServerThread]:
    sandbox = create_sandbox(SandboxConfig(seed=seed, delivery_delay=delivery_delay), emulators=[Every8dEmulator])
    server = ServerThread(sandbox.app).start()
    return sandbox, server


@pytest.fixture(scope="module")
def served() -> Iterator[Env]:
    sandbox, server = start()
    with (
        httpx.Client(base_url=server.url + "/every8d", timeout=5) as http,
        httpx.Client(base_url=server.url, timeout=5) as control,
    ):
        yield Env(sandbox, http, control)
    server.stop()


@pytest.fixture
def env(served: Env) -> Env:
    """The module's sandbox, reset to a fresh state: demo account, no faults, no messages."""
    sandbox = served.sandbox
    state = sandbox.state("every8d")
    state.reset()
    state.accounts.clear()
    for account in demo_accounts():
        state.add_account(account)
    sandbox.config.delivery_delay = 0.05
    sandbox.config.outcome_mix = {"delivered": 1.0}
    served.emulator.callback_backoff = 0.005
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
    path = f"/report/{len(shared.inboxes) + 1}.aspx"
    inbox = shared.inboxes[path] = Inbox()
    url = server.url + path
    yield inbox, url
    wait_for(lambda: len(env.attempts(url)) >= len(inbox.calls))


def st(when: datetime) -> str:
    return when.astimezone(TAIPEI).strftime("%Y%m%d%H%M%S")


def later(days: int = 2) -> datetime:
    return (datetime.now(TAIPEI) + timedelta(days=days)).replace(microsecond=0)


# -- §1.1 長簡訊傳送 ----------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_send_success_format(env: Env, verb: str) -> None:
    """§1.1 回傳值 "CREDIT,SENDED,COST,UNSEND,BATCH_ID" (newer 5-field sample
    ``1230.00,4,4,0,<uuid>``, provider-notes); §0 "可使用 HTTP Post 或 HTTP Get 方式介接"."""
    body = env.send(verb=verb, MSG="你好", DEST=f"{TW},{TW2}")
    match = SEND_REPLY.fullmatch(body)
    assert match, body
    credit, sended, cost, unsend, batch = match.groups()
    assert (credit, sended, cost, unsend) == ("99998.00", "2", "2", "0")
    assert env.points() == Decimal("99998")
    rows = env.messages()
    assert [(r["recipient"], r["text"], r["batch_id"], r["points"]) for r in rows] == [
        (TW, "你好", batch, "1"),
        (TW2, "你好", batch, "1"),
    ]
    assert rows[0]["validity"] == 1440 * 60  # RETRYTIME "預設 1440 分鐘"


def test_text_is_decoded_once(env: Env) -> None:
    """§0 "傳遞前請使用 URL encode": one ordinary encoding, decoded once."""
    text = "折扣 50% & 免運+贈品 %E4"
    env.send_ok(MSG=text)
    assert env.messages()[0]["text"] == text


def test_parameter_names_ignore_case(env: Env) -> None:
    """ASP.NET ``Request["UID"]`` (§2.1 sample code) reads parameters whatever their case."""
    reply = env.http.post(SMS, data={"uid": USER, "pwd": PASSWORD, "msg": "x", "dest": TW})
    assert SEND_REPLY.fullmatch(reply.text)


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
        (400, 6),
    ],
)
def test_taiwan_pricing(env: Env, length: int, points: int) -> None:
    """§1.1 "1~70(字) 扣 1 點 / 71~134 扣 2 點 / 135~201 扣 3 點 / 202~268 扣 4 點 / 269~333 扣 5 點";
    "超過 333 字仍可發送，系統將自動拆則" (67 a part)."""
    _credit, _sended, cost, _unsend, _batch = env.send_ok(MSG="中" * length)
    assert cost == points
    assert env.points() == 100000 - points
    assert sms_points("a" * length, "+886912345678") == points  # 字 counts letters alike


def test_international_triple(env: Env) -> None:
    """§1.1 "※國際簡訊(非+886 開頭)則需以三倍點數計價之"."""
    _credit, sended, cost, _unsend, _batch = env.send_ok(MSG="中" * 71, DEST="+8613512345678,+819012345678")
    assert (sended, cost) == (2, 12)


@pytest.mark.parametrize("dest", ["886912345678", "912345678", "+1-202-895-1800", "09123456789", "+886212345678"])
def test_bad_number(env: Env, dest: str) -> None:
    """provider-notes "-306,手機格式不符:+1-202-895-1800"; §1.1 DEST "+886912345678 或 0912345678"."""
    body = env.send(DEST=f"{TW},{dest}")
    assert body == f"-306,手機格式不符:{dest}"
    assert env.messages() == []
    assert env.points() == 100000


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"UID": ""}, "-300, 帳號密碼不得為空值。"),
        ({"PWD": ""}, "-300, 帳號密碼不得為空值。"),
        ({"UID": "nobody"}, "-100, 帳號或密碼錯誤"),
        ({"PWD": "wrong"}, "-101, 密碼錯誤。"),
    ],
)
def test_authentication_errors(env: Env, fields: dict[str, str], expected: str) -> None:
    """provider-notes: "-300, 帳號密碼不得為空值。", "-100, 帳號或密碼錯誤", "-101, 密碼錯誤。"."""
    for path in (SMS, CREDIT, STATUS, ERASE, MMS):
        data = {"UID": USER, "PWD": PASSWORD, "MSG": "x", "DEST": TW, **fields}
        assert env.http.post(path, data=data).text == expected


def test_empty_content(env: Env) -> None:
    """provider-notes "-24 (empty content)"."""
    assert env.send(MSG="").startswith("-24,")


def test_no_mobile(env: Env) -> None:
    """provider-notes "-41 (no mobile)"; §1.1 DEST 接收人之手機號碼."""
    assert env.send(DEST="").startswith("-41,")
    assert env.send(DEST=" , ").startswith("-41,")


def test_scheduled_send(env: Env) -> None:
    """§1.1 ST "預約發送：請傳入預計發送時間 … 格式為 yyyyMMddHHmnss" (Taiwan time)."""
    when = later()
    _credit, _sended, _cost, _unsend, batch = env.send_ok(ST=st(when))
    row = env.messages()[0]
    assert row["state"] == "scheduled"
    assert row["send_at"] == when.timestamp()
    rows = env.status(batch)
    assert rows[1][2] == when.strftime("%Y/%m/%d %H:%M:%S")
    assert rows[1][4] == "300"  # "300 預約簡訊"


def test_past_schedule_sends_now(env: Env) -> None:
    """§1.1 ST "若傳遞時間已逾現在之時間，將立即發送"."""
    env.send_ok(ST=st(datetime.now(TAIPEI) - timedelta(hours=1)))
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    assert env.messages()[0]["send_at"] is None


@pytest.mark.parametrize("value", ["2030/01/31 15:30", "203001311530", "20300231153000", "x" * 14])
def test_bad_schedule(env: Env, value: str) -> None:
    """Status -4 "DT 格式錯誤或預計發送時間已過去 24 小時以上" as the send's error."""
    assert env.send(ST=value).startswith("-4,")
    assert env.messages() == []


def test_schedule_over_a_day_past(env: Env) -> None:
    """Status -4 "…預計發送時間已過去 24 小時以上"."""
    assert env.send(ST=st(datetime.now(TAIPEI) - timedelta(hours=25))).startswith("-4,")


def test_retrytime_sets_validity(env: Env) -> None:
    """§1.1 RETRYTIME "簡訊有效期限，單位：分鐘"."""
    env.send_ok(RETRYTIME="30")
    assert env.messages()[0]["validity"] == 1800


def test_insufficient_credit_unsend(env: Env) -> None:
    """§1.1 UNSEND "無額度時發送的通數，當該值大於 0 而剩餘點數等於 0 時表示有部份的簡訊因無額度而無法
    被發送"; the unsent recipients carry status "301 無額度(或額度不足)無法發送"."""
    env.account(points="3")
    credit, sended, cost, unsend, batch = env.send_ok(DEST=",".join(f"09{n:08d}" for n in range(5)))
    assert (credit, sended, cost, unsend) == (Decimal(0), 3, 3, 2)
    assert env.points() == 0
    statuses = [row[4] for row in env.status(batch)[1:]]
    assert statuses[3:] == ["301", "301"]
    costs = [row[3] for row in env.status(batch)[1:]]
    assert costs == ["1.0", "1.0", "1.0", "0.0", "0.0"]


def test_international_disabled(env: Env) -> None:
    """§1.1 "發送前請注意先登入至網站開啟您的國際簡訊 … 此設定預設為關閉"; status
    "500 未開通國際簡訊，無法發送國際簡訊"."""
    env.account(international=False)
    _credit, sended, cost, unsend, batch = env.send_ok(DEST=f"{TW},+8613512345678")
    assert (sended, cost, unsend) == (2, 1, 0)
    assert [row[4] for row in env.status(batch)[1:]][1] == "500"


def test_malformed_retrytime_defaults(env: Env) -> None:
    """Undocumented: a RETRYTIME that is not a positive number of minutes → the 1440 default."""
    env.send_ok(RETRYTIME="soon")
    assert env.messages()[0]["validity"] == 86400


# -- §3.1 餘額查詢 ----------------------------------------------------------------------------
@pytest.mark.parametrize("verb", ["GET", "POST"])
def test_credit(env: Env, verb: str) -> None:
    """§3.1 "回傳餘額，範例：2310.00"."""
    assert env.call(CREDIT, verb) == "100000.00"
    env.send_ok(DEST="+8613512345678")
    assert env.call(CREDIT, verb) == "99997.00"


# -- §2.2 發送狀態查詢 --------------------------------------------------------------------------
def test_status_format(env: Env) -> None:
    """§2.2 "以 TAB(\\t)分隔，一筆資料一行": SMS_COUNT, then NAME MOBILE SEND_TIME COST STATUS
    (+ RECEIVED_TIME, the newer edition's 6th column, provider-notes)."""
    before = datetime.now(TAIPEI).replace(microsecond=0)
    _c, _s, _cost, _u, batch = env.send_ok(DEST=f"{TW},{TW2}", MSG="中" * 71)
    wait_for(lambda: all(m["state"] == "delivered" for m in env.messages()))
    rows = env.status(batch)
    assert rows[0] == ["2"]
    assert len(rows) == 3
    for row, mobile in zip(rows[1:], ["+886912345678", "+886922333444"], strict=True):
        name, got_mobile, sent, cost, status, received = row
        assert (name, got_mobile, cost, status) == ("", mobile, "2.0", "100")
        sent_at = datetime.strptime(sent, "%Y/%m/%d %H:%M:%S").replace(tzinfo=TAIPEI)
        received_at = datetime.strptime(received, "%Y/%m/%d %H:%M:%S").replace(tzinfo=TAIPEI)
        assert before <= sent_at <= received_at <= datetime.now(TAIPEI)


def test_status_pending(env: Env) -> None:
    """§2.2 "0 已發送" while the operator has not reported."""
    env.control.post("/_sandbox/config", json={"delivery_delay": 30})
    _c, _s, _cost, _u, batch = env.send_ok()
    row = env.status(batch)[1]
    assert (row[4], row[5]) == ("0", "")


@pytest.mark.parametrize(("outcome", "code"), [("undeliverable", "101"), ("expired", "107"), ("rejected", "103")])
def test_status_outcomes(env: Env, outcome: str, code: str) -> None:
    """§2.2 接收狀態代碼表: "101 手機端因素未能送達", "107 逾時收訊", "103 無此手機號碼"."""
    env.control.post("/_sandbox/config", json={"outcome_mix": {outcome: 1.0}})
    _c, _s, _cost, _u, batch = env.send_ok()
    wait_for(lambda: env.messages()[0]["state"] == outcome)
    assert env.status(batch)[1][4] == code


def test_status_pages(env: Env) -> None:
    """§2.2 "每次最多回傳 1000 筆資料"; PNO "欲查詢第 1001~2000 筆資料時，PageNo 傳入 "2""."""
    dest = ",".join(f"09{n:08d}" for n in range(1001))
    _c, sended, _cost, _u, batch = env.send_ok(DEST=dest, ST=st(later()))
    assert sended == 1001
    first = env.status(batch)
    assert first[0] == ["1001"] and len(first) == 1001
    assert env.status(batch, pno="1") == first
    second = env.status(batch, pno="2")
    assert second[0] == ["1001"]
    assert [row[1] for row in second[1:]] == ["+886900001000"]
    assert env.status(batch, pno="3") == [["1001"]]


def test_status_unknown_batch(env: Env) -> None:
    """Undocumented: an unknown BID answers a count of 0 and no rows."""
    assert env.call(STATUS, BID="220478cc-8506-49b2-93b7-2505f651c12e", PNO="") == "0"
    assert env.call(STATUS, BID="", PNO="") == "0"


def test_status_of_another_account_is_hidden(env: Env) -> None:
    """A batch belongs to the account that sent it."""
    _c, _s, _cost, _u, batch = env.send_ok()
    env.control.post("/_sandbox/every8d/accounts", json={"username": "other", "password": "pw"})
    reply = env.http.post(STATUS, data={"UID": "other", "PWD": "pw", "BID": batch})
    assert reply.text == "0"


# -- §3.2 刪除預約簡訊 --------------------------------------------------------------------------
def test_erase_booking(env: Env) -> None:
    """§3.2 "a,b  a:刪除的筆數, b:回補的點數"; "303 取消簡訊"."""
    _c, _s, cost, _u, batch = env.send_ok(DEST=f"{TW},{TW2}", MSG="中" * 71, ST=st(later()))
    assert cost == 4 and env.points() == 99996
    assert env.call(ERASE, BID=batch) == "2,4"
    assert env.points() == 100000
    assert [row[4] for row in env.status(batch)[1:]] == ["303", "303"]
    assert [m["state"] for m in env.messages()] == ["canceled", "canceled"]


def test_erase_nothing_found(env: Env) -> None:
    """§3.2 "空值 查無資料": unknown batch, a batch already sent, a batch already erased."""
    assert env.call(ERASE, BID="220478cc-8506-49b2-93b7-2505f651c12e") == ""
    _c, _s, _cost, _u, sent = env.send_ok()
    assert env.call(ERASE, BID=sent) == ""
    _c, _s, _cost, _u, booked = env.send_ok(ST=st(later()))
    assert env.call(ERASE, BID=booked) == "1,1"
    assert env.call(ERASE, BID=booked) == ""
    assert env.points() == 99999


# -- §1.2 MMS -----------------------------------------------------------------------------------
def test_mms_send(env: Env) -> None:
    """§1.2 "發至台灣門號計費方式 1~4000(字) 扣 4 點/則"; same reply as §1.1."""
    match = SEND_REPLY.fullmatch(env.mms(DEST=f"{TW},{TW2}"))
    assert match
    credit, sended, cost, unsend, batch = match.groups()
    assert (credit, sended, cost, unsend) == ("99992.00", "2", "8", "0")
    row = env.messages()[0]
    assert (row["kind"], row["extra"]["type"], row["extra"]["subject"]) == ("mms", "png", "週年慶")
    wait_for(lambda: all(m["state"] == "delivered" for m in env.messages()))
    rows = env.status(batch, path=MMS_STATUS)
    assert rows[0] == ["2"]
    assert [(r[1], r[3], r[4]) for r in rows[1:]] == [("+886912345678", "4.0", "700"), (TW2, "4.0", "700")]
    assert env.status(batch) == [["0"]]  # an MMS batch is not in the SMS status


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"SB": ""}, "-303"),  # provider-notes "-303 (MMS subject required)"
        ({"SB": "中" * 16}, "-303"),  # §1.2 "主旨中英文限制 15 字"
        ({"SB": "a" * 96}, "-303"),  # "純英數限制 95 字"
        ({"ATTACHMENT": ""}, "-304"),  # "-304 (no image)"
        ({"ATTACHMENT": "***not base64***"}, "-304"),
        ({"TYPE": ""}, "-305"),  # "-305 (no image type)"
        ({"TYPE": "bmp"}, "-305"),  # TYPE "支援 jpg/jpeg/png/gif"
        ({"ATTACHMENT": base64.b64encode(bytes(51 * 1024)).decode()}, "-314"),  # "圖加文大小 50KB"
        ({"DEST": "+8613512345678"}, "-306"),  # "MMS 簡訊不支援國際門號"
        ({"MSG": "中" * 4001}, "-24"),  # "內容最大可發至 4000 字"
    ],
)
def test_mms_errors(env: Env, fields: dict[str, str], code: str) -> None:
    """§1.2 limits, refused with the codes of provider-notes; nothing charged."""
    assert env.mms(**fields).startswith(code + ",")
    assert env.points() == 100000
    assert env.messages() == []


def test_mms_subject_limits_accept(env: Env) -> None:
    """§1.2 "主旨中英文限制 15 字，純英數限制 95 字": the limits themselves pass."""
    assert SEND_REPLY.fullmatch(env.mms(SB="中" * 15))
    assert SEND_REPLY.fullmatch(env.mms(SB="a" * 95, TYPE="JPEG"))


def test_mms_erase_booking(env: Env) -> None:
    """§3.3 刪除 MMS 預約簡訊 "a,b"; §2.3 "303 取消簡訊"; "300 預約簡訊"."""
    match = SEND_REPLY.fullmatch(env.mms(ST=st(later())))
    assert match
    batch = match.group(5)
    assert env.status(batch, path=MMS_STATUS)[1][4] == "300"
    assert env.call(ERASE, BID=batch) == ""  # the SMS endpoint does not see MMS bookings
    assert env.call(MMS_ERASE, BID=batch) == "1,4"
    assert env.status(batch, path=MMS_STATUS)[1][4] == "303"
    assert env.points() == 100000


# -- §2.1 發送狀態主動通知 ------------------------------------------------------------------------
def test_status_report_callback(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 "本系統會以下列方式通報(HTTP GET): report.aspx?BatchID=xxxx&RM=xxxx&RT=xxx&STATUS=xxx
    &SM=xxxx&MR=xxxx"; RM "(+886961295288)", RT "20090210120000"."""
    inbox, url = receiver
    text = "訂單 A&B 已出貨 100%"
    _c, _s, _cost, _u, batch = env.send_ok(MSG=text, StatusReportURL=url + "?shop=7", MR="R-1")
    wait_for(lambda: len(inbox.calls) >= 1)
    assert inbox.calls[0]["method"] == "GET"
    fields = inbox.fields(0)
    assert fields["shop"] == "7"  # the receiver's own query string is kept
    assert fields["BatchID"] == batch
    assert fields["RM"] == "+886912345678"
    assert fields["STATUS"] == "100"
    assert fields["SM"] == text
    assert fields["MR"] == "R-1"
    assert fields["USERID"] == USER
    assert re.fullmatch(r"\d{14}", fields["RT"])
    reported = datetime.strptime(fields["RT"], "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI)
    assert abs((datetime.now(TAIPEI) - reported).total_seconds()) < 5


def test_record_numbers_per_recipient(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 MR "可區分每一批發送中，重覆的電話號碼": one MR per DEST entry."""
    inbox, url = receiver
    env.send_ok(DEST=f"{TW},{TW}", MR="1,2", StatusReportURL=url)
    wait_for(lambda: len(inbox.calls) >= 2)
    assert sorted(inbox.fields(i)["MR"] for i in range(2)) == ["1", "2"]


def test_callback_retried_on_non_200(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 執行結果 "若連線不成功(HTTP 連線狀態碼非 200)的狀況下，此 HTTP 呼叫將會進行 Retry"."""
    inbox, url = receiver
    inbox.answers = [(500, ""), (404, ""), (302, "")]
    env.send_ok(StatusReportURL=url)
    wait_for(lambda: len(inbox.calls) >= 4)
    wait_for(lambda: len(env.attempts(url)) >= 4)
    assert [c["ok"] for c in env.attempts(url)] == [False, False, False, True]
    assert inbox.fields(0) == inbox.fields(3)


def test_callback_gives_up_after_ten_retries(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 "Retry 次數最多 10 次，錯誤超過 10 次後將不再傳送"."""
    inbox, url = receiver
    inbox.default = (503, "")
    env.send_ok(StatusReportURL=url)
    wait_for(lambda: len(inbox.calls) >= 11)
    time.sleep(0.3)
    assert len(inbox.calls) == 11


def test_no_callback_without_url(env: Env) -> None:
    """§2.1 "在發送簡訊時填入 StatusReportURL 值" — none given, no report."""
    env.send_ok()
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    assert env.sandbox.state("every8d").callbacks_sent == []


def test_unsent_recipient_reported_301(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 STATUS "301 無額度(或額度不足)無法發送"."""
    inbox, url = receiver
    env.account(points="0")
    _c, sended, _cost, unsend, _b = env.send_ok(StatusReportURL=url)
    assert (sended, unsend) == (0, 1)
    wait_for(lambda: len(inbox.calls) >= 1)
    assert inbox.fields(0)["STATUS"] == "301"


def test_reply_callback(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 回覆簡訊之判斷 "STATUS=999 時，即為回覆簡訊。回覆簡訊內容將置於 SM 參數"."""
    inbox, url = receiver
    _c, _s, _cost, _u, batch = env.send_ok(StatusReportURL=url, MR="42")
    wait_for(lambda: len(inbox.calls) >= 1)  # the delivery report
    env.control.post("/_sandbox/every8d/reply", json={"from": TW, "text": "好，我參加 +1", "message_id": batch})
    wait_for(lambda: len(inbox.calls) >= 2)
    fields = inbox.fields(1)
    assert fields["STATUS"] == "999"
    assert fields["SM"] == "好，我參加 +1"
    assert fields["RM"] == "+886912345678"
    assert (fields["BatchID"], fields["MR"]) == (batch, "42")


def test_reply_found_by_sender(env: Env, receiver: tuple[Inbox, str]) -> None:
    """A reply without a message id goes to the URL of the latest message to that number."""
    inbox, url = receiver
    env.send_ok(DEST=TW2, StatusReportURL=url)
    env.control.post("/_sandbox/every8d/reply", json={"from": "0922333444", "text": "STOP"})
    wait_for(lambda: any(inbox.fields(i)["STATUS"] == "999" for i in range(len(inbox.calls))))


def test_mms_report_is_700(env: Env, receiver: tuple[Inbox, str]) -> None:
    """§2.1 STATUS "700 MMS 已發送" (§2.3 knows no other sent state)."""
    inbox, url = receiver
    env.mms(StatusReportURL=url)
    wait_for(lambda: len(inbox.calls) >= 1)
    assert inbox.fields(0)["STATUS"] == "700"


# -- faults --------------------------------------------------------------------------------
def set_faults(env: Env, **values: Any) -> None:
    assert env.control.post("/_sandbox/every8d/faults", json=values).status_code == 200


def test_fault_busy(env: Env) -> None:
    """§1.1 註 1 "-99 主機端發生不明錯誤，請與廠商窗口聯繫。"."""
    set_faults(env, busy_rate=1.0)
    assert env.send() == "-99, 主機端發生不明錯誤，請與廠商窗口聯繫。"
    assert env.messages() == []


def test_fault_5xx(env: Env) -> None:
    set_faults(env, error_rate=1.0)
    assert env.http.post(CREDIT, data={"UID": USER, "PWD": PASSWORD}).status_code == 500


def test_fault_malformed(env: Env) -> None:
    set_faults(env, malformed_rate=1.0)
    body = env.send()
    assert not SEND_REPLY.fullmatch(body) and not body.startswith("-")
    assert len(env.messages()) == 1  # processed, then the answer was garbled: ambiguous


def test_fault_rate_limit(env: Env) -> None:
    set_faults(env, rate_limit=2)
    credentials = {"UID": USER, "PWD": PASSWORD}
    codes = [env.http.post(CREDIT, data=credentials).status_code for _ in range(6)]
    assert 429 in codes
    time.sleep(0.6)  # the bucket refills at 2 requests/s
    assert env.http.post(CREDIT, data=credentials).status_code == 200


# -- determinism -----------------------------------------------------------------------------
def test_seed_determinism() -> None:
    """Same seed → same batch ids."""
    batches: list[list[str]] = []
    for _ in range(2):
        # outcomes draw from the same generator as ids: no delivery may happen in between
        sandbox, server = start(seed=42, delivery_delay=60)
        try:
            with httpx.Client(base_url=server.url + "/every8d") as http:
                for _ in range(3):
                    http.post(SMS, data={"UID": USER, "PWD": PASSWORD, "MSG": "x", "DEST": TW})
            batches.append([m.batch_id for m in sandbox.state("every8d").messages])
        finally:
            server.stop()
    assert len(set(batches[0])) == 3
    assert batches[0] == batches[1]
