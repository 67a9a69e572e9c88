"""``serve``, ``worker``, ``migrate``, ``keys create``, ``campaign send``."""

from __future__ import annotations

import asyncio
import csv
import signal
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from formosms.cli.common import app, console, fail, settle_heap, table
from formosms.errors import FormosmsError

IN_FLIGHT = 3
Config = Annotated[Path | None, typer.Option("--config", "-c", help="formosms.toml (default ./formosms.toml)")]
keys_app = typer.Typer(help="API keys for the gateway.", no_args_is_help=True)
campaign_app = typer.Typer(help="Bulk sends through the gateway.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(campaign_app, name="campaign")


def _gateway(config: Path | None) -> Any:
    from formosms.gateway.config import load
    from formosms.gateway.runtime import open_gateway

    try:
        return open_gateway(load(config))
    except FormosmsError as exc:
        fail(str(exc))


@app.command()
def serve(
    config: Config = None,
    host: Annotated[str | None, typer.Option(help="Interface (default from config: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 8000).")] = None,
    workers: Annotated[bool, typer.Option(help="Run the sending workers in this process too.")] = True,
) -> None:
    """Run the gateway: REST API, webhook receivers and workers, in one process."""
    import uvicorn

    from formosms.gateway.api import create_app

    gateway = _gateway(config)
    settings = gateway.settings
    bind_host, bind_port = host or settings.host, port or settings.port
    console.print(f"formosms gateway on http://{bind_host}:{bind_port}  (database {gateway.store!r})")
    for name in gateway.router.providers:
        url = f"{settings.public_url or f'http://{bind_host}:{bind_port}'}/webhooks/{name}/{settings.webhook_secret}"
        console.print(f"  callbacks for {name}: {url}")
    if not gateway.router.providers:
        console.print("[yellow]no provider: add one to formosms.toml or FORMOSMS_PROVIDERS_<NAME>_DSN[/yellow]")
    application = create_app(settings, gateway.store, gateway.router, with_workers=workers)
    settle_heap()
    uvicorn.run(application, host=bind_host, port=bind_port, log_level="warning", access_log=False)


@app.command()
def worker(config: Config = None) -> None:
    """Run sending workers only (several may share one PostgreSQL database)."""
    from formosms.gateway.worker import Worker

    gateway = _gateway(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runner = Worker(gateway.settings, gateway.store, gateway.router)
        console.print(f"{runner.id} working on {gateway.store!r}")
        settle_heap()
        await runner.run(stop)

    asyncio.run(main())


@app.command()
def migrate(config: Config = None) -> None:
    """Create or upgrade the database schema in place."""
    from formosms.gateway.config import load
    from formosms.gateway.store import Store

    settings = load(config)
    store = Store(settings.database)
    applied = store.migrate()
    console.print(f"schema version {store.version()}" + (f" (applied {applied})" if applied else " (up to date)"))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for.")] = "default", config: Config = None
) -> None:
    """Create an API key (shown once; only its hash is stored)."""
    gateway = _gateway(config)
    token = gateway.store.create_api_key(name)
    console.print(token, highlight=False, soft_wrap=True)


@campaign_app.command("send")
def campaign_send(
    file: Annotated[Path, typer.Argument(help="CSV with a header; one row per recipient.")],
    text: Annotated[str, typer.Option("--text", "-t", help="Template, e.g. '{name} 您好，…'")],
    url: Annotated[str, typer.Option(envvar="FORMOSMS_API_URL", help="Gateway URL.")] = "http://127.0.0.1:8000",
    key: Annotated[str, typer.Option(envvar="FORMOSMS_API_KEY", help="API key.")] = "",
    column: Annotated[str, typer.Option(help="The column holding the phone number.")] = "phone",
    batch: Annotated[int, typer.Option(help="Rows per API request.")] = 1000,
    provider: Annotated[str | None, typer.Option(help="Force one provider.")] = None,
) -> None:
    """Personalized bulk send through the gateway, streaming the file."""
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not key:
        fail("no API key: pass --key or set FORMOSMS_API_KEY")
    if not file.exists():
        fail(f"{file}: no such file")
    total = sum(1 for _ in file.open(encoding="utf-8-sig")) - 1
    accepted = rejected = 0
    errors: list[tuple[int, str]] = []
    started = time.perf_counter()
    with (
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        file.open(encoding="utf-8-sig", newline="") as handle,
        Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as bar,
    ):
        task = bar.add_task("sending", total=max(total, 0))
        reader = csv.DictReader(handle)
        if column not in (reader.fieldnames or []):
            fail(f"{file}: no column {column!r} (columns: {', '.join(reader.fieldnames or [])})")
        chunk: list[dict[str, str]] = []
        line = 1
        # a few requests in flight: reading and formatting overlap the gateway's work,
        # and at most ``IN_FLIGHT`` chunks are held in memory
        pool = ThreadPoolExecutor(max_workers=IN_FLIGHT)
        pending: deque[tuple[Future[tuple[int, int]], int]] = deque()

        def settle(limit: int) -> None:
            nonlocal accepted, rejected
            while len(pending) > limit:
                future, size = pending.popleft()
                a, r = future.result()
                accepted, rejected = accepted + a, rejected + r
                bar.advance(task, size)

        for row in reader:
            line += 1
            try:
                rendered = text.format_map(row)
            except (KeyError, ValueError) as exc:
                errors.append((line, f"template: {exc}"))
                rejected += 1
                bar.advance(task)
                continue
            chunk.append({"to": row[column], "text": rendered})
            if len(chunk) >= batch:
                pending.append((pool.submit(_post, http, chunk, provider, errors, line), len(chunk)))
                settle(IN_FLIGHT)
                chunk = []
        if chunk:
            pending.append((pool.submit(_post, http, chunk, provider, errors, line), len(chunk)))
        settle(0)
        pool.shutdown()
    elapsed = time.perf_counter() - started
    table(
        "campaign",
        ["rows", "accepted", "rejected", "seconds", "rows/s"],
        [(total, accepted, rejected, f"{elapsed:.1f}", f"{(accepted + rejected) / max(elapsed, 1e-9):.0f}")],
    )
    for where, reason in errors[:10]:
        console.print(f"[red]{where}[/red]: {reason}")
    if rejected:
        raise typer.Exit(1)


def _post(
    http: Any, chunk: list[dict[str, str]], provider: str | None, errors: list[tuple[int, str]], line: int
) -> tuple[int, int]:
    """Send one chunk; a chunk with a bad row is retried without it, so good rows still go."""
    pending = list(chunk)
    while pending:
        body: dict[str, Any] = {"messages": pending}
        if provider:
            body["provider"] = provider
        reply = http.post("/v1/messages", json=body)
        if reply.status_code == 202:
            return len(pending), len(chunk) - len(pending)
        if reply.status_code != 422:
            fail(f"gateway answered HTTP {reply.status_code}: {reply.text[:200]}")
        detail = reply.json().get("detail")
        loc = detail[0].get("loc", []) if isinstance(detail, list) and detail else []
        if len(loc) >= 3 and loc[1] == "messages" and isinstance(loc[2], int):
            bad = pending.pop(loc[2])
            errors.append((line, f"{bad['to']}: {detail[0].get('msg')}"))
            continue
        fail(f"gateway refused the batch: {detail}")
    return 0, len(chunk)
