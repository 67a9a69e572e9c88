"""Fixtures for the gateway: stores on SQLite and PostgreSQL, providers, routers.

PostgreSQL tests use ``FORMOSMS_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432/test``)
and run each test in a fresh schema, dropped afterwards. Where no server answers they
skip with the reason, unless ``CI`` is set: then they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

# the provider modules register themselves on import (the DSN registry needs them)
import formosms.providers.smsget
import formosms.providers.twsms  # noqa: F401
from formosms.gateway.config import ProviderSettings, RouteSettings, Settings
from formosms.gateway.routing import Candidate, CircuitBreaker, Router
from formosms.gateway.store import Store
from formosms.providers.base import Provider
from tests.conftest import secret

PG_URL = os.environ.get("FORMOSMS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
# the suite-wide log scan (tests/conftest.py) fails the run if any of these is ever logged
WEBHOOK_SECRET = secret("s3cret-path-0123456789")
TW_PASSWORD = secret("tw-password-9f3a")
SG_PASSWORD = secret("sg-password-7c1e")

_pg_error: str | None = None
_pg_checked = False


def pg_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (None when it can); asked once per run."""
    global _pg_checked, _pg_error
    if not _pg_checked:
        _pg_checked = True
        try:
            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            _pg_error = f"PostgreSQL at {PG_URL} is not reachable: {str(exc).strip()[:200]}"
    return _pg_error


def require_pg() -> None:
    reason = pg_unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: PostgreSQL tests must run)")
    pytest.skip(reason)


StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_pg()
    return str(request.param)


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL on a fresh schema (``search_path`` through libpq ``options``), dropped after."""
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}', safe='')}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty database: a tmp SQLite file, or a fresh PG schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'gateway.db'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def pg_store() -> Iterator[Store]:
    """A migrated store on PostgreSQL only (for what only PostgreSQL does)."""
    require_pg()
    with pg_schema() as url:
        store = Store(url)
        try:
            store.migrate()
            yield store
        finally:
            store.close()


@pytest.fixture
def make_store(db_url: str) -> Iterator[StoreFactory]:
    """``make_store(migrate=True)``: stores on the test's database, closed at the end."""
    opened: list[Store] = []

    def make(migrate: bool = True) -> Store:
        store = Store(db_url)
        opened.append(store)
        if migrate:
            store.migrate()
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: StoreFactory) -> Store:
    """A migrated store, on SQLite and on PostgreSQL."""
    return make_store()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store (for tests that are not about storage)."""
    store = Store(f"sqlite:///{tmp_path / 'gateway.db'}")
    store.migrate()
    yield store
    store.close()


def candidate(name: str, dsn: str, **values: object) -> Candidate:
    settings = ProviderSettings(name=name, dsn=dsn, **values)  # type: ignore[arg-type]
    return Candidate(settings, settings.build(), CircuitBreaker())


def fake_candidate(name: str, provider: Provider, **values: object) -> Candidate:
    settings = ProviderSettings(name=name, dsn=f"{provider.name}://x:y@", **values)  # type: ignore[arg-type]
    return Candidate(settings, provider, CircuitBreaker())


def settings_for(*candidates: Candidate, routes: list[RouteSettings] | None = None, **values: object) -> Settings:
    settings = Settings(database="sqlite://", webhook_secret=WEBHOOK_SECRET, **values)  # type: ignore[arg-type]
    settings.providers = {c.settings.name: c.settings for c in candidates}
    settings.routes = list(routes or [])
    return settings


@pytest.fixture
def two_providers() -> tuple[Router, Settings]:
    """TwSMS ("tw", priority 1) and SMS-Get ("sg", priority 2)."""
    tw = candidate("tw", f"twsms://user:{TW_PASSWORD}@", priority=1)
    sg = candidate("sg", f"smsget://user:{SG_PASSWORD}@", priority=2)
    return Router([tw, sg]), settings_for(tw, sg)
