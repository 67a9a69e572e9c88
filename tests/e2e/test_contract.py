"""The library's Client and AsyncClient against every emulator, over real HTTP.

One contract for every provider: what each supports comes from ``provider.features``,
and what each received comes from the sandbox's inspection API, so "sent exactly once,
text unchanged" is checked on the provider's side of the wire.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from formosms import AsyncClient, Client, Feature, Status
from formosms.errors import AuthenticationError, InsufficientCredit, InvalidRecipient, UnsupportedFeature
from tests.e2e.conftest import PROVIDERS, Running
from tests.helpers import wait_for

# Every character class the issue names: % + & # ]]> < newline (emoji where allowed)
HOSTILE = "100% 真的 + & # ]]> <b>粗</b>\n第二行"
EMOJI = " 😀"
NO_EMOJI = {"twsms"}  # TwSMS §6 00180: "簡訊內容帶有 Emoji 圖形"


def text_for(name: str) -> str:
    return HOSTILE + ("" if name in NO_EMOJI else EMOJI)


@pytest.mark.parametrize("name", PROVIDERS)
def test_send_arrives_once_unchanged_and_is_tracked(box: Running, name: str) -> None:
    text = text_for(name)
    with Client(box.provider(name)) as client:
        before = client.balance()
        result = client.send("0912-345-678", text)
        assert result.provider == client.provider.name
        assert [m.recipient for m in result.messages] == ["+886912345678"]
        assert result.messages[0].message_id or result.batch_id
        received = box.messages(name)
        assert len(received) == 1 and received[0]["text"] == text
        after = client.balance()
        assert after < before
        if result.cost is not None:
            assert before - after == result.cost
        if Feature.STATUS_QUERY in client.features:
            wait_for(lambda: any(r.status is Status.DELIVERED for r in client.status(result)))
            (report,) = [r for r in client.status(result) if r.recipient == "+886912345678"]
            assert report.status is Status.DELIVERED and report.provider_status
        else:
            with pytest.raises(UnsupportedFeature):
                client.status(result)


@pytest.mark.parametrize("name", PROVIDERS)
def test_bulk_is_split_by_the_provider_limit_and_sent_once(box: Running, name: str) -> None:
    numbers = [f"09{12000000 + i:08d}" for i in range(120)]
    with Client(box.provider(name)) as client:
        result = client.send(numbers, "bulk notice 通知")
    assert len(result.accepted) == 120
    received = [m["recipient"] for m in box.messages(name)]
    assert len(received) == 120 and len(set(received)) == 120


@pytest.mark.parametrize("name", PROVIDERS)
def test_schedule_then_cancel(box: Running, name: str) -> None:
    provider = box.provider(name)
    when = datetime.now(UTC) + timedelta(hours=2)
    with Client(provider) as client:
        if Feature.SCHEDULE not in client.features:
            pytest.skip(f"{name} cannot schedule")
        before = client.balance()
        result = client.send(["0912345678", "0922333444"], "明天見 see you", schedule_at=when)
        assert {m["state"] for m in box.messages(name)} == {"scheduled"}
        if Feature.CANCEL not in client.features:
            with pytest.raises(UnsupportedFeature):
                client.cancel(result)
            return
        canceled = client.cancel(result)
        assert canceled.canceled >= 1
        assert {m["state"] for m in box.messages(name)} == {"canceled"}
        assert client.balance() == before  # points refunded


@pytest.mark.parametrize("name", PROVIDERS)
def test_past_schedule_and_bad_numbers_fail_before_any_request(box: Running, name: str) -> None:
    from formosms.errors import InvalidSchedule

    with Client(box.provider(name)) as client:
        with pytest.raises(InvalidSchedule):
            client.send("0912345678", "x", schedule_at=datetime.now(UTC) - timedelta(minutes=1))
        with pytest.raises(InvalidRecipient) as caught:
            client.send(["0912345678", "0912-ABC"], "x")
        assert caught.value.recipient == "0912-ABC"
    assert box.messages(name) == []


@pytest.mark.parametrize("name", PROVIDERS)
def test_wrong_password(box: Running, name: str) -> None:
    with (
        Client(box.provider(name, password="wrong-password")) as client,
        pytest.raises(AuthenticationError) as caught,
    ):
        client.balance() if Feature.BALANCE in client.features else client.send("0912345678", "x")
    assert "wrong-password" not in str(caught.value) and caught.value.provider == client.provider.name


@pytest.mark.parametrize("name", PROVIDERS)
def test_insufficient_credit(box: Running, name: str) -> None:
    box.control("POST", f"/{name}/accounts", json={"username": "poor", "password": "poor-secret", "points": "0"})
    with Client(box.provider(name, user="poor", password="poor-secret")) as client:
        with pytest.raises(InsufficientCredit) as caught:
            client.send("0912345678", "no points")
        assert caught.value.code
    assert [m for m in box.messages(name) if m["state"] not in ("rejected",)] == []


@pytest.mark.parametrize("name", PROVIDERS)
def test_async_client_sends_and_tracks(box: Running, name: str) -> None:
    async def go() -> None:
        async with AsyncClient(box.provider(name)) as client:
            result = await client.send(["0912345678", "0922333444"], "async 測試")
            assert len(result.accepted) == 2
            assert await client.balance() > Decimal(0)
            if Feature.STATUS_QUERY in client.features:
                for _ in range(100):
                    reports = await client.status(result)
                    if reports and all(r.status is Status.DELIVERED for r in reports):
                        break
                    await asyncio.sleep(0.05)
                assert {r.status for r in reports} == {Status.DELIVERED}

    asyncio.run(go())
    assert len(box.messages(name)) == 2


@pytest.mark.parametrize("name", PROVIDERS)
def test_ten_thousand_recipients_each_exactly_once(box: Running, name: str) -> None:
    """The issue's bar: 10,000 recipients through each emulator, each accepted exactly once."""
    box.faults(name, rate_limit=None)  # not paced here: this checks exactly-once, not speed
    numbers = [f"09{10000000 + i:08d}" for i in range(10_000)]

    async def go() -> int:
        async with AsyncClient(box.provider(name), concurrency=64, rate_limit=0) as client:
            result = await client.send(numbers, "一萬則 10k")
            return len(result.accepted)

    assert asyncio.run(go()) == 10_000
    summary = box.control("GET", f"/{name}/summary").json()
    assert summary["accepted"] == 10_000 and summary["duplicates"] == 0
    received = {m["recipient"] for m in box.messages(name)}
    assert len(received) == 10_000
