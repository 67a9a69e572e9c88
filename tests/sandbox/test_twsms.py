"""The TwSMS emulator, driven over HTTP as a client would, against
``shared/specs/twsms-json-api-4.0.txt`` (and the TwSMS part of ``provider-notes.md``).

Each test quotes the document (section + a short quote) for what it checks.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.sandbox import SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.twsms import TwSMSEmulator
from formosms.timefmt import TAIPEI
from tests.helpers import wait_for

USER, PASSWORD = "demo", "demo-secret"
SEND, QUERY, MO = "/twsms/json/sms_send.php", "/twsms/json/sms_query.php", "/twsms/json/smsmo_query.php"


@dataclass
class Env:
    url: str
    http: httpx.Client

    def send(self, **fields: str) -> dict[str, Any]:
        response = self.http.get(SEND, params={"username": USER, "password": PASSWORD, **fields})
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def query(self, path: str = QUERY, **fields: str) -> dict[str, Any]:
        response = self.http.get(path, params={"username": USER, "password": PASSWORD, **fields})
        assert response.status_code == 200
        return response.json()  # type: ignore[no-any-return]

    def messages(self) -> list[dict[str, Any]]:
        return self.http.get("/_sandbox/twsms/messages").json()  # type: ignore[no-any-return]

    def balance(self, user: str = USER) -> int:
        return int(self.http.get("/_sandbox").json()["twsms"]["accounts"][user])

    def account(self, **values: Any) -> None:
        self.http.post("/_sandbox/twsms/accounts", json=values).raise_for_status()

    def faults(self, **values: Any) -> None:
        self.http.post("/_sandbox/twsms/faults", json=values).raise_for_status()

    def config(self, **values: Any) -> None:
        self.http.post("/_sandbox/config", json=values).raise_for_status()


def start(seed: int = 7) -> tuple[ServerThread, Env]:
    sandbox = create_sandbox(SandboxConfig(seed=seed, delivery_delay=0.05), emulators=[TwSMSEmulator])
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
    served.faults(rate_limit=TwSMSEmulator.rate_limit)
    served.config(delivery_delay=0.05, outcome_mix={"delivered": 1.0})
    served.account(username=USER, password=PASSWORD, points=100000, international=True, two_way_code="03")
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

    def reports(self) -> list[dict[str, Any]]:
        return [c for c in self.calls if "smsresp" in c["query"]]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    with ServerThread(receiver.app()) as server:
        receiver.url = server.url
        yield receiver


def sendtime(minutes: float) -> str:
    return (datetime.now(TAIPEI) + timedelta(minutes=minutes)).strftime("%Y%m%d%H%M")


def error(code: str) -> dict[str, str]:
    from formosms.sandbox.twsms import TEXTS

    return {"code": code, "text": TEXTS[code]}


# -- §3 send ---------------------------------------------------------------------------------


def test_send_success(env: Env) -> None:
    """§3 Send API Sample: 接收: {"code":"00000","text":"Success","msgid":222160591}; §7 msgid
    "長度為 8~11" (a JSON number, provider notes)."""
    response = env.http.get(
        SEND,
        params={"username": USER, "password": PASSWORD, "mobile": "0911222333", "message": "台灣簡訊 test"},
    )
    assert re.fullmatch(r'\{"code":"00000","text":"Success","msgid":\d{8,11}\}', response.text)
    msgid = response.json()["msgid"]
    assert isinstance(msgid, int)
    [message] = env.messages()
    assert message["message_id"] == str(msgid) and message["recipient"] == "0911222333"
    assert message["text"] == "台灣簡訊 test" and message["points"] == "1"
    assert message["validity"] == 28800  # expirytime 預設 28800
    assert env.balance() == 100000 - 1


def test_send_by_post(env: Env) -> None:
    """§2.1: "傳送使用 http/https GET 或 http/https POST 方式"; §2.6 newline is \\n."""
    response = env.http.post(
        SEND,
        data={"username": USER, "password": PASSWORD, "mobile": "0911222333", "message": "第一行\n第二行"},
    )
    assert response.json()["code"] == "00000"
    assert env.messages()[0]["text"] == "第一行\n第二行"


def test_send_big5_encoded_message(env: Env) -> None:
    """§3 message: "可使用 UTF8 碼或 BIG5 碼"."""
    big5 = quote("台灣簡訊".encode("cp950"))
    response = env.http.get(f"{SEND}?username={USER}&password={PASSWORD}&mobile=0911222333&message={big5}")
    assert response.json()["code"] == "00000"
    assert env.messages()[0]["text"] == "台灣簡訊"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"username": "", "password": PASSWORD}, "00010"),
        ({"username": USER, "password": ""}, "00010"),
        ({"username": "nobody", "password": PASSWORD}, "00011"),
        ({"username": USER, "password": "wrong"}, "00012"),
    ],
)
def test_credentials(env: Env, fields: dict[str, str], code: str) -> None:
    """§6: 00010 帳號或密碼格式錯誤, 00011 帳號錯誤, 00012 密碼錯誤."""
    response = env.http.get(SEND, params={**fields, "mobile": "0911222333", "message": "x"})
    assert response.json() == error(code)
    assert env.messages() == []


def test_disabled_account_and_ip(env: Env) -> None:
    """§6: 00040 帳號已停用 (a known account, unlike 00011); 00030 IP 無使用權限."""
    env.account(username="stopped", password="pw", enabled=False)
    assert env.send(username="stopped", password="pw", mobile="0911222333", message="x") == error("00040")
    env.account(username="fenced", password="pw", allowed_ips=["10.1.1.1"])
    assert env.send(username="fenced", password="pw", mobile="0911222333", message="x") == error("00030")


@pytest.mark.parametrize(
    "mobile",
    [
        "",
        "0211222333",
        "091122233",
        "+8613681912700",
        " 8613681912700",
        "0911222333,0911222334",
        "886911222333",
    ],
)
def test_bad_mobile(env: Env, mobile: str) -> None:
    """§3 mobile: "09xxxxxxx(台灣門號) or 國碼+門號 (國際門號)" — one number, digits only; §6 00100."""
    assert env.send(mobile=mobile, message="x") == error("00100")


def test_international(env: Env) -> None:
    """§3 mobile: "國際門號每則扣 3 通"; §6 00031 限制發送國際門號."""
    reply = env.send(mobile="8613681912700", message="你好")
    assert reply["code"] == "00000"
    assert env.messages()[0]["points"] == "3" and env.balance() == 100000 - 3
    env.account(username=USER, international=False)
    assert env.send(mobile="8613681912700", message="你好") == error("00031")


def test_empty_message_and_emoji(env: Env) -> None:
    """§6: 00110 沒有簡訊內容, 00180 簡訊內容帶有 Emoji 圖形."""
    assert env.send(mobile="0911222333", message="") == error("00110")
    assert env.send(mobile="0911222333") == error("00110")
    assert env.send(mobile="0911222333", message="生日快樂🎂") == error("00180")
    assert env.send(mobile="0911222333", message="晴天☀️") == error("00180")
    assert env.send(mobile="0911222333", message="注意★價格")["code"] == "00000"


@pytest.mark.parametrize(
    ("text", "points"),
    [("中" * 70, 1), ("中" * 71, 2), ("中" * 335, 5), ("a" * 160, 1), ("a" * 161, 2), ("a" * 765, 5)],
)
def test_points_per_length(env: Env, text: str, points: int) -> None:
    """§3 message: "中文最長 70 個字，扣 1 點數 英文最長 160 個字 … 長文字簡訊 中文最長 335 個字, 每 67 個字
    扣 1 點數 英文最長 765 個字，每 153 個字扣 1 點數"."""
    assert env.send(mobile="0911222333", message=text)["code"] == "00000"
    assert env.messages()[0]["points"] == str(points)
    assert env.balance() == 100000 - points


