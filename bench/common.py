"""Shared benchmark plumbing: a sandbox in its own process, results as JSON, ratios printed.

Absolute times on the 2-core benchmark machine drift by ±25 %, so every benchmark compares
inside one run and reports ratios; the JSON keeps the raw figures too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
USER, PASSWORD = "demo", "demo-secret"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, what: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Poll ``url`` until it answers 200 (the server process started)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@contextmanager
def sandbox_process(delivery_delay: float = 0.2, latency: float = 0.0, callback_workers: int = 32) -> Iterator[str]:
    """``formosms sandbox`` in a child process (the other core); yields its base URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "formosms.cli",
        "sandbox",
        "--port",
        str(port),
        "--quiet",
        "--seed",
        "1",
        "--delivery-delay",
        str(delivery_delay),
        "--latency",
        str(latency),
        "--callback-workers",
        str(callback_workers),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url + "/_sandbox", "sandbox", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def dsn(provider: str, base: str) -> str:
    return f"{provider}://{USER}:{PASSWORD}@{base.removeprefix('http://')}/{provider}?scheme=http"


def control(base: str, method: str, path: str, **kw: Any) -> Any:
    reply = httpx.request(method, f"{base}/_sandbox{path}", timeout=60, **kw)
    reply.raise_for_status()
    return reply.json()


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **data}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"-> {path.relative_to(ROOT.parent)}")
    return path


def numbers(count: int, start: int = 10_000_000) -> list[str]:
    return [f"09{start + i:08d}" for i in range(count)]
