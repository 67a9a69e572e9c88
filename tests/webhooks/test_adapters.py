"""The framework glue: a FastAPI mount and a Django view, same parsing and same acks."""

from __future__ import annotations

import httpx
import pytest

import formosms.providers.smsgo  # noqa: F401
from formosms.model import WebhookResult
from formosms.webhooks.adapters import django_view, mount
from formosms.webhooks.events import WebhookEvent

SECRET = "adapter-secret-0123456789"
REPORT = "msgid=100101121234567&statusstr=DELIVRD&statuscode=0&dstaddr=0912345678"
ACK = b"magicid=tccrd_sms_gateway_rpack\nmsgid=100101121234567\n"


async def test_fastapi_mount() -> None:
    from fastapi import FastAPI

    seen: list[WebhookEvent] = []
    app = FastAPI()
    mount(app, "/hooks", lambda result, events: seen.extend(events), secret=SECRET)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        reply = await client.get(f"/hooks/smsgo/{SECRET}?{REPORT}")
        wrong = await client.get(f"/hooks/smsgo/not-the-secret-000000?{REPORT}")
    assert (reply.status_code, reply.content) == (200, ACK)
    assert wrong.status_code == 404 and len(seen) == 1


def test_django_view() -> None:
    django = pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], DEFAULT_CHARSET="utf-8")
        django.setup()
    from django.test import RequestFactory

    stored: list[WebhookResult] = []
    view = django_view(lambda result, events: stored.append(result), secret=SECRET)
    factory = RequestFactory()
    reply = view(factory.get(f"/hooks/smsgo/{SECRET}?{REPORT}"), "smsgo", SECRET)
    assert (reply.status_code, reply.content) == (200, ACK)
    assert reply["Content-Type"].startswith("text/plain")
    assert view(factory.get(f"/hooks/smsgo/x?{REPORT}"), "smsgo", "not-the-secret-000000").status_code == 404
    assert view(factory.get("/hooks/smsgo/x?msgid=abc"), "smsgo", SECRET).status_code == 400
    assert len(stored) == 1 and stored[0].reports[0].message_id == "100101121234567"

    def broken(result: WebhookResult, events: list[WebhookEvent]) -> None:
        raise RuntimeError("database down")

    assert django_view(broken, secret=SECRET)(factory.get(f"/x?{REPORT}"), "smsgo", SECRET).status_code == 503
