"""Database faults: PostgreSQL restarted mid-run (workers reconnect, nothing lost), and
SQLite out of space (the API answers 503 and accepts nothing it cannot store)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy

from tests.gateway_e2e.conftest import start

PG = os.environ.get("FORMOSMS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _fresh_database(name: str) -> str | None:
    url = PG.replace("postgresql://", "postgresql+psycopg://")
    try:
        admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if conn.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
                conn.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    except sqlalchemy.exc.OperationalError:
        return None
    return PG.rsplit("/", 1)[0] + "/" + name


def _restart_postgres() -> bool:
    if not shutil.which("pg_ctlcluster") or not Path("/etc/postgresql").exists():
        return False
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0


@pytest.mark.slow
def test_postgres_restart_during_a_run(tmp_path: Path) -> None:
    database = _fresh_database("formosms_restart")
    if database is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG} and CI is set")
        pytest.skip(f"PostgreSQL is not reachable at {PG}")
    for gw in start(tmp_path, providers=["every8d"], database=database):
        gw.box("POST", "/every8d/faults", json={"latency": 0.05})
        first = gw.post({"to": [f"09{70000000 + i:08d}" for i in range(300)], "text": "before restart"})
        assert first.status_code == 202
        if not _restart_postgres():
            if os.environ.get("CI"):
                pytest.fail("could not restart PostgreSQL (pg_ctlcluster)")
            pytest.skip("pg_ctlcluster is not available here")
        second = None
        deadline = time.monotonic() + 30
        while second is None or second.status_code != 202:  # the API answers 503 until PG is back
            assert time.monotonic() < deadline, "the API did not recover after the restart"
            try:
                second = gw.post({"to": [f"09{71000000 + i:08d}" for i in range(100)], "text": "after restart"})
            except httpx.HTTPError:
                second = None
            if second is not None and second.status_code != 202:
                assert second.status_code == 503, second.text
                time.sleep(0.5)
        ids = [m["id"] for m in first.json()["messages"]] + [m["id"] for m in second.json()["messages"]]
        rows = gw.wait(ids, timeout=90)
        statuses = Counter(r["status"] for r in rows)
        assert statuses["delivered"] + statuses["unknown"] == len(ids), statuses
        accepted = Counter(m["recipient"] for m in gw.box("GET", "/every8d/messages"))
        assert len(accepted) >= statuses["delivered"], (statuses, len(accepted))
        assert max(accepted.values()) == 1


def test_sqlite_out_of_space_answers_503_and_stores_nothing(tmp_path: Path) -> None:
    for gw in start(tmp_path, providers=["every8d"]):
        ok = gw.post({"to": "0912345678", "text": "fits"})
        assert ok.status_code == 202
        before = len(gw.http.get("/v1/messages").json()["messages"])
        engine = gw.gateway.store.engine

        @sqlalchemy.event.listens_for(engine, "connect")
        def tiny(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from now on
            cursor.close()

        engine.dispose()
        big = gw.post({"to": [f"09{80000000 + i:08d}" for i in range(2000)], "text": "x" * 500})
        assert big.status_code == 503
        sqlalchemy.event.remove(engine, "connect", tiny)
        engine.dispose()
        assert len(gw.http.get("/v1/messages").json()["messages"]) == before
