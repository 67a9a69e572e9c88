"""One sandbox (all five emulators) served over real HTTP on 127.0.0.1 for the session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from formosms.providers.base import Provider, from_dsn
from formosms.sandbox import DEMO_PASSWORD, DEMO_USER, Sandbox, SandboxConfig, ServerThread, create_sandbox

PROVIDERS = ["smsgo", "twsms", "smsget", "every8d", "every8d-soap"]


@dataclass
class Running:
    sandbox: Sandbox
    server: ServerThread

    @property
    def url(self) -> str:
        return self.server.url

    def dsn(self, name: str, user: str = DEMO_USER, password: str = DEMO_PASSWORD) -> str:
        return self.sandbox.dsn(name, self.url, user, password)

    def provider(self, name: str, **kw: str) -> Provider:
        return from_dsn(self.dsn(name, **kw))

    def control(self, method: str, path: str, **kw: object) -> httpx.Response:
        reply = httpx.request(method, self.url + "/_sandbox" + path, timeout=30, **kw)  # type: ignore[arg-type]
        reply.raise_for_status()
        return reply

    def messages(self, name: str) -> list[dict[str, object]]:
        return list(self.control("GET", f"/{name}/messages").json())

    def faults(self, name: str, **values: object) -> None:
        self.control("POST", f"/{name}/faults", json=values)


@pytest.fixture(scope="session")
def running() -> Iterator[Running]:
    sandbox = create_sandbox(SandboxConfig(seed=1, delivery_delay=0.2))
    with ServerThread(sandbox.app) as server:
        yield Running(sandbox, server)


@pytest.fixture
def box(running: Running) -> Running:
    running.control("POST", "/reset")
    return running
