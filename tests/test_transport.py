"""The drivers: one encoding, and foreign exceptions translated in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from formosms.errors import ConnectError, ProviderUnavailable, Rejected, Timeout
from formosms.sandbox.server import ServerThread, free_port
from formosms.transport import AsyncDriver, HttpRequest, HttpResponse, SyncDriver, decode_body, one

HOSTILE = "100% + & # ]]> <b> \n 台灣 😀 a=b?c"


async def echo(request: Request) -> Response:
    body = await request.body()
    return PlainTextResponse(request.url.query + "\n" + body.decode("ascii"))


async def slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return PlainTextResponse("late")


async def peer(request: Request) -> Response:
    assert request.client is not None
    return PlainTextResponse(str(request.client.port))


async def status(request: Request) -> Response:
    return PlainTextResponse("x", status_code=int(request.path_params["code"]))


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/slow", slow),
            Route("/s/{code}", status),
            Route("/peer", peer),
        ]
    )
    with ServerThread(app) as running:
        yield running


def request(url: str, **kw: object) -> HttpRequest:
    return HttpRequest("GET", url, operation="test", **kw)  # type: ignore[arg-type]


def exchange(req: HttpRequest):  # type: ignore[no-untyped-def]
    response = yield from one(req)
    return response


def test_fields_are_encoded_exactly_once(server: ServerThread) -> None:
    from urllib.parse import parse_qsl

    req = HttpRequest(
        "POST",
        server.url + "/echo",
        params=(("to", "+886912345678"), ("msg", HOSTILE)),
        form=(("text", HOSTILE),),
    )
    driver = SyncDriver("test", 5)
    try:
        reply = driver.run(exchange(req))
    finally:
        driver.close()
    query, body = reply.text.split("\n", 1)
    assert "to=%2B886912345678" in query
    assert dict(parse_qsl(query))["msg"] == HOSTILE
    assert dict(parse_qsl(body))["text"] == HOSTILE


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_errors_are_translated(server: ServerThread, kind: str) -> None:
    cases = [
        (request(f"http://127.0.0.1:{free_port()}/nothing"), ConnectError),
        (request(server.url + "/slow"), Timeout),
        (request(server.url + "/s/503"), ProviderUnavailable),
        (request(server.url + "/s/504"), Timeout),
        (request(server.url + "/s/429"), ProviderUnavailable),
        (request(server.url + "/s/404"), Rejected),
    ]
    for req, expected in cases:
        with pytest.raises(expected) as caught:
            if kind == "sync":
                driver = SyncDriver("test", 0.5)
                try:
                    driver.run(exchange(req))
                finally:
                    driver.close()
            else:

                async def go(req: HttpRequest = req) -> HttpResponse:
                    adriver = AsyncDriver("test", 0.5)
                    try:
                        return await adriver.run(exchange(req))
                    finally:
                        await adriver.close()

                asyncio.run(go())
        assert caught.value.provider == "test"


def test_secrets_never_in_error_messages(server: ServerThread) -> None:
    req = request(f"http://127.0.0.1:{free_port()}/x", params=(("password", "hunter2!!"),), secrets=("hunter2!!",))
    driver = SyncDriver("test", 0.5)
    with pytest.raises(ConnectError) as caught:
        driver.run(exchange(req))
    driver.close()
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)


def test_async_runs_a_batch_concurrently(server: ServerThread) -> None:
    def batch():  # type: ignore[no-untyped-def]
        outcomes = yield [request(server.url + "/slow") for _ in range(5)]
        return outcomes

    async def go() -> float:
        driver = AsyncDriver("test", 5, concurrency=10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcomes = await driver.run(batch())
        await driver.close()
        assert all(isinstance(o, HttpResponse) and o.text == "late" for o in outcomes)
        return loop.time() - started

    assert asyncio.run(go()) < 5 * 2  # five 2-second answers overlapped


def test_idle_connections_are_not_reused_after_the_keepalive(
    server: ServerThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection idle longer than ``KEEPALIVE_SECONDS`` is dropped, not reused: a server
    closing it at that moment would reset a request that already left (outcome unknown)."""
    import formosms.transport

    monkeypatch.setattr(formosms.transport, "KEEPALIVE_SECONDS", 0.3)

    async def go() -> list[str]:
        driver = AsyncDriver("test", 5, concurrency=1)
        ports = []
        for pause in (0.0, 0.05, 1.0):
            await asyncio.sleep(pause)
            (response,) = await driver.run(batch_of_one())
            assert isinstance(response, HttpResponse)
            ports.append(response.text)
        await driver.close()
        return ports

    def batch_of_one():  # type: ignore[no-untyped-def]
        outcomes = yield [request(server.url + "/peer")]
        return outcomes

    first, soon_after, after_idle = asyncio.run(go())
    assert soon_after == first  # kept alive while busy
    assert after_idle != first  # a fresh connection after idling past the limit


def test_decode_body_falls_back_to_big5() -> None:
    assert decode_body("台灣".encode("cp950")) == "台灣"
    assert decode_body("台灣".encode(), "text/plain; charset=utf-8") == "台灣"
    assert decode_body("\ufeff1230.00".encode()) == "1230.00"
