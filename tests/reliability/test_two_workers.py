"""Two ``formosms worker`` processes on one PostgreSQL outbox: every message sent exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from formosms.phone import normalize
from formosms.sandbox import SandboxConfig, ServerThread, create_sandbox
from formosms.sandbox.server import free_port
from tests.conftest import secret
from tests.reliability.test_database import PG, _fresh_database

MESSAGES = 1200


@pytest.mark.slow
def test_two_worker_processes_share_one_outbox(tmp_path: Path) -> None:
    database = _fresh_database("formosms_two_workers")
    if database is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG} and CI is set")
        pytest.skip(f"PostgreSQL is not reachable at {PG}")
    sandbox = create_sandbox(SandboxConfig(seed=9, delivery_delay=0.1))
    with ServerThread(sandbox.app) as box:
        sandbox.state("every8d").faults.latency = 0.02
        port = free_port()
        config = tmp_path / "formosms.toml"
        config.write_text(
            "\n".join(
                [
                    "[gateway]",
                    f'database = "{database}"',
                    f'public_url = "http://127.0.0.1:{port}"',
                    "claim_batch = 100",
                    "",
                    "[providers.every8d]",
                    f'dsn = "{sandbox.dsn("every8d", box.url)}"',
                    "concurrency = 4",
                    "callback_grace = 5",  # a callback lost under load is polled, as in production
                    "",
                ]
            ),
            encoding="utf-8",
        )
        env = {**os.environ, "FORMOSMS_CONFIG": str(config)}
        cli = [sys.executable, "-m", "formosms.cli"]
        subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True)
        key = secret(
            subprocess.run(
                [*cli, "keys", "create", "two"], env=env, check=True, capture_output=True, text=True
            ).stdout.split()[-1]
        )
        api = subprocess.Popen(
            [*cli, "serve", "--port", str(port), "--no-workers"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        workers: list[subprocess.Popen[bytes]] = []
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "the API did not start"
                time.sleep(0.1)
            http = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"})
            numbers = [f"09{40000000 + i:08d}" for i in range(MESSAGES)]
            for i in range(0, MESSAGES, 200):  # queued before any worker runs: both find work
                assert (
                    http.post("/v1/messages", json={"to": numbers[i : i + 200], "text": "two workers"}).status_code
                    == 202
                )
            workers = [
                subprocess.Popen([*cli, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(2)
            ]
            engine = sqlalchemy.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
            deadline = time.monotonic() + 180
            while True:
                with engine.connect() as conn:
                    states = dict(
                        conn.execute(sqlalchemy.text("SELECT status, count(*) FROM messages GROUP BY status")).all()
                    )
                if states.get("delivered", 0) == MESSAGES:
                    break
                assert time.monotonic() < deadline, states
                time.sleep(0.5)
            with engine.connect() as conn:
                by_worker = conn.execute(sqlalchemy.text("SELECT count(DISTINCT claimed_by) FROM messages")).scalar()
            engine.dispose()
        finally:
            for proc in [api, *workers]:
                proc.terminate()
            for proc in [api, *workers]:
                proc.wait(timeout=20)
        accepted = Counter(normalize(m.recipient) for m in sandbox.state("every8d").messages)
        assert len(accepted) == MESSAGES and max(accepted.values()) == 1, "a message was sent twice"
        assert by_worker == 2, "both worker processes should have claimed work"
