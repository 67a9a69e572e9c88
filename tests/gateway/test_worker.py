"""The worker without a network: fake sends (and a faked transport), real providers, a real store."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from formosms.errors import (
    ConnectError,
    InsufficientCredit,
    InvalidRecipient,
    PartialFailure,
    ProviderUnavailable,
    Timeout,
)
from formosms.gateway.background import REFUSAL_WINDOW, SIGNATURE_HEADER, Background, verify
from formosms.gateway.config import Settings
from formosms.gateway.routing import Router
from formosms.gateway.store import NewMessage, Store, StoreUnavailable
from formosms.gateway.worker import Lane, Worker, _chunks, backoff, poll_after
from formosms.model import DeliveryReport, MessageResult, SendResult, Status
from formosms.transport import HttpRequest, HttpResponse
from tests.gateway.conftest import WEBHOOK_SECRET

A, B, C = "+886912345601", "+886912345602", "+886912345603"

Reply = Callable[[list[str], str, dict[str, Any]], SendResult]


class Fake:
    """Scripted ``AsyncClient.send`` for each lane: a reply function, or an exception."""

    def __init__(self, worker: Worker) -> None:
        self.calls: list[tuple[str, list[str], str, dict[str, Any]]] = []
        self.script: dict[str, Reply | BaseException] = {}
        for name, lane in worker.lanes.items():
            lane.client.send = self._sender(name)  # type: ignore[method-assign]

    def _sender(self, name: str) -> Callable[..., Any]:
        async def send(to: list[str], text: str, **options: Any) -> SendResult:
            self.calls.append((name, list(to), text, options))
            action = self.script.get(name, accept)
            if isinstance(action, BaseException):
                raise action
            return action(list(to), text, options)

        return send

    def lanes(self) -> list[str]:
        return [c[0] for c in self.calls]


def accept(to: list[str], text: str, options: dict[str, Any]) -> SendResult:
    return SendResult(
        "twsms", None, tuple(MessageResult(r, message_id=f"P{r[-2:]}", provider_status="00000") for r in to)
    )


def batch(to: list[str], text: str, options: dict[str, Any]) -> SendResult:
    return SendResult("smsget", "B-1", tuple(MessageResult(r, message_id="B-1") for r in to))


@pytest.fixture
async def worker(sqlite_store: Store, two_providers: tuple[Router, Settings]) -> AsyncIterator[Worker]:
    router, settings = two_providers
    w = Worker(settings, sqlite_store, router)
    w.random = random.Random(1)
    yield w
    await w.close()


@pytest.fixture
def fake(worker: Worker) -> Fake:
    return Fake(worker)


async def cycle(worker: Worker, ahead: float = 0.0) -> int:
    """One claim → dispatch → every send task done; ``ahead`` seconds in the future."""
    rows = worker.store.claim(worker.id, 100, now=time.time() + ahead)
    await worker.dispatch(rows)
    while worker._tasks:
        await asyncio.gather(*list(worker._tasks))
    return len(rows)


def row(worker: Worker, message_id: int) -> dict[str, Any]:
    found = worker.store.get(message_id)
    assert found is not None
    return found


def enqueue(worker: Worker, *numbers: str, **values: Any) -> list[int]:
    return worker.store.enqueue([NewMessage(n, values.pop("text", "您好 hello"), **values) for n in numbers])


# -- outcomes -------------------------------------------------------------------------------------


async def test_accepted_is_submitted_with_ids_and_cost(worker: Worker, fake: Fake) -> None:
    worker.settings.public_url = "https://gw.example.com.tw/"
    ids = enqueue(worker, A, B, validity=600)
    assert await cycle(worker) == 2
    assert fake.lanes() == ["tw"]  # TwSMS, priority 1: one chunk, the client runs the requests
    _, to, text, options = fake.calls[0]
    assert to == [A, B] and text == "您好 hello"
    assert options == {
        "validity": 600,
        "callback_url": f"https://gw.example.com.tw/webhooks/tw/{WEBHOOK_SECRET}",
    }
    first = row(worker, ids[0])
    assert (first["status"], first["provider"], first["provider_message_id"]) == ("submitted", "tw", "P01")
    assert first["batch_id"] == "P01" and first["provider_status"] == "00000"
    assert Decimal(first["cost"]) == Decimal(1) and first["error"] is None
    assert [e["status"] for e in first["events"]] == ["queued", "sending", "submitted"]
    assert row(worker, ids[1])["provider_message_id"] == "P02"
    assert worker.metrics.counters[("sent", "tw")] == 2


async def test_no_callback_url_without_a_public_url(worker: Worker, fake: Fake) -> None:
    enqueue(worker, A)
    await cycle(worker)
    assert "callback_url" not in fake.calls[0][3]


async def test_a_list_provider_gets_one_request(worker: Worker, fake: Fake) -> None:
    fake.script["sg"] = batch
    ids = enqueue(worker, A, B, C, provider="sg")
    await cycle(worker)
    assert fake.calls == [("sg", [A, B, C], "您好 hello", {"validity": None})]
    assert {row(worker, i)["batch_id"] for i in ids} == {"B-1"}
    assert {row(worker, i)["status"] for i in ids} == {"submitted"}


async def test_the_same_number_twice_is_sent_twice(worker: Worker, fake: Fake) -> None:
    fake.script["sg"] = batch
    ids = enqueue(worker, A, B, A, provider="sg")
    await cycle(worker)
    assert sorted(c[1] for c in fake.calls) == [[A], [A, B]]
    assert [row(worker, i)["status"] for i in ids] == ["submitted"] * 3


def test_chunks() -> None:
    rows = [{"recipient": r} for r in "aabcab"]
    assert [[r["recipient"] for r in c] for c in _chunks(rows, 2)] == [["a", "b"], ["a", "c"], ["a", "b"]]
    assert [len(c) for c in _chunks([{"recipient": str(i)} for i in range(7)], 3)] == [3, 3, 1]


async def test_timeout_is_unknown_and_not_resent(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = Timeout("no answer in time", provider="twsms")
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "unknown" and got["provider"] == "tw" and "no answer" in got["error"]
    assert await cycle(worker, ahead=3600) == 0  # never claimed again
    assert fake.lanes() == ["tw"]


async def test_timeout_with_at_least_once_is_queued_again(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = Timeout("no answer in time", provider="twsms")
    (mid,) = enqueue(worker, A, at_least_once=True)
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "queued" and got["next_attempt_at"] > time.time()
    del fake.script["tw"]
    assert await cycle(worker) == 0  # after the backoff only
    await cycle(worker, ahead=60)
    assert row(worker, mid)["status"] == "submitted"
    assert fake.lanes() == ["tw", "tw"]


@pytest.mark.parametrize(
    "error",
    [
        ConnectError("refused", provider="twsms"),
        ProviderUnavailable("HTTP 503", provider="twsms", code="HTTP 503"),
    ],
)
async def test_transient_errors_fail_over_at_once_when_another_provider_can(
    worker: Worker, fake: Fake, error: Exception
) -> None:
    """Not taken (connection refused, 5xx, busy): never sent, so the next eligible provider
    sends it now instead of waiting for the flaky one to recover."""
    fake.script["tw"] = error
    fake.script["sg"] = batch
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "queued" and got["tried"] == ["tw"] and got["next_attempt_at"] <= time.time()
    await cycle(worker)
    assert fake.lanes() == ["tw", "sg"]
    assert row(worker, mid)["status"] == "submitted" and row(worker, mid)["provider"] == "sg"
    assert worker.router.providers["tw"].breaker.failures == 1  # an outage counts against the breaker


@pytest.mark.parametrize(
    "error",
    [
        ConnectError("refused", provider="twsms"),
        ProviderUnavailable("HTTP 503", provider="twsms", code="HTTP 503"),
    ],
)
async def test_transient_errors_retry_with_backoff_when_no_other_provider(
    worker: Worker, fake: Fake, error: Exception
) -> None:
    worker.settings.max_attempts = 3
    fake.script["tw"] = error
    (mid,) = enqueue(worker, A, provider="tw")  # the caller asked for TwSMS: no failover
    waits = []
    for _ in range(3):
        await cycle(worker, ahead=3600)
        got = row(worker, mid)
        waits.append(got["next_attempt_at"] - time.time())
    assert fake.lanes() == ["tw", "tw", "tw"]
    assert waits[0] > 0 and waits[1] > waits[0] * 0.5 and got["tried"] == ["tw"]  # attempts used up
    await cycle(worker)
    assert row(worker, mid)["status"] == "failed"


async def test_a_definite_refusal_fails_over_at_once(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = InsufficientCredit("not enough points", provider="twsms", code="00040")
    fake.script["sg"] = batch
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "queued" and got["tried"] == ["tw"] and got["provider_status"] == "00040"
    await cycle(worker)  # no backoff
    got = row(worker, mid)
    assert got["status"] == "submitted" and got["provider"] == "sg" and got["tried"] == ["tw"]
    assert worker.router.providers["tw"].breaker.failures == 0  # a refusal is not an outage


async def test_refused_everywhere_fails(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = InsufficientCredit("not enough points", provider="twsms")
    fake.script["sg"] = InvalidRecipient("number refused", provider="smsget", code="-4")
    (mid,) = enqueue(worker, A)
    for _ in range(3):
        await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "failed" and got["tried"] == ["tw", "sg"]
    assert "number refused" in got["error"] and got["final_at"] is not None
    assert fake.lanes() == ["tw", "sg"]


async def test_partial_failure(worker: Worker, fake: Fake) -> None:
    result = SendResult(
        "twsms",
        None,
        (
            MessageResult(A, message_id="P1"),
            MessageResult(B, error=InvalidRecipient("bad", provider="twsms")),
        ),
    )
    fake.script["tw"] = PartialFailure(result)
    a, b = enqueue(worker, A, B)
    await cycle(worker)
    assert row(worker, a)["status"] == "submitted" and row(worker, a)["provider_message_id"] == "P1"
    assert row(worker, b)["status"] == "queued" and row(worker, b)["tried"] == ["tw"]


async def test_a_recipient_missing_from_the_answer_is_unknown(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = lambda to, text, options: SendResult("twsms", None, (MessageResult(A, "P1"),))
    a, b = enqueue(worker, A, B)
    await cycle(worker)
    assert row(worker, a)["status"] == "submitted"
    assert row(worker, b)["status"] == "unknown"


async def test_a_bug_in_a_send_is_unknown_not_lost(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = ValueError("bug")
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    assert row(worker, mid)["status"] == "unknown"


async def test_open_circuits_make_messages_wait_not_fail(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = ConnectError("refused", provider="twsms")
    fake.script["sg"] = batch
    for name in ("tw", "sg"):
        for _ in range(5):
            worker.router.providers[name].breaker.failure()
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "queued" and "circuit open" in got["error"]
    assert got["next_attempt_at"] > time.time() + 1 and fake.calls == []
    worker.router.providers["sg"].breaker.success()
    await cycle(worker, ahead=60)
    assert row(worker, mid)["status"] == "submitted" and fake.lanes() == ["sg"]


async def test_the_breaker_opens_and_traffic_moves(worker: Worker, fake: Fake) -> None:
    fake.script["tw"] = ConnectError("refused", provider="twsms")
    fake.script["sg"] = batch
    ids = enqueue(worker, *[f"+8869123457{i:02d}" for i in range(5)])
    await cycle(worker)
    assert worker.router.providers["tw"].breaker.state == "open"
    assert {row(worker, i)["status"] for i in ids} == {"queued"}
    await cycle(worker, ahead=3600)
    assert {row(worker, i)["provider"] for i in ids} == {"sg"}
    assert {row(worker, i)["status"] for i in ids} == {"submitted"}


async def test_no_provider_can_send_it(worker: Worker, fake: Fake) -> None:
    (mid,) = enqueue(worker, A, options={"mms": {"data": "eA==", "type": "jpg"}})
    await cycle(worker)
    got = row(worker, mid)
    assert got["status"] == "failed" and "no eligible provider" in got["error"] and fake.calls == []


async def test_rows_recovered_meanwhile_are_not_sent(worker: Worker, fake: Fake) -> None:
    (mid,) = enqueue(worker, A)
    rows = worker.store.claim(worker.id, 10)
    worker.store.recover(stale_after=-1)  # the claim looked stale: back in the queue ...
    assert [r["id"] for r in worker.store.claim("other-worker", 10)] == [mid]  # ... and taken
    await worker._send_chunk(worker.lanes["tw"], rows)
    assert fake.calls == [] and row(worker, mid)["status"] == "claimed"


async def test_record_waits_out_a_database_hiccup(worker: Worker, fake: Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    (mid,) = enqueue(worker, A)
    real = worker.store.record
    failures = [StoreUnavailable("database restarting")]

    def flaky(outcomes: Any) -> None:
        if failures:
            raise failures.pop()
        real(outcomes)

    monkeypatch.setattr(worker.store, "record", flaky)
    monkeypatch.setattr(worker, "random", type("R", (), {"random": staticmethod(lambda: 0.0)})())
    await cycle(worker)
    assert row(worker, mid)["status"] == "submitted"


async def test_through_the_real_codec(worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    """No fake client: the TwSMS codec and ``settle`` on scripted HTTP outcomes."""
    seen: list[HttpRequest] = []

    async def perform(request: HttpRequest) -> Any:
        seen.append(request)
        if b"0912345602" in (request.body() or b""):
            return Timeout("no answer in time", provider="twsms")
        return HttpResponse(200, b'{"code":"00000","text":"Success","msgid":222160591}', {})

    monkeypatch.setattr(worker.lanes["tw"].client._driver, "_perform", perform)
    a, b = enqueue(worker, A, B)
    await cycle(worker)
    assert len(seen) == 2
    assert row(worker, a)["status"] == "submitted" and row(worker, a)["provider_message_id"] == "222160591"
    assert row(worker, b)["status"] == "unknown"


def test_backoff_bounds() -> None:
    rng = random.Random(3)
    for attempt in range(1, 30):
        full = min(60.0, 0.5 * 2 ** (attempt - 1))
        for _ in range(20):
            assert full / 2 <= backoff(attempt, base=0.5, cap=60.0, rng=rng) <= full
    assert backoff(0) <= 1.0
    assert 150.0 <= backoff(10_000) <= 300.0  # no overflow for a notification retried for weeks


def test_polls_without_callbacks_and_when_callbacks_are_overdue(two_providers: tuple[Router, Settings]) -> None:
    router, settings = two_providers
    tw, sg = router.providers["tw"], router.providers["sg"]
    assert poll_after(tw, settings) == tw.settings.poll_interval  # no public URL: nothing can call back
    assert poll_after(sg, settings) is None  # SMS-Get has no status query
    settings.public_url = "https://gw.example"
    assert poll_after(tw, settings) == tw.settings.callback_grace  # only overdue callbacks
    tw.settings.callbacks = False
    assert poll_after(tw, settings) == tw.settings.poll_interval


# -- background ------------------------------------------------------------------------------------


async def test_poll_applies_reports(worker: Worker, fake: Fake) -> None:
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    asked: list[Any] = []

    async def status(refs: list[Any]) -> list[DeliveryReport]:
        asked.extend(refs)
        return [DeliveryReport("twsms", Status.DELIVERED, "DELIVRD", recipient=A, message_id="P01")]

    worker.lanes["tw"].client.status = status  # type: ignore[method-assign,assignment]
    worker.router.providers["tw"].settings.poll_interval = 0
    background = Background(worker.settings, worker.store, worker.lanes, worker.metrics)
    await background.poll()
    assert [(r.message_id, r.recipient) for r in asked] == [("P01", A)]
    assert row(worker, mid)["status"] == "delivered"


async def test_after_refused_callbacks_the_provider_is_polled_for_a_while(worker: Worker, fake: Fake) -> None:
    (mid,) = enqueue(worker, A)
    await cycle(worker)
    asked: list[Any] = []

    async def status(refs: list[Any]) -> list[DeliveryReport]:
        asked.extend(refs)
        return []  # still pending at the provider

    tw = worker.router.providers["tw"]
    worker.lanes["tw"].client.status = status  # type: ignore[method-assign,assignment]
    worker.settings.public_url = "https://gateway.example"  # callbacks reach us: poll only overdue ones
    tw.settings.poll_interval = 0
    assert poll_after(tw, worker.settings) == tw.settings.callback_grace
    background = Background(worker.settings, worker.store, worker.lanes, worker.metrics)
    await background.poll()
    assert asked == []  # not overdue
    worker.store.note_refused_callbacks("tw", time.time())  # callbacks got 503 while the DB was down
    await background.poll()
    assert [r.message_id for r in asked] == ["P01"]
    await background.poll()
    assert len(asked) == 2  # polled at poll_interval during the window
    noted = worker.store.refused_callbacks()["tw"]
    worker.store.clear_refused_callbacks("tw", noted)
    worker.store.note_refused_callbacks("tw", time.time() - REFUSAL_WINDOW - 1)  # the window is over
    await background.poll()
    assert len(asked) == 2
    assert worker.store.refused_callbacks() == {}
    assert row(worker, mid)["status"] == "submitted"


async def test_notifications_are_signed_and_retried(worker: Worker, fake: Fake) -> None:
    received: list[tuple[bytes, str]] = []
    answers = [500, 200, 200]

    async def handler(request: web.Request) -> web.Response:
        received.append((await request.read(), request.headers.get(SIGNATURE_HEADER, "")))
        return web.Response(status=answers.pop(0))

    app = web.Application()
    app.router.add_post("/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        worker.settings.notify_secret = "notify-secret"
        (mid,) = enqueue(worker, A, callback_url=f"http://127.0.0.1:{port}/events")
        await cycle(worker)  # sending, submitted: one notification (submitted)
        worker.store.cancel(mid)  # no-op (not cancelable), nothing more
        background = Background(worker.settings, worker.store, worker.lanes, worker.metrics)
        await background.notify()  # HTTP 500: retried later
        assert len(received) == 1
        await background.notify()
        assert len(received) == 1  # not due yet
        with worker.store.tx() as conn:
            from sqlalchemy import update

            from formosms.gateway.schema import notifications

            conn.execute(update(notifications).values(next_attempt_at=0))
        await background.notify()
        assert len(received) == 2
        body, signature = received[1]
        assert verify("notify-secret", signature, body)
        assert not verify("other-secret", signature, body)
        payload = json.loads(body)
        assert (payload["type"], payload["id"], payload["status"]) == ("message.status", mid, "submitted")
        await background.notify()
        assert len(received) == 2  # acknowledged: never again
        if background._session is not None:
            await background._session.close()
    finally:
        await runner.cleanup()


def test_lane_names(worker: Worker) -> None:
    assert sorted(worker.lanes) == ["sg", "tw"]
    lane = worker.lanes["tw"]
    assert isinstance(lane, Lane) and lane.name == "tw" and lane.rate == 500.0
    assert worker.lanes["sg"].rate is None


async def test_claim_loop_survives_a_failing_dispatch(
    worker: Worker, fake: Fake, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker.dispatch
    calls: list[int] = []

    async def dispatch(rows: Any) -> None:
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        await real(rows)

    monkeypatch.setattr(worker, "dispatch", dispatch)
    enqueue(worker, A)
    stop = asyncio.Event()
    loop = asyncio.create_task(worker._claim_loop(stop))
    await asyncio.sleep(0.05)
    (later,) = enqueue(worker, B)
    deadline = time.monotonic() + 5
    while row(worker, later)["status"] != "submitted":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    stop.set()
    await loop
    assert len(calls) >= 2


async def test_two_workers_send_every_message_exactly_once(
    make_store: Any, two_providers: tuple[Router, Settings]
) -> None:
    """Two workers (each with its own connections, as two processes) on one outbox."""
    router, settings = two_providers
    settings.claim_batch = 20
    numbers = [f"+8869{i:08d}" for i in range(150)]
    make_store().enqueue([NewMessage(n, "hi") for n in numbers])
    workers = [Worker(settings, make_store(), router) for _ in range(2)]
    sent: list[str] = []

    def record(to: list[str], text: str, options: dict[str, Any]) -> SendResult:
        sent.extend(to)
        return accept(to, text, options)

    for w in workers:
        Fake(w).script["tw"] = record
        scripted = w.lanes["tw"].client.send

        async def round_trip(*args: Any, _send: Any = scripted, **kw: Any) -> SendResult:
            await asyncio.sleep(0.005)  # a provider answers in milliseconds: the other worker claims meanwhile
            return await _send(*args, **kw)  # type: ignore[no-any-return]

        w.lanes["tw"].client.send = round_trip  # type: ignore[method-assign]
    stop = asyncio.Event()
    loops = [asyncio.create_task(w._claim_loop(stop)) for w in workers]
    deadline = time.monotonic() + 20
    try:
        while workers[0].store.counts().get(("tw", "submitted"), 0) < len(numbers):
            assert time.monotonic() < deadline, workers[0].store.counts()
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*loops)
        for w in workers:
            while w._tasks:
                await asyncio.gather(*list(w._tasks))
            await w.close()
    assert sorted(sent) == numbers  # each exactly once
    assert {r["claimed_by"] for r in workers[0].store.search(limit=1000)} == {w.id for w in workers}
