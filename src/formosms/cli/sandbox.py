"""``sandbox`` (the five emulators on one port), ``listen`` (print callbacks), ``demo``."""

from __future__ import annotations

import logging
import secrets
from typing import Annotated

import typer
import uvicorn

from formosms.cli.common import app, console, fail, settle_heap, table
from formosms.model import WebhookResult
from formosms.webhooks.events import WebhookEvent

Host = Annotated[str, typer.Option(help="Interface to listen on.")]


def _mix(value: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in value.split(","):
        name, _, weight = part.partition("=")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            fail(f"--mix {value!r}: expected delivered=0.9,undeliverable=0.1")
    return mix


@app.command()
def sandbox(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port for all five emulators.")] = 8765,
    seed: Annotated[int | None, typer.Option(help="Seed: the same seed gives the same ids and outcomes.")] = None,
    delivery_delay: Annotated[float, typer.Option(help="Seconds until a message reaches its final state.")] = 1.0,
    mix: Annotated[str, typer.Option(help="Final outcomes, e.g. delivered=0.9,undeliverable=0.05,expired=0.05")] = (
        "delivered=1"
    ),
    fail_rate: Annotated[float, typer.Option(help="Share of requests answered with HTTP 500.")] = 0.0,
    latency: Annotated[float, typer.Option(help="Seconds added to every answer.")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="No log line per request.")] = False,
    callback_workers: Annotated[
        int, typer.Option(help="Callbacks in flight at once (a real provider calls back from many connections).")
    ] = 32,
) -> None:
    """Run local emulators of SMSGo, TwSMS, SMS-Get, EVERY8D HTTP and SOAP."""
    from formosms.sandbox import DEMO_PASSWORD, DEMO_USER, SandboxConfig, create_sandbox

    if callback_workers < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--callback-workers")
    box = create_sandbox(
        SandboxConfig(
            seed=seed, delivery_delay=delivery_delay, outcome_mix=_mix(mix), callback_workers=callback_workers
        )
    )
    for emulator in box.emulators.values():
        emulator.state.faults.error_rate = fail_rate
        emulator.state.faults.latency = latency
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(message)s")
    base = f"http://{host}:{port}"
    console.print(f"[bold]formosms sandbox[/bold] on {base}  (account {DEMO_USER} / {DEMO_PASSWORD})")
    table(
        "providers",
        ["provider", "DSN (paste into --provider or FORMOSMS_PROVIDER)"],
        [(name, box.dsn(name, base)) for name in box.emulators],
    )
    console.print(f"inspection: {base}/_sandbox  ·  {base}/_sandbox/<provider>/messages")
    settle_heap()
    uvicorn.run(box.app, host=host, port=port, log_level="warning", access_log=False)


@app.command()
def listen(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to receive callbacks on.")] = 8700,
    secret: Annotated[str | None, typer.Option(help="Path secret (default: a random one).")] = None,
) -> None:
    """Print delivery reports and replies as providers call back."""
    from formosms.webhooks.asgi import asgi_app

    token = secret or secrets.token_urlsafe(18)

    def show(result: WebhookResult, events: list[WebhookEvent]) -> None:
        for event in events:
            if event.report is not None:
                r = event.report
                console.print(
                    f"[green]report[/green] {result.provider} {r.recipient} {r.message_id or r.batch_id} "
                    f"{r.status.value} ({r.provider_status}) {r.done_at or ''}  id={event.id}"
                )
            elif event.reply is not None:
                m = event.reply
                console.print(f"[cyan]reply[/cyan]  {result.provider} {m.sender}: {m.text!r} reply_to={m.reply_to}")
        if not events:
            console.print(f"[dim]{result.provider}: callback with no event (probe)[/dim]")

    console.print(f"listening on http://{host}:{port}; give providers these callback URLs:")
    for name in ("smsgo", "twsms", "smsget", "every8d", "every8d-soap"):
        console.print(f"  {name:13} http://{host}:{port}/{name}/{token}")
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(asgi_app(show, secret=token), host=host, port=port, log_level="warning", access_log=False)
