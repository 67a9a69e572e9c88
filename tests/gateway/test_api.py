"""The REST API and the webhook mount, in process (no workers, no network)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from formosms.gateway import api as api_module
from formosms.gateway.api import create_app
from formosms.gateway.config import Settings
from formosms.gateway.models import MessageIn
from formosms.gateway.routing import Router
from formosms.gateway.store import Outcome, Store, StoreUnavailable
from formosms.model import InboundMessage, WebhookResult
from formosms.timefmt import TAIPEI
from formosms.webhooks.events import events_of
from tests.conftest import secret
from tests.gateway.conftest import WEBHOOK_SECRET


class Api:
    def __init__(self, client: TestClient, store: Store, token: str) -> None:
        self.client = client
        self.store = store
        self.token = token
        self.headers = {"Authorization": f"Bearer {token}"}

    def post(self, body: Any, **headers: str) -> Any:
        return self.client.post("/v1/messages", json=body, headers={**self.headers, **headers})

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers)

    def count(self) -> int:
        return len(self.store.search(limit=10_000))


@pytest.fixture
def api(sqlite_store: Store, two_providers: tuple[Router, Settings]) -> Iterator[Api]:
    router, settings = two_providers
    app = create_app(settings, sqlite_store, router, with_workers=False)
    with TestClient(app) as client:
        yield Api(client, sqlite_store, secret(sqlite_store.create_api_key("test")))


def future(minutes: int = 30) -> str:
    return (datetime.now(TAIPEI) + timedelta(minutes=minutes)).isoformat()


def loc(response: Any) -> list[Any]:
    assert response.status_code == 422, response.text
    return list(response.json()["detail"][0]["loc"])


def submit_one(api: Api, **values: Any) -> int:
    response = api.post({"to": "0912345601", "text": "hi", **values})
    assert response.status_code == 202, response.text
    return int(response.json()["messages"][0]["id"])


def as_submitted(store: Store, message_id: int, provider: str, pmid: str) -> None:
    store.claim("w", 100)
    store.mark_sending([message_id], provider)
    store.record([Outcome(message_id, "submitted", provider=provider, provider_message_id=pmid)])


# -- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer fsk_wrong", "Basic abc", "fsk_x"])
def test_401_without_a_valid_key_and_nothing_written(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"to": "0912345601", "text": "hi"}
    response = api.client.post("/v1/messages", json=body, headers={**headers, "Idempotency-Key": "k"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert api.client.get("/v1/messages", headers=headers).status_code == 401
    assert api.client.delete("/v1/messages/1", headers=headers).status_code == 401
    assert api.count() == 0
    assert api.store.idempotency_begin(1, "k", "h") == ("new", None)  # no key was taken either


def test_401_comes_before_validation(api: Api) -> None:
    response = api.client.post("/v1/messages", json={"to": "nope"}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 401


# -- submitting ------------------------------------------------------------------------------------


def test_one_text_to_many(api: Api) -> None:
    response = api.post({"to": ["0912-345-601", "+886 912 345 602"], "text": "您好", "metadata": {"o": "1"}})
    assert response.status_code == 202
    answer = response.json()["messages"]
    assert [(m["to"], m["status"]) for m in answer] == [
        ("+886912345601", "queued"),
        ("+886912345602", "queued"),
    ]
    stored = api.store.get(answer[0]["id"])
    assert stored is not None and stored["text"] == "您好" and stored["metadata"] == {"o": "1"}


def test_personalized_list(api: Api) -> None:
    body = {
        "messages": [
            {"to": "0912345601", "text": "王先生您好", "metadata": {"row": "1"}},
            {"to": "0912345602", "text": "李小姐您好"},
        ],
        "metadata": {"campaign": "c1"},
        "provider": "sg",
        "callback_url": "https://app.example/cb",
    }
    response = api.post(body)
    assert response.status_code == 202
    first, second = (api.store.get(m["id"]) for m in response.json()["messages"])
    assert first is not None and second is not None
    assert first["text"] == "王先生您好" and first["metadata"] == {"campaign": "c1", "row": "1"}
    assert second["text"] == "李小姐您好" and second["metadata"] == {"campaign": "c1"}
    assert first["requested_provider"] == "sg" and first["callback_url"] == "https://app.example/cb"


def test_schedule_at(api: Api) -> None:
    response = api.post({"to": "0912345601", "text": "hi", "schedule_at": future()})
    assert response.status_code == 202 and response.json()["messages"][0]["status"] == "scheduled"
    past = (datetime.now(TAIPEI) - timedelta(minutes=1)).isoformat()
    assert loc(api.post({"to": "0912345601", "text": "hi", "schedule_at": past})) == ["body", "schedule_at"]
    naive = (datetime.now() + timedelta(hours=1)).replace(microsecond=0).isoformat()
    response = api.post({"to": "0912345601", "text": "hi", "schedule_at": naive})
    assert loc(response) == ["body", "schedule_at"] and "time zone" in response.text
    assert api.count() == 1


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"to": ["0912345601", "12ab"], "text": "hi"}, ["body", "to", 1]),
        ({"to": "12ab", "text": "hi"}, ["body", "to"]),
        (
            {"messages": [{"to": "0912345601", "text": "a"}, {"to": "x", "text": "b"}]},
            ["body", "messages", 1, "to"],
        ),
        ({"messages": [{"to": "0912345601", "text": " "}]}, ["body", "messages", 0, "text"]),
        ({"messages": [{"to": "0912345601", "text": "x" * 2001}]}, ["body", "messages", 0, "text"]),
        ({"messages": []}, ["body", "messages"]),
        ({"to": "0912345601", "text": ""}, ["body", "text"]),
        ({"to": "0912345601"}, ["body", "text"]),
        ({"text": "hi"}, ["body", "to"]),
        ({"to": "0912345601", "text": "hi", "messages": []}, ["body", "messages"]),
        ({"to": "0912345601", "text": "hi", "provider": "nope"}, ["body", "provider"]),
        ({"to": "0912345601", "text": "hi", "options": {"record_no": "1"}}, ["body", "options", "record_no"]),
        ({"to": "0912345601", "text": "hi", "validity": 10}, ["body", "validity"]),
        ({"to": "0912345601", "text": "hi", "callback_url": "ftp://x"}, ["body", "callback_url"]),
        ({"to": "0912345601", "text": "hi", "mms": {"data": "not base64!"}}, ["body", "mms", "data"]),
        ({"to": "0912345601", "text": "hi", "mms": {"data": "eA==", "type": "bmp"}}, ["body", "mms", "type"]),
        ({"to": "0912345601", "text": "hi", "mms": {"data": "eA=="}}, ["body", "to"]),  # nobody sends MMS
        ({"to": "0912345601", "text": "hi", "options": {"flash": True}}, ["body", "to"]),
        ({"to": 912345601, "text": "hi"}, ["body", "to", "str"]),
        ({"to": "0912345601", "text": "hi", "metadata": {"k": 1}}, ["body", "metadata", "k"]),
    ],
)
def test_bad_input_is_422_naming_the_field_and_nothing_written(
    api: Api, body: dict[str, Any], where: list[Any]
) -> None:
    assert api.get("/v1/messages").status_code == 200  # a known key: the fast path tries first
    got = loc(api.post(body))
    assert got[: len(where)] == where
    assert api.count() == 0


def test_a_known_key_takes_the_fast_path_with_the_routes_answers(api: Api) -> None:
    """Plain submissions with a known key skip FastAPI (``_FastSubmit``); every other case,
    and every error, is still the route's answer."""
    fast = api.client.app.fast_submit  # type: ignore[attr-defined]
    answered: list[Any] = []
    accept = fast.accept

    async def counting(body: Any, items: Any) -> Any:
        answered.append(body)
        return await accept(body, items)

    fast.accept = counting
    first = api.post({"to": "0912345601", "text": "hi"})  # the key is not known yet: the route
    assert first.status_code == 202 and answered == []
    second = api.post({"to": ["0912345602", "0912345603"], "text": "hi", "metadata": {"o": "2"}})
    assert second.status_code == 202 and len(answered) == 1
    assert second.json()["messages"][1] == {"id": second.json()["messages"][0]["id"] + 1, "to": "+886912345603",
                                            "status": "queued"}  # fmt: skip
    assert api.store.get(second.json()["messages"][0]["id"])["metadata"] == {"o": "2"}  # type: ignore[index]
    assert loc(api.post({"to": "0912345601", "text": ""}))[:2] == ["body", "text"]  # 422 from the route
    assert api.post({"to": "0912345601", "text": "hi"}, **{"Idempotency-Key": "k1"}).status_code == 202
    bad_key = api.client.post("/v1/messages", json={"to": "0912345601", "text": "hi"},
                              headers={"Authorization": "Bearer nope"})  # fmt: skip
    assert bad_key.status_code == 401
    assert len(answered) == 1 and api.count() == 4


