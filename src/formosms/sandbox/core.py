"""What every emulator shares: accounts, accepted messages, delivery, callbacks, faults.

An emulator (one per provider API, in its own module) owns the wire format and the
provider's rules; this module owns the state machine of a message inside a fake provider:

    accepted ──(schedule time)──> submitted ──(delivery delay)──> final state
        └── canceled (while scheduled)            └── lost: never reaches a final state

and the callbacks the provider makes, with the provider's retry rule. Everything is in
memory; given a seed, ids and outcomes are reproducible.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp

from formosms.timefmt import TAIPEI

log = logging.getLogger("formosms.sandbox")

#: a message's final outcome, by the emulator's neutral names; each emulator maps them
#: to its own codes (SMSGo DELIVRD/UNDELIV/EXPIRED, EVERY8D 100/101/107 …)
OUTCOMES = ("delivered", "undeliverable", "expired", "rejected")


@dataclass
class Account:
    username: str
    password: str
    points: Decimal = Decimal(1000)
    api_keys: set[str] = field(default_factory=set)
    allowed_ips: set[str] | None = None  # None: the allow-list is off (the default)
    international: bool = True
    two_way_code: str = ""
    callback_url: str = ""  # a URL registered in the provider's console (SMS-Get, EVERY8D SOAP)
    reply_callback_url: str = ""
    enabled: bool = True

    def authenticates(self, password: str) -> bool:
        return bool(password) and (password == self.password or password in self.api_keys)


@dataclass
class Faults:
    """Switchable at run time through the control API; shares are 0.0–1.0."""

    latency: float = 0.0  # seconds added to every answer
    error_rate: float = 0.0  # HTTP 5xx
    timeout_rate: float = 0.0  # hold the connection for ``hold`` seconds, then 504
    hold: float = 30.0
    malformed_rate: float = 0.0  # HTTP 200 with a body that is not the documented format
    busy_rate: float = 0.0  # HTTP 200 with the provider's "busy / try later" code
    lost_rate: float = 0.0  # accepted, then no report ever
    duplicate_callbacks: bool = False  # deliver every callback twice
    rate_limit: float | None = None  # requests/s; None: unlimited

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if not hasattr(self, key):
                raise KeyError(key)
            setattr(self, key, None if value is None else type(getattr(self, key) or 0.0)(value))


@dataclass
class Accepted:
    """One message to one recipient, as the fake provider took it."""

    seq: int
    provider: str
    account: str
    request_id: int
    recipient: str  # exactly as received on the wire
    text: str  # exactly as received (after the one URL-decoding the provider does)
    received_at: float
    message_id: str
    batch_id: str = ""
    points: Decimal = Decimal(0)
    send_at: float | None = None  # scheduled time (epoch seconds)
    validity: float | None = None  # seconds
    callback_url: str = ""
    record_no: str = ""
    kind: str = "sms"  # sms | mms
    state: str = "accepted"  # accepted | scheduled | submitted | <outcome> | canceled
    final_at: float | None = None
    lost: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timer(self) -> tuple[str, int]:
        """The engine's key for this message's timer (``seq`` counts per provider)."""
        return (self.provider, self.seq)

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["points"] = str(self.points)
        return data


@dataclass
class Reply:
    seq: int
    sender: str
    text: str
    received_at: float
    to_message: Accepted | None
    account: str


@dataclass
class SandboxConfig:
    seed: int | None = None
    delivery_delay: float = 1.0
    #: weights of final outcomes; the rest of the mix is renormalized
    outcome_mix: dict[str, float] = field(default_factory=lambda: {"delivered": 1.0})
    callback_timeout: float = 5.0
    callback_workers: int = 32


Callback = Callable[[], Awaitable[bool]]


class ProviderState:
    """The state of one emulated provider: accounts, messages, replies, faults, clock."""

    def __init__(self, name: str, config: SandboxConfig, accounts: list[Account] | None = None):
        self.name = name
        self.config = config
        self.faults = Faults()
        seeded = config.seed is not None
        # ids draw from their own generator, so deliveries and fault rolls happening between
        # two requests do not change the next id: the same seed gives the same ids
        self.random = random.Random(f"{config.seed}:{name}" if seeded else None)
        self.ids = random.Random(f"{config.seed}:{name}:ids" if seeded else None)
        self.accounts: dict[str, Account] = {a.username: a for a in accounts or []}
        self.messages: list[Accepted] = []
        self.by_id: dict[str, list[Accepted]] = {}
        self.replies: list[Reply] = []
        self.requests = 0
        self.callbacks_sent: list[dict[str, Any]] = []
        self._seq = itertools.count(1)
        self._bucket_time = time.monotonic()
        self._bucket_tokens = float("inf")  # starts full: one second's burst

    # -- accounts and ids -----------------------------------------------------------------
    def add_account(self, account: Account) -> Account:
        self.accounts[account.username] = account
        return account

    def authenticate(self, username: str, password: str, client_ip: str | None = None) -> Account | None:
        account = self.accounts.get(username)
        if account is None or not account.enabled or not account.authenticates(password):
            return None
        if account.allowed_ips is not None and client_ip not in account.allowed_ips:
            return None
        return account

    def next_request_id(self) -> int:
        self.requests += 1
        return self.requests

    def numeric_id(self, digits: int) -> str:
        low = 10 ** (digits - 1)
        return str(self.ids.randrange(low, low * 10))

    def uuid(self) -> str:
        h = f"{self.ids.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    # -- messages ---------------------------------------------------------------------------
    def accept(self, **fields: Any) -> Accepted:
        message = Accepted(seq=next(self._seq), provider=self.name, received_at=time.time(), **fields)
        self.messages.append(message)
        self.by_id.setdefault(message.message_id, []).append(message)
        if message.batch_id and message.batch_id != message.message_id:
            self.by_id.setdefault(message.batch_id, []).append(message)
        return message

    def find(self, message_or_batch_id: str) -> list[Accepted]:
        return self.by_id.get(message_or_batch_id, [])

    def charge(self, account: Account, points: Decimal) -> bool:
        if account.points < points:
            return False
        account.points -= points
        return True

    def roll(self, share: float) -> bool:
        return share > 0 and self.random.random() < share

    def pick_outcome(self) -> str:
        mix = {k: v for k, v in self.config.outcome_mix.items() if v > 0}
        if not mix:
            return "delivered"
        names = sorted(mix)
        return self.random.choices(names, weights=[mix[n] for n in names])[0]

    def rate_limited(self) -> bool:
        """Token bucket over ``faults.rate_limit`` requests/s (burst: one second's worth)."""
        limit = self.faults.rate_limit
        if not limit:
            return False
        now = time.monotonic()
        self._bucket_tokens = min(limit, self._bucket_tokens + (now - self._bucket_time) * limit)
        self._bucket_time = now
        if self._bucket_tokens < 1:
            return True
        self._bucket_tokens -= 1
        return False

    def reset(self) -> None:
        """Forget messages, replies and callbacks; faults back to none (the documented rate
        limit stays). Accounts and their points are kept."""
        self.messages.clear()
        self.by_id.clear()
        self.replies.clear()
        self.callbacks_sent.clear()
        self.faults = Faults(rate_limit=self.faults.rate_limit)  # the documented limit stays


def taipei(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, TAIPEI)


class Engine:
    """Moves accepted messages through time and makes the providers' HTTP callbacks.

    Timers run on the event loop of the server (``asyncio.get_running_loop``); callbacks
    go through a bounded pool of workers so 10,000 reports do not open 10,000 sockets.
    """

    def __init__(self, config: SandboxConfig):
        self.config = config
        self._queue: asyncio.Queue[tuple[str, Callback]] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._timers: dict[tuple[str, int], asyncio.TimerHandle] = {}

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._workers = [loop.create_task(self._work()) for _ in range(self.config.callback_workers)]
        return loop

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._workers:
            task.cancel()
        self._workers.clear()
        self._queue = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.callback_timeout),
                connector=aiohttp.TCPConnector(limit=self.config.callback_workers),
            )
        return self._session

    def at(self, key: tuple[str, int], when: float, action: Callable[[], None]) -> None:
        """Run ``action`` at epoch time ``when`` (replacing any timer under ``key``)."""
        loop = self._ensure_started()
        self.cancel(key)
        delay = max(0.0, when - time.time())

        def fire() -> None:
            self._timers.pop(key, None)
            action()

        self._timers[key] = loop.call_later(delay, fire)

    def cancel(self, key: tuple[str, int]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def enqueue(self, label: str, callback: Callback) -> None:
        self._ensure_started()
        assert self._queue is not None
        self._queue.put_nowait((label, callback))

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            label, callback = await queue.get()
            try:
                await callback()
            except Exception:  # a broken receiver must not stop the engine
                log.exception("callback %s failed", label)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued callback has been attempted (for tests)."""
        if self._queue is not None:
            await self._queue.join()


async def deliver_with_retries(
    engine: Engine,
    state: ProviderState,
    *,
    method: str,
    url: str,
    params: list[tuple[str, str]] | None = None,
    data: bytes | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    accept: Callable[[int, bytes], bool],
    retries: int,
    backoff: float = 0.2,
) -> bool:
    """Make one provider callback, retrying ``retries`` times when ``accept`` says no.

    Every attempt is recorded in ``state.callbacks_sent`` (what the inspection API shows).
    """
    from yarl import URL

    attempts = 1 + retries
    copies = 2 if state.faults.duplicate_callbacks else 1
    ok = False
    for _copy in range(copies):
        for attempt in range(attempts):
            status, body = 0, b""
            try:
                target = URL(url)
                if params:
                    target = target.update_query(params)
                headers = {"Content-Type": content_type} if data is not None else {}
                async with engine.session().request(method, target, data=data, headers=headers) as reply:
                    status, body = reply.status, await reply.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                body = repr(exc).encode()
            ok = accept(status, body)
            state.callbacks_sent.append(
                {"url": url, "method": method, "attempt": attempt + 1, "status": status, "ok": ok}
            )
            if ok:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(backoff * (attempt + 1))
    return ok
