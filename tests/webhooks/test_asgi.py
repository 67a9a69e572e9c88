"""The mountable receiver: secret path, size limit, one-line 400s, ack only after storing."""

from __future__ import annotations

import contextlib
import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import formosms.providers.smsgo
import formosms.providers.twsms  # noqa: F401  (registers the providers used here)
from formosms.errors import InvalidWebhook
from formosms.model import Status, WebhookResult
from formosms.webhooks import MemoryEventStore, events_of, parse
from formosms.webhooks.asgi import asgi_app
from formosms.webhooks.events import WebhookEvent

SECRET = "s3cret-path-0123456789"
# SMSGo §6: "<response URL>?msgid=<MsgId>&statuscode=<StatusCode>&statusstr=<StatusStr>[&dstaddr=<number>]"
SMSGO_REPORT = "msgid=100101121234567&statusstr=DELIVRD&statuscode=0&dstaddr=0912345678"
# TwSMS §4 主動式: smsresp=<URL-encoded JSON>
TWSMS_REPORT = "smsresp=" + quote(
    json.dumps(
        {
            "code": "00000",
            "text": "Success",
            "msgid": "12345678",
            "mobile": "0911222333",
            "statuscode": "0",
            "statustext": "DELIVRD",
            "downtime": "20180520183042",
        }
    )
)


def client(handler=None, **kw):  # type: ignore[no-untyped-def]
    store = MemoryEventStore()

    def keep(result: WebhookResult, events: list[WebhookEvent]) -> None:
        store.add(events)

    app = asgi_app(handler or keep, secret=SECRET, **kw)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hooks"), store


async def test_smsgo_report_gets_the_exact_ack() -> None:
    http, store = client()
    async with http:
        reply = await http.get(f"/smsgo/{SECRET}?{SMSGO_REPORT}")
    assert reply.status_code == 200
    assert reply.content == b"magicid=tccrd_sms_gateway_rpack\nmsgid=100101121234567\n"
    assert reply.headers["content-type"].startswith("text/plain")
    (report,) = store.reports
    assert (report.status, report.recipient, report.message_id) == (
        Status.DELIVERED,
        "+886912345678",
        "100101121234567",
    )


async def test_same_callback_twice_is_one_event() -> None:
    http, store = client()
    async with http:
        for _ in range(2):
            assert (await http.get(f"/twsms/{SECRET}?{TWSMS_REPORT}")).status_code == 200
    assert len(store.events) == 1 and store.duplicates == 1


@pytest.mark.parametrize("path", [f"/smsgo/wrong-secret-0000000000?{SMSGO_REPORT}", f"/nope/{SECRET}", "/smsgo", "/"])
async def test_wrong_secret_or_provider_is_404_and_nothing_parsed(path: str) -> None:
    http, store = client()
    async with http:
        assert (await http.get(path)).status_code == 404
    assert not store.events


async def test_oversized_body_is_413() -> None:
    http, _ = client(max_body=1000)
    async with http:
        reply = await http.post(f"/smsgo/{SECRET}", content=b"a=" + b"x" * 2000)
    assert reply.status_code == 413


async def test_garbage_is_a_one_line_400() -> None:
    http, store = client()
    async with http:
        reply = await http.get(f"/twsms/{SECRET}?smsresp=%7Bnot-json")
    assert reply.status_code == 400 and b"\n" not in reply.content and reply.content
    assert not store.events


async def test_storage_failure_answers_503_so_the_provider_retries() -> None:
    def broken(result: WebhookResult, events: list[WebhookEvent]) -> None:
        raise RuntimeError("disk full")

    http, _ = client(broken)
    async with http:
        reply = await http.get(f"/smsgo/{SECRET}?{SMSGO_REPORT}")
    assert reply.status_code == 503


async def test_aliases_serve_gateway_names() -> None:
    seen: list[str] = []

    def keep(result: WebhookResult, events: list[WebhookEvent]) -> None:
        seen.append(result.provider)

    http, _ = client(keep, aliases={"tw-main": "twsms"})
    async with http:
        assert (await http.get(f"/tw-main/{SECRET}?{TWSMS_REPORT}")).status_code == 200
        assert (await http.get(f"/twsms/{SECRET}?{TWSMS_REPORT}")).status_code == 404
    assert seen == ["tw-main"]


def test_short_secret_refused() -> None:
    from formosms.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        asgi_app(lambda r, e: None, secret="short")


def test_event_ids_are_stable() -> None:
    first = events_of(parse("smsgo", method="GET", query=SMSGO_REPORT, body=b""))
    second = events_of(parse("smsgo", method="GET", query=SMSGO_REPORT, body=b""))
    other = events_of(parse("smsgo", method="GET", query=SMSGO_REPORT.replace("DELIVRD", "UNDELIV"), body=b""))
    assert [e.id for e in first] == [e.id for e in second] != [e.id for e in other]


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    provider=st.sampled_from(["smsgo", "twsms"]),
    query=st.binary(max_size=300),
    body=st.binary(max_size=300),
    method=st.sampled_from(["GET", "POST"]),
)
def test_parse_raises_only_invalid_webhook(provider: str, query: bytes, body: bytes, method: str) -> None:
    with contextlib.suppress(InvalidWebhook):
        parse(provider, method=method, query=query, body=body, content_type="application/x-www-form-urlencoded")