@pytest.mark.parametrize(
    ("text", "fields"),
    [("中" * 336, {}), ("a" * 766, {}), ("中" * 71, {"lmsg": "N"}), ("a" * 161, {"lmsg": "N"})],
)
def test_too_long(env: Env, text: str, fields: dict[str, str]) -> None:
    """§6 00130 簡訊內容超過長度; §3 lmsg "=N：取消長文字簡訊長度發送"."""
    assert env.send(mobile="0911222333", message=text, **fields) == error("00130")
    assert env.send(mobile="0911222333", message="中" * 70, lmsg="N")["code"] == "00000"


def test_long_sms_to_international(env: Env) -> None:
    """§2.5 "長簡訊不支援國際門號"; §6 00120."""
    assert env.send(mobile="8613681912700", message="中" * 71) == error("00120")


def test_not_enough_points(env: Env) -> None:
    """§6 00020 通數不足 — and nothing is charged."""
    env.account(username="poor", password="pw", points=2)
    assert env.send(username="poor", password="pw", mobile="8613681912700", message="x") == error("00020")
    assert env.balance("poor") == 2 and env.messages() == []


@pytest.mark.parametrize("value", ["2030010110", "20300101100000", "203013011000", "2030-01-01 1", "abcdefghijkl"])
def test_sendtime_format(env: Env, value: str) -> None:
    """§3 sendtime: "格式：YYYYMMDDHHII (請使用 24 小時制)"; §6 00050."""
    assert env.send(mobile="0911222333", message="x", sendtime=value) == error("00050")


