"""``formosms demo``: the gateway on SQLite with the sandbox as its five providers.

What ``make run`` shows a newcomer: an API key, a curl line that works, messages sent
through every provider, callbacks coming back, and each message's final state.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from formosms.cli.common import app, console, fail, table


def _wait_final(http: httpx.Client, ids: list[int], timeout: float) -> list[dict[str, Any]]:
    final = {"delivered", "undeliverable", "expired", "rejected", "canceled", "failed", "unknown"}
    deadline = time.monotonic() + timeout
    while True:
        rows = [http.get(f"/v1/messages/{i}").json() for i in ids]
        if all(r["status"] in final for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


@app.command()
def demo(
    database: Annotated[Path, typer.Option(help="SQLite file for the demo (recreated).")] = Path("formosms-demo.db"),
    serve: Annotated[bool, typer.Option(help="Keep the gateway and sandbox running afterwards.")] = False,
    to: Annotated[str, typer.Option(help="Recipient for the demo messages.")] = "0912-345-678",
) -> None:
    """Start the sandbox and the gateway, send through every provider, show final states."""
    from formosms.gateway.api import create_app
    from formosms.gateway.config import ProviderSettings, Settings
    from formosms.gateway.runtime import open_gateway
    from formosms.sandbox import DEMO_USER, SandboxConfig, ServerThread, create_sandbox
    from formosms.sandbox.server import free_port

    for suffix in ("", "-wal", "-shm"):
        Path(str(database) + suffix).unlink(missing_ok=True)
    box = create_sandbox(SandboxConfig(seed=7, delivery_delay=0.5))
    sandbox_server = ServerThread(box.app).start()
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    names = list(box.emulators)
    settings = Settings(
        database=f"sqlite:///{database}",
        public_url=gateway_url,
        port=port,
        providers={
            name: ProviderSettings(name=name, dsn=box.dsn(name, sandbox_server.url), priority=i + 1)
            for i, name in enumerate(names)
        },
    )
    gateway = open_gateway(settings)
    secret = settings.webhook_secret
    for name in ("smsget", "every8d-soap"):  # these providers take callback URLs in their web console
        hook = f"{gateway_url}/webhooks/{name}/{secret}"
        httpx.post(
            f"{sandbox_server.url}/_sandbox/{name}/accounts",
            json={"username": DEMO_USER, "callback_url": hook, "reply_callback_url": hook},
        ).raise_for_status()
    api_server = ServerThread(create_app(settings, gateway.store, gateway.router, with_workers=True), port=port)
    api_server.start()
    key = gateway.store.create_api_key("demo")
    console.print(f"[bold]gateway[/bold] {gateway_url}  (SQLite {database}, sandbox {sandbox_server.url})")
    console.print(f"[bold]API key[/bold] {key}", highlight=False)
    console.print(
        f"try:  curl -s -X POST {gateway_url}/v1/messages -H 'Authorization: Bearer {key}' "
        f'-H \'Content-Type: application/json\' -d \'{{"to": "0912345678", "text": "哈囉 formosms"}}\'',
        highlight=False,
        soft_wrap=True,
    )
    with httpx.Client(base_url=gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        ids: list[int] = []
        for name in names:
            reply = http.post(
                "/v1/messages", json={"to": to, "text": f"formosms demo via {name} 您好", "provider": name}
            )
            reply.raise_for_status()
            ids += [m["id"] for m in reply.json()["messages"]]
        bulk = http.post(
            "/v1/messages",
            json={"to": ["0922-333-444", "0933-123-456", "+8613681912700"], "text": "群發 bulk"},
        )
        if bulk.status_code != 202:
            fail(f"the gateway refused the demo bulk send: {bulk.text[:200]}")
        ids += [m["id"] for m in bulk.json()["messages"]]
        later = http.post(
            "/v1/messages",
            json={"to": to, "text": "scheduled, then canceled", "schedule_at": "2099-01-01T09:00:00+08:00"},
        )
        later.raise_for_status()
        canceled_id = later.json()["messages"][0]["id"]
        http.delete(f"/v1/messages/{canceled_id}").raise_for_status()
        rows = _wait_final(http, [*ids, canceled_id], timeout=15)
        table(
            "messages through the gateway",
            ["id", "to", "provider", "status", "provider status", "events"],
            [
                (
                    r["id"],
                    r["to"],
                    r["provider"] or "-",
                    r["status"],
                    r["provider_status"] or "-",
                    len(r["events"]),
                )
                for r in rows
            ],
        )
        providers = http.get("/v1/providers").json()["providers"]
        table(
            "providers",
            ["name", "balance", "circuit", "status tracking"],
            [(p["name"], p["balance"], p["circuit"], p["status_tracking"]) for p in providers],
        )
    if serve:
        console.print("serving; Ctrl-C to stop")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    api_server.stop()
    sandbox_server.stop()
