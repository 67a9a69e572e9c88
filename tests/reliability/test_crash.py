"""Crash: kill -9 the gateway in the middle of a campaign, restart it, let it finish.

The sandbox's inspection API must show every message accepted exactly once, except those
left ``unknown`` (the request was in flight at the kill), which are never accepted twice,
never more than were in flight, and reported as ``unknown`` by the API.
(``make soak`` runs the long form: 10,000 messages and more kills.)
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from formosms.sandbox import SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.server import free_port
from tests.conftest import secret

MESSAGES = int(os.environ.get("FORMOSMS_CRASH_MESSAGES", "1500"))
KILLS = int(os.environ.get("FORMOSMS_CRASH_KILLS", "2"))
FINAL = {"delivered", "undeliverable", "expired", "rejected", "canceled", "failed", "unknown"}


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "formosms.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.1)


@pytest.mark.slow
def test_kill_dash_nine_mid_campaign(tmp_path: Path) -> None:
    sandbox = create_sandbox(SandboxConfig(seed=5, delivery_delay=0.1))
    with ServerThread(sandbox.app) as box:
        for name in sandbox.emulators:
            sandbox.state(name).faults.latency = 0.05  # keep requests in flight long enough to be killed
        port = free_port()
        config = tmp_path / "formosms.toml"
        config.write_text(
            "\n".join(
                [
                    "[gateway]",
                    f'database = "sqlite:///{tmp_path / "crash.db"}"',
                    f'public_url = "http://127.0.0.1:{port}"',
                    # longer than a live worker can hold a row in flight (timeout 5 s + pacing)
                    "stale_after = 12.0",
                    "",
                    "[providers.twsms]",
                    f'dsn = "{sandbox.dsn("twsms", box.url)}&timeout=5"',
                    "priority = 1",
                    "concurrency = 8",
                    "callback_grace = 3",  # callbacks lost while the gateway was dead get polled
                    "",
                ]
            ),
            encoding="utf-8",
        )
        env = {**os.environ, "FORMOSMS_CONFIG": str(config)}
        key = subprocess.run(
            [sys.executable, "-m", "formosms.cli", "keys", "create", "crash"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        secret(key)
        http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"})
        proc = serve(env, port)
        numbers = [f"09{50000000 + i:08d}" for i in range(MESSAGES)]
        ids: list[int] = []
        for i in range(0, MESSAGES, 250):
            reply = http.post("/v1/messages", json={"to": numbers[i : i + 250], "text": "crash test"})
            assert reply.status_code == 202
            ids += [m["id"] for m in reply.json()["messages"]]
        rng = random.Random(11)
        max_in_flight = 0
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.3, 1.2))
            accepted_so_far = len(sandbox.state("twsms").messages)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            max_in_flight += 8 * 50  # concurrency × rows per task: the most that can be sending
            assert accepted_so_far < MESSAGES, "the campaign finished before the kill: make it longer"
            proc = serve(env, port)
        try:
            deadline = time.monotonic() + 120
            while (final := _all_final(http, ids)) is None:
                if time.monotonic() > deadline:
                    states = Counter(r["status"] for r in _rows(http))
                    raise AssertionError(f"the campaign did not finish after the restarts: {states}")
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        from formosms.phone import normalize

        accepted = Counter(normalize(m.recipient) for m in sandbox.state("twsms").messages)
        assert max(accepted.values()) == 1, "a message was accepted twice"
        unknown = [r for r in final if r["status"] == "unknown"]
        delivered = [r for r in final if r["status"] == "delivered"]
        assert len(unknown) <= max_in_flight
        assert len(delivered) + len(unknown) == MESSAGES
        for row in delivered:
            assert accepted[row["to"]] == 1
        assert all(accepted.get(r["to"], 0) <= 1 for r in unknown)


def _all_final(http: httpx.Client, ids: list[int]) -> list[dict[str, object]] | None:
    rows = _rows(http)
    if len(rows) < len(ids) or any(r["status"] not in FINAL for r in rows):
        return None
    return rows


def _rows(http: httpx.Client) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 1000}
        if cursor is not None:
            params["cursor"] = cursor
        page = http.get("/v1/messages", params=params).json()
        rows += page["messages"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
