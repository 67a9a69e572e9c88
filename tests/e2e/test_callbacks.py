"""Callbacks from every emulator into the webhook receiver: parsed, acknowledged, once.

The sandbox is told to deliver every callback twice; each message's final status must
arrive exactly once per event, and each provider must accept our ack (no retries).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from formosms import Client, Feature, Status
from formosms.model import WebhookResult
from formosms.sandbox import DEMO_USER, ServerThread
from formosms.webhooks import MemoryEventStore
from formosms.webhooks.asgi import asgi_app
from formosms.webhooks.events import WebhookEvent
from tests.e2e.conftest import PROVIDERS, Running
from tests.helpers import wait_for

SECRET = "e2e-webhook-secret-0123456789"
CONSOLE_CALLBACKS = {"smsget", "every8d-soap"}  # registered in the provider's console, not per send


class Receiver:
    def __init__(self) -> None:
        self.store = MemoryEventStore()
        self.lock = threading.Lock()

    def __call__(self, result: WebhookResult, events: list[WebhookEvent]) -> None:
        with self.lock:
            self.store.add(events)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, str]]:
    handler = Receiver()
    with ServerThread(asgi_app(handler, secret=SECRET)) as server:
        yield handler, server.url


@pytest.mark.parametrize("name", PROVIDERS)
def test_each_final_status_arrives_once_even_when_delivered_twice(
    box: Running, receiver: tuple[Receiver, str], name: str
) -> None:
    handler, url = receiver
    hook = f"{url}/{name}/{SECRET}"
    box.faults(name, duplicate_callbacks=True)
    options = {}
    if name in CONSOLE_CALLBACKS:
        box.control("POST", f"/{name}/accounts", json={"username": DEMO_USER, "callback_url": hook})
    else:
        options["callback_url"] = hook
    numbers = ["0912345678", "0922333444", "0933123456"]
    before = len(handler.store.events)
    with Client(box.provider(name)) as client:
        assert Feature.DELIVERY_CALLBACK in client.features
        client.send(numbers, "callback 測試", **options)

    def mine() -> list[WebhookEvent]:
        return [e for e in list(handler.store.events.values())[before:] if e.report and e.report.status.is_final]

    wait_for(lambda: len(mine()) >= len(numbers), timeout=10)
    time.sleep(0.5)  # let the duplicate deliveries land too
    finals = mine()
    assert sorted(e.report.recipient for e in finals if e.report) == sorted(f"+886{n[1:]}" for n in numbers)
    assert all(e.report and e.report.status is Status.DELIVERED for e in finals)
    assert handler.store.duplicates >= len(numbers)  # the second copies were recognised
    # SMS-Get sends one callback per send (all recipients' records); the others one each
    assert box.control("GET", f"/{name}/summary").json()["callbacks"] >= 2
    sent = box.sandbox.state(name).callbacks_sent
    assert sent and all(c["ok"] for c in sent), "every callback must be acknowledged the way the provider expects"


@pytest.mark.parametrize(
    ("name", "typed"),
    [
        ("smsgo", "好的，收到"),
        ("smsget", "03好的，收到"),
        ("every8d", "好的，收到"),
        ("every8d-soap", "好的，收到"),
    ],
)
def test_replies_reach_the_receiver(box: Running, receiver: tuple[Receiver, str], name: str, typed: str) -> None:
    """SMSGo ``replyurl``; SMS-Get two-way callback (the text starts with the account's code,
    stripped on arrival); EVERY8D ``STATUS=999`` on the status-report URL."""
    handler, url = receiver
    hook = f"{url}/{name}/{SECRET}"
    options: dict[str, object] = {}
    if name in CONSOLE_CALLBACKS:
        box.control(
            "POST",
            f"/{name}/accounts",
            json={"username": DEMO_USER, "callback_url": hook, "reply_callback_url": hook},
        )
    elif name == "smsgo":
        options["reply_url"] = hook
    else:
        options["callback_url"] = hook
    if name == "smsget":
        options["two_way"] = True
    with Client(box.provider(name)) as client:
        result = client.send("0912345678", "請回覆 reply please", **options)
    message_id = result.messages[0].message_id or result.batch_id
    box.control("POST", f"/{name}/reply", json={"from": "0912345678", "text": typed, "message_id": message_id})
    key = client.provider.name

    def arrived() -> list[object]:
        return [r for r in handler.store.replies if r.text == "好的，收到" and r.provider == key]

    wait_for(lambda: bool(arrived()), timeout=10)
    reply = next(r for r in handler.store.replies if r.text == "好的，收到" and r.provider == key)
    assert reply.sender == "+886912345678"
    if name != "smsget":
        assert reply.reply_to in {result.batch_id, *result.message_ids}
