"""Provider-specific operations end to end: replies polling, MMS, personalized sends,
flash and WAP push, SOAP sessions, and every fault the sandbox can inject."""

from __future__ import annotations

import asyncio
import base64

import pytest

from formosms import AsyncClient, Attachment, Client, Personalized, Status
from formosms.errors import (
    ConnectError,
    MalformedResponse,
    OutcomeUnknown,
    ProviderUnavailable,
    Timeout,
    UnsupportedFeature,
)
from formosms.providers.base import from_dsn
from tests.e2e.conftest import PROVIDERS, Running

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_twsms_replies_are_polled(box: Running) -> None:
    """TwSMS §5 moQuery: replies are polled with ``smsmo_query.php`` (``snumber``)."""
    with Client(from_dsn(box.dsn("twsms") + "&two_way_code=12345")) as client:
        result = client.send("0912345678", "請回覆")
        box.control(
            "POST",
            "/twsms/reply",
            json={"from": "0912345678", "text": "收到了", "message_id": result.message_ids[0]},
        )
        replies = client.replies()
    assert [(r.sender, r.text) for r in replies] == [("+886912345678", "收到了")]
    assert replies[0].received_at is not None and replies[0].received_at.tzinfo is not None


@pytest.mark.parametrize("name", ["every8d", "every8d-soap"])
def test_mms(box: Running, name: str) -> None:
    with Client(box.provider(name)) as client:
        before = client.balance()
        result = client.send_mms("0912345678", "圖文訊息", Attachment(PNG, "png"), subject="新品")
        assert result.batch_id
        (received,) = box.messages(name)
        assert received["kind"] == "mms" and received["text"] == "圖文訊息"
        assert client.balance() < before
        reports = client.status(result, mms=True)
        assert [r.recipient for r in reports] == ["+886912345678"]
        assert reports[0].status in (Status.SUBMITTED, Status.DELIVERED)


@pytest.mark.parametrize("name", [p for p in PROVIDERS if p not in ("every8d", "every8d-soap")])
def test_mms_elsewhere_is_refused_before_any_request(box: Running, name: str) -> None:
    with Client(box.provider(name)) as client, pytest.raises(UnsupportedFeature):
        client.send_mms("0912345678", "x", Attachment(PNG, "png"))
    assert box.messages(name) == []


def test_personalized_soap(box: Running) -> None:
    """SOAP §2.3 sendParamSMS: a different text per recipient; MOBILE as +886…; ``]]>`` safe."""
    items = [
        Personalized("0912345678", "王先生您好 ]]> 您的驗證碼 111", name="王"),
        Personalized("0922333444", "李小姐您好 <&> 您的驗證碼 222", name="李"),
    ]
    with Client(box.provider("every8d-soap")) as client:
        result = client.send_personalized(items)
    assert len(result.accepted) == 2
    received = {m["recipient"]: m["text"] for m in box.messages("every8d-soap")}
    assert received == {"+886912345678": items[0].text, "+886922333444": items[1].text}


def test_personalized_elsewhere_is_unsupported(box: Running) -> None:
    with Client(box.provider("every8d")) as client, pytest.raises(UnsupportedFeature):
        client.send_personalized([Personalized("0912345678", "x")])


def test_soap_session_is_reacquired_after_another_system_closed_it(box: Running) -> None:
    """SOAP notes: "closeConnection from any system kills it for all … log in again on -301"."""
    ours = box.provider("every8d-soap")
    theirs = box.provider("every8d-soap")
    with Client(ours) as client, Client(theirs) as other:
        client.balance()
        other._driver.run(theirs.close_session())  # type: ignore[attr-defined]
        assert client.balance() > 0  # -301, log in again, answer


def test_smsgo_flash_and_wap_push(box: Running) -> None:
    with Client(box.provider("smsgo")) as client:
        client.send("0912345678", "flash!", flash=True)
        client.send("0912345678", "新品", wap_url="http://x.tw/a")
    encodings = [m["extra"].get("encoding") for m in box.messages("smsgo")]  # type: ignore[union-attr]
    assert encodings == ["PASCII", "PUSH"]


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"error_rate": 1.0}, ProviderUnavailable),
        ({"busy_rate": 1.0}, ProviderUnavailable),
        ({"malformed_rate": 1.0}, MalformedResponse),
        ({"timeout_rate": 1.0, "hold": 2.0}, Timeout),
    ],
)
def test_faults_become_the_right_errors(box: Running, name: str, fault: dict[str, float], error: type) -> None:
    if name == "smsget" and "busy_rate" in fault:
        # SMS-Get documents no busy code: the emulator's made-up one is an unknown code,
        # kept as ``Rejected`` with its code (never sent, so failing over is safe)
        from formosms.errors import Rejected

        error = Rejected
    box.faults(name, **fault)
    provider = from_dsn(box.dsn(name) + "&timeout=0.5")
    with Client(provider) as client, pytest.raises(error) as caught:
        client.send("0912345678", "fault")
    assert caught.value.provider == provider.name
    if isinstance(caught.value, OutcomeUnknown):
        # the sandbox processed the request before garbling or holding the answer: the
        # message may have been accepted, which is exactly why this is "unknown"
        assert len(box.messages(name)) <= 1
    else:
        assert box.messages(name) == []


def test_connection_refused_is_connect_error() -> None:
    from formosms.sandbox.server import free_port

    provider = from_dsn(f"twsms://u:p@127.0.0.1:{free_port()}/twsms?scheme=http&timeout=1")
    with Client(provider) as client, pytest.raises(ConnectError):
        client.balance()


def test_async_twsms_runs_one_request_per_number_concurrently(box: Running) -> None:
    box.faults("twsms", latency=0.2)
    numbers = [f"09{20000000 + i:08d}" for i in range(40)]

    async def go() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with AsyncClient(box.provider("twsms"), concurrency=40) as client:
            result = await client.send(numbers, "concurrent")
        assert len(result.accepted) == 40
        return loop.time() - started

    assert asyncio.run(go()) < 40 * 0.2 / 4  # far less than one after the other