def test_sendtime_past(env: Env) -> None:
    """§6 00150 "sendtime 預約的時間已經超過"."""
    assert env.send(mobile="0911222333", message="x", sendtime=sendtime(-2)) == error("00150")


def test_sendtime_this_minute_is_now(env: Env) -> None:
    """§3 sendtime (minutes only): the current minute is not yet "past" — sent at once."""
    if datetime.now(TAIPEI).second >= 58:
        time.sleep(2.5)
    assert env.send(mobile="0911222333", message="x", sendtime=sendtime(0))["code"] == "00000"
    assert env.messages()[0]["send_at"] is None


@pytest.mark.parametrize("value", ["299", "28801", "abc", "-1"])
def test_expirytime_range(env: Env, value: str) -> None:
    """§3 expirytime: "範圍：300~28800 秒"; §6 00060 expirytime 格式錯誤."""
    assert env.send(mobile="0911222333", message="x", expirytime=value) == error("00060")
    assert env.send(mobile="0911222333", message="x", expirytime="300")["code"] == "00000"
    assert env.messages()[0]["validity"] == 300


@pytest.mark.parametrize("drurl", ["www.abc.com/twsmsResp.php", "ftp://abc.com/x", "http://"])
def test_drurl_format(env: Env, drurl: str) -> None:
    """§3 drurl "例如： http://www.abc.com/twsmsResp.php"; §6 00140 drurl 格式錯誤."""
    assert env.send(mobile="0911222333", message="x", drurl=drurl) == error("00140")


def test_drurl_is_checked(env: Env, receiver: Receiver) -> None:
    """§3 drurl: "此參數所帶入的網址將自動檢測是否 http code = 200"; drurl_check "=N：取消 drurl http code
    檢測"; §6 00170 drurl 帶入的網址無法連線(http code 必須為 200)."""
    receiver.respond = lambda q: PlainTextResponse("gone", status_code=404)
    assert env.send(mobile="0911222333", message="x", drurl=receiver.url + "/dr") == error("00170")
    assert receiver.calls[0]["method"] == "GET" and receiver.calls[0]["query"] == {}
    reply = env.send(mobile="0911222333", message="x", drurl=receiver.url + "/dr", drurl_check="N")
    assert reply["code"] == "00000"
    assert len([c for c in receiver.calls if not c["query"]]) == 1  # not checked this time
    assert env.send(mobile="0911222333", message="x", drurl="http://127.0.0.1:9/") == error("00170")


# -- §4.2 query, balance, delete reservation -------------------------------------------------


