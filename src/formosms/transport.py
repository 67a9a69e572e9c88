"""The only place that does I/O: run a codec's exchange over httpx (sync) or aiohttp (async).

A codec operation is a generator (an *exchange*): it yields a list of ``HttpRequest``
(one or several to run concurrently), receives the outcomes in the same order — an
``HttpResponse`` or a ``TransientError``/``Rejected`` — and finally returns its result.
The drivers below are the only code that touches sockets; foreign exceptions are
translated into ``formosms.errors`` here and nowhere else.

Why these stacks: measured on the project's 2-core machine, ``httpx.Client`` does about
1,460 requests/s against ``requests.Session`` 920; ``httpx.AsyncClient`` falls to about 200
requests/s at 50 concurrent requests while ``aiohttp`` reaches about 10,000.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import aiohttp
import httpx
from yarl import URL

from formosms.errors import (
    ConnectError,
    FormosmsError,
    OutcomeUnknown,
    ProviderUnavailable,
    Rejected,
    Timeout,
)
from formosms.redact import redact

log = logging.getLogger("formosms.http")
T = TypeVar("T")

#: idle connections are dropped after this: many servers close theirs after 5 s (uvicorn,
#: Node, gunicorn), and a request sent on a connection the server is closing at that
#: moment is reset after it left, so its outcome is unknown (200 messages in a 30 s
#: gateway run with aiohttp's default of 15 s, bench/gateway_e2e.py --postgres)
KEEPALIVE_SECONDS = 4.0


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request as data. ``params`` go in the query string, ``form`` in a form body.

    Every field is percent-encoded exactly once, as UTF-8, with ``%20`` for spaces
    and ``%2B`` for ``+`` (so SMSGo's ``+886…`` arrives as ``%2b886…``).
    """

    method: str
    url: str
    params: tuple[tuple[str, str], ...] = ()
    form: tuple[tuple[str, str], ...] | None = None
    content: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)
    operation: str = ""

    def full_url(self) -> str:
        if not self.params:
            return self.url
        sep = "&" if "?" in self.url else "?"
        return self.url + sep + urlencode(self.params, quote_via=quote)

    def body(self) -> bytes | None:
        if self.form is not None:
            return urlencode(self.form, quote_via=quote).encode("ascii")
        return self.content

    def all_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.form is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return headers

    def redacted_url(self) -> str:
        return redact(self.full_url(), self.secrets)

    def __repr__(self) -> str:
        return f"HttpRequest({self.method} {self.redacted_url()})"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    content: bytes
    headers: dict[str, str]
    elapsed: float = 0.0

    @property
    def text(self) -> str:
        return decode_body(self.content, self.headers.get("content-type", ""))


Outcome = HttpResponse | FormosmsError
Exchange = Generator[list[HttpRequest], list[Outcome], T]


def decode_body(content: bytes, content_type: str = "") -> str:
    """UTF-8 unless the reply says otherwise; Big5 (cp950) as the local fallback."""
    charset = "utf-8"
    lowered = content_type.lower()
    if "charset=" in lowered:
        charset = lowered.split("charset=", 1)[1].split(";")[0].strip().strip('"') or "utf-8"
    if charset in ("big5", "big-5"):
        charset = "cp950"
    try:
        return content.decode(charset).lstrip("\ufeff")
    except (UnicodeDecodeError, LookupError):
        try:
            return content.decode("utf-8").lstrip("\ufeff")
        except UnicodeDecodeError:
            return content.decode("cp950", errors="replace")


def one(request: HttpRequest) -> Generator[list[HttpRequest], list[Outcome], HttpResponse]:
    """Run a single request inside an exchange; raise its error if it failed."""
    (outcome,) = yield [request]
    if isinstance(outcome, FormosmsError):
        raise outcome
    return outcome


def _status_error(request: HttpRequest, provider: str, response: HttpResponse) -> Outcome:
    if response.status == 504:
        # a proxy gave up waiting: the provider may well have taken the request
        return Timeout(
            f"{request.operation or 'request'} answered HTTP 504 (gateway timeout)",
            provider=provider,
            code="HTTP 504",
        )
    if response.status >= 500 or response.status == 429:
        return ProviderUnavailable(
            f"{request.operation or 'request'} answered HTTP {response.status}",
            provider=provider,
            code=f"HTTP {response.status}",
        )
    if response.status >= 400:
        return Rejected(
            f"{request.operation or 'request'} answered HTTP {response.status}",
            provider=provider,
            code=f"HTTP {response.status}",
        )
    return response