def test_unreadable_json_is_422(api: Api) -> None:
    assert api.get("/v1/messages").status_code == 200  # a known key: the fast path tries first
    response = api.client.post(
        "/v1/messages", content=b"{not json", headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and api.count() == 0


def test_413_over_one_megabyte(api: Api) -> None:
    body = json.dumps({"to": "0912345601", "text": "x" * (1024 * 1024)}).encode()
    response = api.client.post(
        "/v1/messages", content=body, headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and api.count() == 0


def test_413_over_one_megabyte_without_a_content_length(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"to": "0912345601", "text": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = api.client.post(
        "/v1/messages", content=chunks(), headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413 and api.count() == 0
    small = api.client.post(
        "/v1/messages",
        content=iter([b'{"to": "0912345601", ', b'"text": "hi"}']),
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert small.status_code == 202


def test_idempotency_key(api: Api) -> None:
    body = {"to": ["0912345601", "0912345602"], "text": "hi"}
    first = api.post(body, **{"Idempotency-Key": "order-1"})
    assert first.status_code == 202
    again = api.post(body, **{"Idempotency-Key": "order-1"})
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert api.count() == 2
    other = api.post({**body, "text": "different"}, **{"Idempotency-Key": "order-1"})
    assert other.status_code == 422 and "Idempotency-Key" in other.text
    assert api.post(body, **{"Idempotency-Key": "order-2"}).json() != first.json()
    assert api.count() == 4


def test_idempotency_key_in_flight_is_409(api: Api) -> None:
    body = {"to": "0912345601", "text": "hi"}
    key_id = api.store.verify_api_key(api.token)
    assert key_id is not None
    digest = hashlib.sha256(MessageIn.model_validate(body).model_dump_json().encode()).hexdigest()
    assert api.store.idempotency_begin(key_id, "busy", digest) == ("new", None)  # the first request
    response = api.post(body, **{"Idempotency-Key": "busy"})
    assert response.status_code == 409 and api.count() == 0


def test_idempotency_key_released_when_the_write_fails(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    body = {"to": "0912345601", "text": "hi"}

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(api.store, "enqueue_many", broken)
        patch.setattr(api.store, "write_urgent", broken)  # SQLite: with the callbacks waiting
        assert api.post(body, **{"Idempotency-Key": "k"}).status_code == 503
    assert api.post(body, **{"Idempotency-Key": "k"}).status_code == 202  # not stuck in flight


# -- reading, canceling ----------------------------------------------------------------------------


def test_get_one_with_history(api: Api) -> None:
    mid = submit_one(api)
    as_submitted(api.store, mid, "tw", "P1")
    response = api.get(f"/v1/messages/{mid}")
    assert response.status_code == 200
    got = response.json()
    assert (got["id"], got["to"], got["status"], got["provider"]) == (mid, "+886912345601", "submitted", "tw")
    assert got["provider_message_id"] == "P1"
    assert [e["status"] for e in got["events"]] == ["queued", "sending", "submitted"]
    assert set(got["events"][0]) == {"at", "status", "provider", "provider_status", "detail"}
    assert api.get("/v1/messages/999").status_code == 404
    assert api.get("/v1/messages/abc").status_code == 422


def test_claimed_shows_as_queued_and_unknown_explained(api: Api) -> None:
    mid = submit_one(api)
    api.store.claim("w", 10)
    assert api.get(f"/v1/messages/{mid}").json()["status"] == "queued"
    api.store.mark_sending([mid], "tw")
    api.store.record([Outcome(mid, "unknown", provider="tw", error="timeout")])
    got = api.get(f"/v1/messages/{mid}").json()
    assert got["status"] == "unknown" and "at_least_once" in got["note"]


def test_list_filters_and_cursor(api: Api) -> None:
    ids = [submit_one(api, to=f"09123456{i:02d}", metadata={"batch": str(i % 2)}) for i in range(5)]
    as_submitted(api.store, ids[0], "tw", "P0")
    listed = api.get("/v1/messages").json()
    assert [m["id"] for m in listed["messages"]] == ids[::-1] and listed["next_cursor"] is None
    assert [m["id"] for m in api.get("/v1/messages", status="submitted").json()["messages"]] == [ids[0]]
    assert [m["id"] for m in api.get("/v1/messages", recipient="0912345603").json()["messages"]] == [ids[3]]
    assert [m["id"] for m in api.get("/v1/messages", metadata="batch=1").json()["messages"]] == [
        ids[3],
        ids[1],
    ]
    assert api.get("/v1/messages", recipient="abc").status_code == 422
    assert api.get("/v1/messages", metadata="nokey").status_code == 422
    assert api.get("/v1/messages", limit=0).status_code == 422
    seen, cursor = [], None
    while True:
        page = api.get("/v1/messages", limit=2, **({"cursor": cursor} if cursor else {})).json()
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_delete_cancels_while_queued_or_scheduled(api: Api) -> None:
    queued = submit_one(api)
    scheduled = submit_one(api, schedule_at=future())
    response = api.client.delete(f"/v1/messages/{queued}", headers=api.headers)
    assert response.status_code == 200 and response.json() == {"id": queued, "status": "canceled"}
    assert api.client.delete(f"/v1/messages/{scheduled}", headers=api.headers).status_code == 200
    assert api.get(f"/v1/messages/{scheduled}").json()["status"] == "canceled"
    again = api.client.delete(f"/v1/messages/{scheduled}", headers=api.headers)
    assert again.status_code == 409 and "canceled" in again.text
    busy = submit_one(api)
    api.store.claim("w", 10)
    response = api.client.delete(f"/v1/messages/{busy}", headers=api.headers)
    assert response.status_code == 409 and "being sent" in response.text
    sent = submit_one(api)
    as_submitted(api.store, sent, "tw", "P9")
    response = api.client.delete(f"/v1/messages/{sent}", headers=api.headers)
    assert response.status_code == 409 and "submitted" in response.text
    assert api.client.delete("/v1/messages/4242", headers=api.headers).status_code == 404


def test_replies(api: Api) -> None:
    mid = submit_one(api)
    as_submitted(api.store, mid, "tw", "P1")
    reply = InboundMessage("twsms", sender="+886912345601", text="收到", reply_to="P1", provider_id="9")
    api.store.ingest("tw", events_of(WebhookResult("tw", replies=(reply,))))
    got = api.get("/v1/replies").json()
    assert [(r["sender"], r["text"], r["message_id"]) for r in got["replies"]] == [("+886912345601", "收到", mid)]
    assert got["next_cursor"] is None
    assert api.get("/v1/replies", limit=0).status_code == 422


def test_providers(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    async def balance(provider: Any) -> tuple[str | None, str | None]:
        return "123", None

    monkeypatch.setattr(api_module, "_balance", balance)
    got = {p["name"]: p for p in api.get("/v1/providers").json()["providers"]}
    assert set(got) == {"tw", "sg"}
    assert got["tw"]["circuit"] == "closed" and got["tw"]["balance"] == "123"
    assert got["tw"]["rate_limit"] == 500.0 and "status polling" in got["tw"]["status_tracking"]
    assert "no status query" in got["sg"]["status_tracking"]


def test_health_metrics_and_docs(api: Api) -> None:
    health = api.client.get("/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True and health.json()["schema_version"] >= 3
    submit_one(api)
    metrics = api.client.get("/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert "# TYPE formosms_messages gauge" in text
    assert 'formosms_messages{provider="",status="queued"} 1' in text
    assert "formosms_queue_depth 1" in text
    assert 'formosms_events_total{kind="accepted",provider=""} 1' in text
    assert "# TYPE formosms_api_seconds histogram" in text and 'formosms_api_seconds_bucket{le="+Inf"}' in text
    assert "\nformosms_api_seconds_count " in text and "{}" not in text
    schema = api.client.get("/openapi.json")
    assert schema.status_code == 200 and "/v1/messages" in schema.json()["paths"]
    assert api.client.get("/docs").status_code == 200


def test_notify_url_gets_status_changes(sqlite_store: Store, two_providers: tuple[Router, Settings]) -> None:
    router, settings = two_providers
    settings.notify_url = "https://app.example/events"
    with TestClient(create_app(settings, sqlite_store, router)) as client:
        token = sqlite_store.create_api_key("t")
        response = client.post(
            "/v1/messages",
            json={"to": "0912345601", "text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
        )
        mid = response.json()["messages"][0]["id"]
    sqlite_store.cancel(mid)
    assert [(n["url"], n["payload"]["status"]) for n in sqlite_store.due_notifications()] == [
        ("https://app.example/events", "canceled")
    ]


# -- webhooks ---------------------------------------------------------------------------------------


def smsresp(msgid: str, mobile: str, status: str = "DELIVRD") -> str:
    data = {
        "code": "00000",
        "text": "Success",
        "msgid": msgid,
        "mobile": mobile,
        "statuscode": "0",
        "statustext": status,
        "downtime": "20260520183042",
    }
    return quote(json.dumps(data, separators=(",", ":")), safe="")


def test_webhook_wrong_secret_is_404(api: Api) -> None:
    assert api.client.get("/webhooks/tw/wrong-secret-0123456789?smsresp=x").status_code == 404
    assert api.client.get(f"/webhooks/nope/{WEBHOOK_SECRET}").status_code == 404
    assert api.client.get(f"/webhooks/tw/{WEBHOOK_SECRET}").status_code == 200  # TwSMS's drurl probe


def test_twsms_callback_applies_the_report(api: Api) -> None:
    mid = submit_one(api)
    as_submitted(api.store, mid, "tw", "12345678")
    url = f"/webhooks/tw/{WEBHOOK_SECRET}?smsresp={smsresp('12345678', '0912345601')}"
    response = api.client.get(url)
    assert response.status_code == 200
    assert response.content == b"OK" and response.headers["content-type"].startswith("text/plain")
    got = api.get(f"/v1/messages/{mid}").json()
    assert got["status"] == "delivered" and got["provider_status"] == "DELIVRD"
    assert api.client.get(url).status_code == 200  # a repeat is acknowledged and changes nothing
    late = f"/webhooks/tw/{WEBHOOK_SECRET}?smsresp={smsresp('12345678', '0912345601', 'UNDELIV')}"
    assert api.client.get(late).status_code == 200
    events = api.get(f"/v1/messages/{mid}").json()["events"]
    assert [e["status"] for e in events] == ["queued", "sending", "submitted", "delivered"]


def test_malformed_callback_is_400(api: Api) -> None:
    response = api.client.get(f"/webhooks/tw/{WEBHOOK_SECRET}?smsresp=%7Bnot-json")
    assert response.status_code == 400


def test_webhook_storage_failure_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("database down")

    monkeypatch.setattr(api.store, "ingest", broken)
    url = f"/webhooks/tw/{WEBHOOK_SECRET}?smsresp={smsresp('1', '0912345601')}"
    assert api.client.get(url).status_code == 503


# -- storage failures -------------------------------------------------------------------------------


def test_storage_unavailable_is_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("server closed the connection")

    monkeypatch.setattr(api.store, "enqueue_many", broken)
    monkeypatch.setattr(api.store, "write_urgent", broken)  # SQLite: with the callbacks waiting
    monkeypatch.setattr(api.store, "version", broken)
    response = api.post({"to": "0912345601", "text": "hi"})
    assert response.status_code == 503 and "nothing was accepted" in response.text
    assert api.client.get("/healthz").status_code == 503


def test_sqlite_full_disk_is_503_and_nothing_accepted(api: Api) -> None:
    event.listen(api.store.engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA max_page_count=60"))
    api.store.engine.dispose()  # pooled connections: the next ones see the full disk
    many = {"to": [f"09123{i:05d}" for i in range(200)], "text": "x" * 600}
    statuses = []
    for _ in range(50):
        before = api.count()
        response = api.post(many)
        statuses.append(response.status_code)
        if response.status_code == 503:
            break
    assert statuses[-1] == 503, statuses
    assert "nothing was accepted" in response.text
    assert api.count() == before  # the whole request or nothing
    assert api.client.get("/healthz").status_code == 200  # reads still work


def test_serve_with_workers_sends(
    sqlite_store: Store, two_providers: tuple[Router, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``formosms serve``: the API, the worker and its background loops in one process."""
    from formosms.client import AsyncClient
    from formosms.model import MessageResult, SendResult

    async def send(self: AsyncClient, to: list[str], text: str, **options: Any) -> SendResult:
        return SendResult(self.provider.name, None, tuple(MessageResult(r, message_id="W1") for r in to))

    monkeypatch.setattr(AsyncClient, "send", send)
    router, settings = two_providers
    token = sqlite_store.create_api_key("t")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, sqlite_store, router, with_workers=True)) as client:
        mid = client.post("/v1/messages", json={"to": "0912345601", "text": "hi"}, headers=headers).json()["messages"][
            0
        ]["id"]
        deadline = time.monotonic() + 10
        while client.get(f"/v1/messages/{mid}", headers=headers).json()["status"] != "submitted":
            assert time.monotonic() < deadline, "the worker did not send it"
            time.sleep(0.05)
    got = sqlite_store.get(mid)
    assert got is not None and got["provider"] == "tw" and got["provider_message_id"] == "W1"


def test_gateway_wide_at_least_once(sqlite_store: Store, two_providers: tuple[Router, Settings]) -> None:
    router, settings = two_providers
    settings.at_least_once = True
    token = sqlite_store.create_api_key("t")
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings, sqlite_store, router)) as client:
        default = client.post("/v1/messages", json={"to": "0912345601", "text": "a"}, headers=headers)
        opted_out = client.post(
            "/v1/messages", json={"to": "0912345601", "text": "b", "at_least_once": False}, headers=headers
        )
    first = sqlite_store.get(default.json()["messages"][0]["id"])
    second = sqlite_store.get(opted_out.json()["messages"][0]["id"])
    assert first is not None and first["at_least_once"] is True
    assert second is not None and second["at_least_once"] is False


def test_the_webhook_secret_never_reaches_a_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    logging.getLogger("formosms.http").debug(
        "POST %s -> 200", f"https://p.example/send?drurl=/webhooks/tw/{WEBHOOK_SECRET}"
    )
    api.client.get(f"/webhooks/tw/{WEBHOOK_SECRET}")  # httpx logs the request's URL
    assert caplog.records and not [r for r in caplog.records if WEBHOOK_SECRET in r.getMessage()]