def test_query_final_status(env: Env) -> None:
    """§4.2 Query API Sample: {"code":"00000","text":"Success","statuscode":"0","statustext":"DELIVRD",
    "donetime":"20180520183042"}."""
    msgid = str(env.send(mobile="0911222333", message="x")["msgid"])
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    response = env.http.get(
        QUERY, params={"username": USER, "password": PASSWORD, "mobile": "0911222333", "msgid": msgid}
    )
    assert re.fullmatch(
        r'\{"code":"00000","text":"Success","statuscode":"0","statustext":"DELIVRD","donetime":"\d{14}"\}',
        response.text,
    )
    done = datetime.strptime(response.json()["donetime"], "%Y%m%d%H%M%S").replace(tzinfo=TAIPEI)
    assert abs(done.timestamp() - time.time()) < 5


def test_query_failure_status(env: Env) -> None:
    """§7 statuscode "0 = 成功 -1 = 失敗 (失敗原因請參考 statustext 說明)"; §8 UNDELIV 訊息無法送達."""
    env.config(outcome_mix={"undeliverable": 1.0})
    msgid = str(env.send(mobile="0911222333", message="x")["msgid"])
    wait_for(lambda: env.messages()[0]["state"] == "undeliverable")
    reply = env.query(mobile="0911222333", msgid=msgid)
    assert (reply["code"], reply["statuscode"], reply["statustext"]) == ("00000", "-1", "UNDELIV")


def test_query_pending_unknown_and_format(env: Env) -> None:
    """§6: 00001 狀態尚未回復, 00300 找不到 msgid, 00420 smsQuery 指定查詢的格式錯誤."""
    env.config(delivery_delay=30)
    msgid = str(env.send(mobile="0911222333", message="x")["msgid"])
    assert env.query(mobile="0911222333", msgid=msgid) == error("00001")
    assert env.query(mobile="0911222334", msgid=msgid) == error("00300")
    assert env.query(mobile="0911222333", msgid="12345678") == error("00300")
    assert env.query(msgid=msgid) == error("00420")
    assert env.query(mobile="0911222333") == error("00420")
    assert env.query(mobile="0911222333", msgid="abc") == error("00420")
    assert env.query(mobile="0911222333", msgid=msgid, password="bad") == error("00012")


def test_balance(env: Env) -> None:
    """§4.2 checkpoint "=Y：查詢剩餘簡訊通數（使用此功能時 mobile 與 msgid 不需填寫）"."""
    env.send(mobile="0911222333", message="x")
    response = env.http.get(QUERY, params={"username": USER, "password": PASSWORD, "checkpoint": "Y"})
    assert response.text == '{"code":"00000","text":"Success","point":99999}'


def test_reservation_query_delete_refund(env: Env) -> None:
    """§3 sendtime "預約時間"; §6 00310 預約尚未送出; §4.2 delttime "=Y：刪除預約的簡訊"."""
    reply = env.send(mobile="0911222333", message="中" * 100, sendtime=sendtime(90))
    msgid = str(reply["msgid"])
    assert env.balance() == 100000 - 2
    message = env.messages()[0]
    assert message["state"] == "scheduled"
    assert message["send_at"] == datetime.strptime(sendtime(90), "%Y%m%d%H%M").replace(tzinfo=TAIPEI).timestamp()
    assert env.query(mobile="0911222333", msgid=msgid) == error("00310")

    assert env.query(mobile="0911222333", msgid=msgid, delttime="Y") == {"code": "00000", "text": "Success"}
    assert env.balance() == 100000
    assert env.messages()[0]["state"] == "canceled"
    status = env.query(mobile="0911222333", msgid=msgid)
    assert (status["code"], status["statuscode"], status["statustext"]) == ("00000", "-1", "DELETED")
    assert env.query(mobile="0911222333", msgid=msgid, delttime="Y") == error("00300")


