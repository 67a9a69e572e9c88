"""The database handle: engine, transactions, migrations (SQLite WAL or PostgreSQL).

The durable outbox: SQLite (WAL) embedded by default, PostgreSQL for several nodes.

Every method is one transaction. The hot paths are batched: ``enqueue`` writes a whole
submission, ``claim`` takes up to N rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)
through the partial index of waiting rows, ``record`` writes a batch of send outcomes,
``ingest`` a batch of callbacks. A status never moves backwards.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError

from formosms.gateway import schema
from formosms.gateway.schema import messages, notifications

FINAL = frozenset({"delivered", "undeliverable", "expired", "rejected", "canceled", "failed"})
RANK = {"queued": 0, "scheduled": 0, "claimed": 0, "sending": 1, "unknown": 2, "submitted": 3}
PUBLIC_STATUS = {"claimed": "queued"}


def rank(status: str) -> int:
    return 4 if status in FINAL else RANK.get(status, 0)


class WriteLock:
    """SQLite's single writer, handed to urgent waiters first: transactions a client is
    waiting on (an API submission, a provider's callback) before the workers' own.

    Submissions waited behind the workers' claims and records for most of their latency
    (p50 47 ms at 500 requests/s), and callbacks acked later meant fewer per second from
    a provider with a fixed number in flight (1,450 → 1,750/s, bench/gateway_e2e.py). The
    workers wait instead; group commits (gateway/group.py) keep the urgent turns few."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent = 0

    def acquire(self, urgent: bool = False) -> None:
        with self._cond:
            self._urgent += urgent
            try:
                while self._held or (self._urgent and not urgent):
                    self._cond.wait()
                self._held = True
            finally:
                self._urgent -= urgent

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()


class StoreUnavailable(Exception):
    """The database cannot take the write (disk full, server down): answer 503."""


@dataclass
class NewMessage:
    recipient: str
    text: str
    schedule_at: float | None = None
    validity: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    provider: str | None = None
    at_least_once: bool = False


@dataclass
class Outcome:
    """What a worker learned about one claimed row."""

    id: int
    status: str  # submitted | queued (retry) | unknown | failed | sending
    provider: str | None = None
    provider_message_id: str | None = None
    batch_id: str | None = None
    record_no: str | None = None
    provider_status: str | None = None
    error: str | None = None
    cost: Decimal | None = None
    next_attempt_at: float | None = None
    refused_by: str | None = None  # a definite refusal: do not try this provider again


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Database:
    """Connection handling shared by the store's parts."""

    def __init__(self, url: str, *, pool_size: int = 10):
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = url
        self.dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        if self.dialect == "sqlite":
            self.engine: Engine = create_engine(
                # pooled: opening a connection (and its pragmas) per transaction cost more than
                # the transaction itself (measured: bench/gateway_e2e.py profile)
                url,
                pool_size=8,
                max_overflow=8,
                connect_args={"timeout": 30, "check_same_thread": False},
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        # SQLite has one writer: serialize our own writes instead of spinning on busy locks
        self._write_lock = WriteLock() if self.dialect == "sqlite" else None

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def tx(self, *, urgent: bool = False) -> Iterator[Connection]:
        """One write transaction. ``urgent`` ones (a client waits on them) go first on
        SQLite when several wait for its single writer."""
        lock = self._write_lock
        if lock is not None:
            lock.acquire(urgent)
        try:
            with self.engine.connect() as conn:
                if lock is not None:  # SQLite: take the write lock at BEGIN (see _sqlite_begin)
                    conn.execution_options(formosms_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig)[:200]) from exc
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreUnavailable(str(exc.orig)[:200]) from exc

    def _many(self, conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """``executemany`` through the driver (``?`` placeholders, JSON already dumped):
        SQLAlchemy's per-row parameter processing cost more than the statements on the
        callback path (bench/gateway_e2e.py profile)."""
        if rows:
            conn.exec_driver_sql(sql.replace("?", "%s") if self.dialect == "postgresql" else sql, list(rows))

    def _add_events(self, conn: Connection, history: Sequence[Mapping[str, Any]]) -> None:
        """Append transitions to ``events`` (keys ``message_id``, ``at``, ``status`` and,
        optionally, ``provider``, ``provider_status``, ``detail``)."""
        self._many(
            conn,
            "INSERT INTO events (message_id, at, status, provider, provider_status, detail) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (h["message_id"], h["at"], h["status"], h.get("provider"), h.get("provider_status"), h.get("detail"))
                for h in history
            ],
        )

    def _insert(self, table: Table) -> PgInsert | SqliteInsert:
        """The dialect's INSERT (for ``on_conflict_do_nothing``: several nodes may race)."""
        return pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)

    # -- schema ---------------------------------------------------------------------------
    def migrate(self) -> list[int]:
        with self.tx() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(4711)"))  # one migrator at a time
            return schema.migrate(conn)

    def version(self) -> int:
        with self.read() as conn:
            return schema.current_version(conn)

    # -- notifications, written in the same transaction as the change they announce --
    def _notify(self, conn: Connection, ids: Sequence[int], now: float) -> None:
        rows = conn.execute(
            select(
                messages.c.id,
                messages.c.status,
                messages.c.recipient,
                messages.c.provider,
                messages.c.provider_status,
                messages.c.metadata,
                messages.c.callback_url,
            ).where(messages.c.id.in_(list(ids)), messages.c.callback_url.is_not(None))
        ).all()
        if rows:
            conn.execute(
                notifications.insert(),
                [
                    {
                        "message_id": r.id,
                        "url": r.callback_url,
                        "payload": {
                            "type": "message.status",
                            "id": r.id,
                            "status": PUBLIC_STATUS.get(r.status, r.status),
                            "recipient": r.recipient,
                            "provider": r.provider,
                            "provider_status": r.provider_status,
                            "metadata": r.metadata,
                            "at": now,
                        },
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for r in rows
                ],
            )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # the driver would BEGIN only before the first write, so a transaction's reads could
    # see another process's changes between them; _sqlite_begin emits BEGIN itself
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writes BEGIN IMMEDIATE (the write lock up front: a read-then-write transaction is
    atomic across processes); reads BEGIN (one consistent snapshot)."""
    write = conn.get_execution_options().get("formosms_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
