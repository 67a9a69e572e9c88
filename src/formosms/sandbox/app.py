"""All five emulators on one port, each under its own prefix, plus the control API.

``/smsgo/sms_gw/…``, ``/twsms/json/…``, ``/smsget/…``, ``/every8d/API21/HTTP/…`` and
``/every8d-soap/API21/SOAP/…`` answer as the providers do. ``/_sandbox/…`` is the
sandbox's own API (never a provider's): inspection of every accepted message, fault
switches, accounts, and simulated handset replies.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from formosms.sandbox.core import Account, Engine, ProviderState, SandboxConfig
from formosms.sandbox.emulator import Emulator

DEMO_USER = "demo"
DEMO_PASSWORD = "demo-secret"


def all_emulators() -> list[type[Emulator]]:
    from formosms.sandbox.every8d import Every8dEmulator
    from formosms.sandbox.every8d_soap import Every8dSoapEmulator
    from formosms.sandbox.smsget import SMSGetEmulator
    from formosms.sandbox.smsgo import SMSGoEmulator
    from formosms.sandbox.twsms import TwSMSEmulator

    return [SMSGoEmulator, TwSMSEmulator, SMSGetEmulator, Every8dEmulator, Every8dSoapEmulator]


def demo_accounts() -> list[Account]:
    return [Account(DEMO_USER, DEMO_PASSWORD, points=Decimal(100000), two_way_code="03", api_keys={"demo-api-key"})]


@dataclass
class Sandbox:
    """The running emulators: ``app`` to serve, ``states`` to inspect, ``engine`` for time."""

    app: Starlette
    engine: Engine
    config: SandboxConfig
    emulators: dict[str, Emulator] = field(default_factory=dict)

    def state(self, provider: str) -> ProviderState:
        return self.emulators[provider].state

    def dsn(self, provider: str, base_url: str, user: str = DEMO_USER, password: str = DEMO_PASSWORD) -> str:
        """A ready-to-paste DSN for ``provider`` on a sandbox served at ``base_url``."""
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        emulator = self.emulators[provider]
        return f"{provider}://{user}:{password}@{parts.netloc}{emulator.prefix}?scheme={parts.scheme}"


def create_sandbox(
    config: SandboxConfig | None = None,
    *,
    emulators: Sequence[type[Emulator]] | None = None,
    accounts: Sequence[Account] | None = None,
) -> Sandbox:
    """Build the sandbox ASGI app (nothing runs until it is served)."""
    config = config or SandboxConfig()
    engine = Engine(config)
    classes = list(emulators) if emulators is not None else all_emulators()
    sandbox = Sandbox(app=Starlette(), engine=engine, config=config)
    for cls in classes:
        copies = [Account(**{**asdict(a), "api_keys": set(a.api_keys)}) for a in (accounts or demo_accounts())]
        state = ProviderState(cls.name, config, copies)
        emulator = cls(state, engine)
        state.faults.rate_limit = cls.rate_limit
        sandbox.emulators[cls.name] = emulator

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await engine.close()

    routes: list[Any] = [*_control_routes(sandbox)]
    routes += [Mount(e.prefix, app=e.app()) for e in sandbox.emulators.values()]
    sandbox.app = Starlette(routes=routes, lifespan=lifespan)
    return sandbox


def _control_routes(sandbox: Sandbox) -> list[Route]:
    def emulator_of(request: Request) -> Emulator:
        name = request.path_params["provider"]
        if name not in sandbox.emulators:
            raise HTTPException(404, f"unknown provider {name!r} (known: {', '.join(sandbox.emulators)})")
        return sandbox.emulators[name]

    async def overview(request: Request) -> Response:
        return JSONResponse(
            {
                name: {
                    "prefix": e.prefix,
                    "accepted": len(e.state.messages),
                    "requests": e.state.requests,
                    "accounts": {a.username: str(a.points) for a in e.state.accounts.values()},
                }
                for name, e in sandbox.emulators.items()
            }
        )

    async def messages(request: Request) -> Response:
        emulator = emulator_of(request)
        to = request.query_params.get("to")
        rows = [m.as_json() for m in emulator.state.messages if to is None or m.recipient == to]
        return JSONResponse(rows)

    async def summary(request: Request) -> Response:
        state = emulator_of(request).state
        counts: dict[tuple[str, str], int] = {}
        for m in state.messages:
            key = (m.recipient, m.text)
            counts[key] = counts.get(key, 0) + 1
        by_state: dict[str, int] = {}
        for m in state.messages:
            by_state[m.state] = by_state.get(m.state, 0) + 1
        return JSONResponse(
            {
                "accepted": len(state.messages),
                "distinct": len(counts),
                "duplicates": sum(c - 1 for c in counts.values() if c > 1),
                "states": by_state,
                "lost": sum(1 for m in state.messages if m.lost),
                "callbacks": len(state.callbacks_sent),
                "replies": len(state.replies),
            }
        )

    async def faults(request: Request) -> Response:
        state = emulator_of(request).state
        if request.method == "POST":
            try:
                state.faults.update(await request.json())
            except (KeyError, ValueError, TypeError) as exc:
                return JSONResponse({"error": f"bad fault setting: {exc}"}, status_code=422)
        return JSONResponse(asdict(state.faults))

    async def account(request: Request) -> Response:
        state = emulator_of(request).state
        data = await request.json()
        try:
            existing = state.accounts.get(data["username"])
            values = {**(asdict(existing) if existing else {}), **data}
            values["points"] = Decimal(str(values.get("points", "1000")))
            values["api_keys"] = set(values.get("api_keys") or ())
            if values.get("allowed_ips") is not None:
                values["allowed_ips"] = set(values["allowed_ips"])
            created = state.add_account(Account(**values))
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad account: {exc}"}, status_code=422)
        return JSONResponse({"username": created.username, "points": str(created.points)})

    async def reply(request: Request) -> Response:
        """Simulate a handset replying: ``{"from": "0912…", "text": "…", "message_id": "…"}``."""
        emulator = emulator_of(request)
        data = await request.json()
        if not isinstance(data, dict) or not data.get("from") or "text" not in data:
            return JSONResponse({"error": 'expected {"from": "0912…", "text": "…"}'}, status_code=422)
        to_message = None
        if data.get("message_id"):
            found = emulator.state.find(str(data["message_id"]))
            sender_found = [m for m in found if m.recipient.endswith(str(data["from"])[-9:])]
            candidates = sender_found or found
            to_message = candidates[0] if candidates else None
        account = emulator.state.accounts.get(data.get("account") or (to_message.account if to_message else DEMO_USER))
        if account is None:
            return JSONResponse({"error": "unknown account"}, status_code=422)
        emulator.reply(str(data["from"]), str(data["text"]), to_message, account)
        return JSONResponse({"ok": True, "reply_to": to_message.message_id if to_message else None})

    async def config(request: Request) -> Response:
        data = await request.json()
        if "delivery_delay" in data:
            sandbox.config.delivery_delay = float(data["delivery_delay"])
        if "outcome_mix" in data:
            sandbox.config.outcome_mix = {str(k): float(v) for k, v in data["outcome_mix"].items()}
        return JSONResponse(
            {"delivery_delay": sandbox.config.delivery_delay, "outcome_mix": sandbox.config.outcome_mix}
        )

    async def reset(request: Request) -> Response:
        for e in sandbox.emulators.values():
            for message in e.state.messages:
                sandbox.engine.cancel(message.timer)  # no late callbacks from before the reset
            e.state.reset()
            e.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/_sandbox", overview),
        Route("/_sandbox/config", config, methods=["POST"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/{provider}/messages", messages),
        Route("/_sandbox/{provider}/summary", summary),
        Route("/_sandbox/{provider}/faults", faults, methods=["GET", "POST"]),
        Route("/_sandbox/{provider}/accounts", account, methods=["POST"]),
        Route("/_sandbox/{provider}/reply", reply, methods=["POST"]),
    ]