def test_delete_after_sending_fails(env: Env) -> None:
    """§4.2 delttime deletes a *reservation*: a message already sent is not in the queue (00300)."""
    msgid = str(env.send(mobile="0911222333", message="x")["msgid"])
    assert env.query(mobile="0911222333", msgid=msgid, delttime="Y") == error("00300")
    assert env.balance() == 100000 - 1


# -- §5 moQuery --------------------------------------------------------------------------------


def test_mo_query(env: Env) -> None:
    """§5 moQuery API Sample: {"code":"00000","text":"Success","moResp":[{"seq":"221831",
    "date":"20180906102939","mobile":"0911222333","message":"\\u53f0…"}]}."""
    assert env.query(MO, snumber="12345") == error("00410")  # 沒有任何 mo 資料
    env.http.post("/_sandbox/twsms/reply", json={"from": "0911222333", "text": "台灣簡訊雙向回傳測試"})
    env.http.post("/_sandbox/twsms/reply", json={"from": "0911222334", "text": "OK"})
    response = env.http.get(MO, params={"username": USER, "password": PASSWORD, "snumber": "12345"})
    assert "\\u53f0\\u7063" in response.text  # JSON \\u escapes, as in the sample
    body = response.json()
    assert body["code"] == "00000" and body["text"] == "Success"
    first, second = body["moResp"]
    assert set(first) == {"seq", "date", "mobile", "message"}
    assert first["mobile"] == "0911222333" and first["message"] == "台灣簡訊雙向回傳測試"
    assert isinstance(first["seq"], str) and re.fullmatch(r"\d{14}", first["date"])
    assert second["message"] == "OK"
    today = datetime.now(TAIPEI).strftime("%Y-%m-%d")
    assert len(env.query(MO, snumber="12345", sdate=today)["moResp"]) == 2
    assert env.query(MO, snumber="12345", sdate="2012-03-24") == error("00410")


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({}, "00430"),
        ({"snumber": "123"}, "00430"),
        ({"snumber": "54321"}, "00400"),
        ({"snumber": "12345", "sdate": "2012/03/24"}, "00430"),
        ({"snumber": "12345", "sdate": "2012-02-30"}, "00430"),
    ],
)
def test_mo_query_errors(env: Env, fields: dict[str, str], code: str) -> None:
    """§5 snumber "雙向門號辨識碼（5 個數字）", sdate "格式：YYYY-MM-DD"; §6 00400 找不到 snumber 辨識碼,
    00430 moQuery 指定查詢的格式錯誤."""
    assert env.query(MO, **fields) == error(code)


def test_mo_query_with_a_five_digit_code(env: Env) -> None:
    """§5 snumber: an account with its own 5-digit code answers to it alone."""
    env.account(username="twoway", password="pw", two_way_code="55123")
    env.http.post("/_sandbox/twsms/reply", json={"from": "0911222333", "text": "hi", "account": "twoway"})
    assert env.query(MO, username="twoway", password="pw", snumber="12345") == error("00400")
    assert env.query(MO, username="twoway", password="pw", snumber="55123")["moResp"][0]["message"] == "hi"
    assert env.query(MO, snumber="12345") == error("00410")  # not the demo account's reply


# -- §4.1 delivery report ------------------------------------------------------------------------


def test_delivery_report(env: Env, receiver: Receiver) -> None:
    """§4.1: "資料會以 json 格式並 urlencode 後帶入 smsresp 變數中並以 GET 方式回傳到您指定的 drurl 網址";
    sample {"code":"00000","text":"Success","msgid":"12345678","mobile":"0911222333","statuscode":"0",
    "statustext":"DELIVRD","downtime":"20180520183042"}."""
    msgid = env.send(mobile="0911222333", message="x", drurl=receiver.url + "/twsmsResp.php?x=1")["msgid"]
    wait_for(lambda: len(receiver.reports()) == 1)
    time.sleep(0.3)
    [report] = receiver.reports()
    assert report["method"] == "GET" and report["path"] == "/twsmsResp.php" and report["query"]["x"] == "1"
    payload = json.loads(report["query"]["smsresp"])
    assert list(payload) == ["code", "text", "msgid", "mobile", "statuscode", "statustext", "downtime"]
    assert payload["msgid"] == str(msgid)  # a string here, unlike the send reply
    assert payload["mobile"] == "0911222333" and payload["statuscode"] == "0"
    assert payload["statustext"] == "DELIVRD" and re.fullmatch(r"\d{14}", payload["downtime"])
    assert len(receiver.reports()) == 1