def _safe(exc: BaseException, request: HttpRequest) -> str:
    return redact(f"{type(exc).__name__}: {exc}", request.secrets)[:300]


class SyncDriver:
    """Runs exchanges over one pooled ``httpx.Client`` (requests of a batch run one by one)."""

    def __init__(self, provider: str, timeout: float, client: httpx.Client | None = None):
        self.provider = provider
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._owned = client is None

    def close(self) -> None:
        if self._owned:
            self._client.close()

    def run(self, exchange: Exchange[T]) -> T:
        try:
            requests = next(exchange)
            while True:
                requests = exchange.send([self._perform(r) for r in requests])
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _perform(self, request: HttpRequest) -> Outcome:
        started = time.perf_counter()
        try:
            reply = self._client.request(
                request.method,
                request.full_url(),
                content=request.body(),
                headers=request.all_headers(),
            )
            content = reply.read()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return ConnectError(f"could not connect: {_safe(exc, request)}", provider=self.provider)
        except httpx.TimeoutException as exc:
            return Timeout(f"no answer in time: {_safe(exc, request)}", provider=self.provider)
        except httpx.HTTPError as exc:
            return OutcomeUnknown(f"connection broke: {_safe(exc, request)}", provider=self.provider)
        response = HttpResponse(
            reply.status_code,
            content,
            {k.lower(): v for k, v in reply.headers.items()},
            time.perf_counter() - started,
        )
        log.debug("%s %s -> %s", request.method, request.redacted_url(), response.status)
        return _status_error(request, self.provider, response)


class Pacer:
    """Spaces requests evenly at ``rate`` per second (a provider's documented ceiling)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class AsyncDriver:
    """Runs exchanges over one pooled ``aiohttp.ClientSession``, batches concurrently.

    ``rate_limit`` (requests/s) paces requests; ``concurrency`` bounds those in flight.
    """

    def __init__(self, provider: str, timeout: float, concurrency: int = 50, rate_limit: float | None = None):
        self.provider = provider
        self.timeout = timeout
        self.concurrency = concurrency
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self._pacer = Pacer(rate_limit) if rate_limit else None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self.concurrency, ttl_dns_cache=300, keepalive_timeout=KEEPALIVE_SECONDS
                ),
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(self.timeout, 10)),
                auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, exchange: Exchange[T]) -> T:
        try:
            requests = next(exchange)
            while True:
                if len(requests) == 1:
                    outcomes = [await self._perform(requests[0])]
                else:
                    outcomes = list(await asyncio.gather(*(self._perform(r) for r in requests)))
                requests = exchange.send(outcomes)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _perform(self, request: HttpRequest) -> Outcome:
        session = self._get_session()
        started = time.perf_counter()
        async with self._limit:
            if self._pacer is not None:
                await self._pacer.wait()
            try:
                async with session.request(
                    request.method,
                    URL(request.full_url(), encoded=True),
                    data=request.body(),
                    headers=request.all_headers(),
                    allow_redirects=False,
                ) as reply:
                    content = await reply.read()
                    headers = {k.lower(): v for k, v in reply.headers.items()}
                    status = reply.status
            except _CONNECT_ERRORS as exc:
                return ConnectError(f"could not connect: {_safe(exc, request)}", provider=self.provider)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                return Timeout(f"no answer in time: {_safe(exc, request)}", provider=self.provider)
            except aiohttp.ClientError as exc:
                return OutcomeUnknown(f"connection broke: {_safe(exc, request)}", provider=self.provider)
        response = HttpResponse(status, content, headers, time.perf_counter() - started)
        log.debug("%s %s -> %s", request.method, request.redacted_url(), status)
        return _status_error(request, self.provider, response)


def _connect_errors() -> tuple[type[BaseException], ...]:
    errors: list[Any] = [aiohttp.ClientConnectorError]
    connection_timeout = getattr(aiohttp, "ConnectionTimeoutError", None)
    if connection_timeout is not None:
        errors.append(connection_timeout)
    return tuple(errors)


_CONNECT_ERRORS = _connect_errors()
