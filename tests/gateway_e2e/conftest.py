"""The gateway over real HTTP: sandbox providers, the REST API, workers, callbacks, notifications."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.gateway.api import create_app
from formosms.gateway.background import SIGNATURE_HEADER, verify
from formosms.gateway.config import ProviderSettings, RouteSettings, Settings
from formosms.gateway.runtime import Gateway, open_gateway
from formosms.sandbox import DEMO_USER, Sandbox, SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.server import free_port

FINAL = {"delivered", "undeliverable", "expired", "rejected", "canceled", "failed", "unknown"}
NOTIFY_SECRET = "notify-secret-for-tests"


@dataclass
class Notifications:
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        async def receive(request: Request) -> Response:
            body = await request.body()
            with self.lock:
                if not verify(NOTIFY_SECRET, request.headers.get(SIGNATURE_HEADER, ""), body):
                    self.bad_signatures += 1
                    return PlainTextResponse("bad signature", status_code=401)
                if self.fail_first > 0:
                    self.fail_first -= 1
                    return PlainTextResponse("try again", status_code=500)
                import json

                self.received.append(json.loads(body))
            return PlainTextResponse("ok")

        return Starlette(routes=[Route("/events", receive, methods=["POST"])])


@dataclass
class Running:
    sandbox: Sandbox
    sandbox_url: str
    gateway: Gateway
    url: str
    key: str
    http: httpx.Client
    notify_url: str
    notifications: Notifications

    def box(self, method: str, path: str, **kw: Any) -> Any:
        reply = httpx.request(method, f"{self.sandbox_url}/_sandbox{path}", timeout=30, **kw)
        reply.raise_for_status()
        return reply.json()

    def post(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return self.http.post("/v1/messages", json=body, headers=headers)

    def wait(
        self, ids: list[int], done: Callable[[dict[str, Any]], bool] | None = None, timeout: float = 20
    ) -> list[dict[str, Any]]:
        check = done or (lambda row: row["status"] in FINAL)
        deadline = time.monotonic() + timeout
        while True:
            rows = [self.http.get(f"/v1/messages/{i}").json() for i in ids]
            if all(check(r) for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"not final in time: {[(r['id'], r['status']) for r in rows]}")
            time.sleep(0.1)


def start(
    tmp_path: Path,
    *,
    providers: list[str] | None = None,
    database: str | None = None,
    routes: list[RouteSettings] | None = None,
    public: bool = True,
    delivery_delay: float = 0.2,
) -> Iterator[Running]:
    sandbox = create_sandbox(SandboxConfig(seed=3, delivery_delay=delivery_delay))
    notifications = Notifications()
    with ServerThread(sandbox.app) as sandbox_server, ServerThread(notifications.app()) as receiver:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        names = providers or list(sandbox.emulators)
        settings = Settings(
            database=database or f"sqlite:///{tmp_path / 'gateway.db'}",
            public_url=url if public else None,
            notify_url=receiver.url + "/events",
            notify_secret=NOTIFY_SECRET,
            port=port,
            stale_after=5.0,
            providers={
                n: ProviderSettings(name=n, dsn=sandbox.dsn(n, sandbox_server.url), priority=i + 1, poll_interval=0.5)
                for i, n in enumerate(names)
            },
            routes=routes or [],
        )
        gateway = open_gateway(settings)
        for name in ("smsget", "every8d-soap"):
            if name in names:
                hook = f"{url}/webhooks/{name}/{settings.webhook_secret}"
                httpx.post(
                    f"{sandbox_server.url}/_sandbox/{name}/accounts",
                    json={"username": DEMO_USER, "callback_url": hook, "reply_callback_url": hook},
                ).raise_for_status()
        app = create_app(settings, gateway.store, gateway.router, with_workers=True)
        with ServerThread(app, port=port):
            key = gateway.store.create_api_key("tests")
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
                yield Running(
                    sandbox,
                    sandbox_server.url,
                    gateway,
                    url,
                    key,
                    http,
                    receiver.url + "/events",
                    notifications,
                )
        gateway.store.close()


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Running]:
    yield from start(tmp_path)