def test_delivery_report_failure(env: Env, receiver: Receiver) -> None:
    """§8 EXPIRED 訊息已過了發送的有效時間, with statuscode -1 (§7)."""
    env.config(outcome_mix={"expired": 1.0})
    env.send(mobile="0911222333", message="x", drurl=receiver.url + "/dr")
    wait_for(lambda: len(receiver.reports()) == 1)
    payload = json.loads(receiver.reports()[0]["query"]["smsresp"])
    assert (payload["statuscode"], payload["statustext"]) == ("-1", "EXPIRED")


def test_delivery_report_retried(env: Env, receiver: Receiver) -> None:
    """§4.1 states no acknowledgement; the emulator requires HTTP 200 and retries 3 times."""
    receiver.respond = lambda q: PlainTextResponse("no", status_code=500 if "smsresp" in q else 200)
    env.send(mobile="0911222333", message="x", drurl=receiver.url + "/dr")
    wait_for(lambda: len(receiver.reports()) == 4, timeout=8)
    time.sleep(1.0)
    assert len(receiver.reports()) == 4


def test_no_drurl_no_report(env: Env, receiver: Receiver) -> None:
    """§3 drurl: "此參數空白將不主動回報接收狀態 (可使用被動式查詢)"."""
    env.send(mobile="0911222333", message="x")
    wait_for(lambda: env.messages()[0]["state"] == "delivered")
    time.sleep(0.2)
    assert receiver.calls == []


def test_canceled_reservation_sends_no_report(env: Env, receiver: Receiver) -> None:
    """A deleted reservation is never sent, so no report."""
    msgid = str(env.send(mobile="0911222333", message="x", sendtime=sendtime(30), drurl=receiver.url + "/dr")["msgid"])
    assert env.query(mobile="0911222333", msgid=msgid, delttime="Y")["code"] == "00000"
    time.sleep(0.3)
    assert receiver.reports() == []


# -- faults and determinism ---------------------------------------------------------------------


def test_busy_fault(env: Env) -> None:
    """§6 99998 "資料處理異常，請重新發送"."""
    env.faults(busy_rate=1.0)
    response = env.http.get(
        SEND, params={"username": USER, "password": PASSWORD, "mobile": "0911222333", "message": "x"}
    )
    assert response.status_code == 200 and response.json() == error("99998")
    assert env.messages() == []


def test_error_malformed_and_rate_limit_faults(env: Env) -> None:
    """Fault injection through POST /_sandbox/twsms/faults: 5xx, malformed JSON, rate limit (§1: 500
    requests/sec by default)."""
    assert env.http.get("/_sandbox/twsms/faults").json()["rate_limit"] == 500.0
    params = {"username": USER, "password": PASSWORD, "mobile": "0911222333", "message": "x"}
    env.faults(error_rate=1.0)
    assert env.http.get(SEND, params=params).status_code == 500
    env.faults(error_rate=0.0, malformed_rate=1.0)
    response = env.http.get(SEND, params=params)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert len(env.messages()) == 1  # processed, then a broken answer: the ambiguous case
    env.faults(malformed_rate=0.0, rate_limit=1.0)
    codes = [env.http.get(SEND, params=params).status_code for _ in range(5)]
    assert 429 in codes


def test_same_seed_same_ids() -> None:
    """Seed determinism: the same seed gives the same msgids."""
    ids = []
    for _ in range(2):
        server, env = start(seed=42)
        try:
            ids.append([env.send(mobile="0911222333", message="x")["msgid"] for _ in range(3)])
        finally:
            env.http.close()
            server.stop()
    assert ids[0] == ids[1]
