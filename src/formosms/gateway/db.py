"""The database handle: engine, transactions, migrations (SQLite WAL or PostgreSQL).

The durable outbox: SQLite (WAL) embedded by default, PostgreSQL for several nodes.

Every method is one transaction. The hot paths are batched: ``enqueue`` writes a whole
submission, ``claim`` takes up to N rows with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL)
through the partial index of waiting rows, ``record`` writes a batch of send outcomes,
``ingest`` a batch of callbacks. A status never moves backwards.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
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
    text,
)
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DisconnectionError, OperationalError

from formosms.gateway import schema
from formosms.gateway.schema import notifications

FINAL = frozenset({"delivered", "undeliverable", "expired", "rejected", "canceled", "failed"})
RANK = {"queued": 0, "scheduled": 0, "claimed": 0, "sending": 1, "unknown": 2, "submitted": 3}
PUBLIC_STATUS = {"claimed": "queued"}


#: the columns the store's queries filter on, per table (``Database.refresh_statistics``)
PLANNED_ON: Mapping[str, Sequence[str]] = {
    "messages": (
        "id", "status", "provider", "provider_message_id", "batch_id", "record_no", "recipient",
        "next_attempt_at", "schedule_at", "updated_at",
    ),
    "events": ("message_id",),
    "inbox": ("event_id", "provider", "applied"),
}  # fmt: skip


def rank(status: str) -> int:
    return 4 if status in FINAL else RANK.get(status, 0)


class WriteLock:
    """SQLite's single writer, handed to urgent waiters first: transactions a client is
    waiting on (an API submission, a provider's callback) before the workers' own.

    Submissions waited behind the workers' claims and records for most of their latency
    (p50 47 ms at 500 requests/s), and callbacks acked later meant fewer per second from
    a provider with a fixed number in flight (1,450 → 1,750/s, bench/gateway_e2e.py). The
    workers wait instead; group commits (gateway/group.py) keep the urgent turns few.

    With ``path``, the lock also holds an ``flock`` on that file, so writers in other
    processes (``formosms worker`` beside ``formosms serve``) queue in the kernel and wake
    the moment it is free. Without it they met at SQLite's busy handler, which sleeps
    1, 2, 5, 10… ms between tries: a worker's claim then held the writer 25 ms for
    2 ms of work (bench/gateway_e2e.py --workers 1)."""

    def __init__(self, path: str | None = None) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent = 0
        self._path = path
        self._fd: int | None = None

    def acquire(self, urgent: bool = False) -> None:
        with self._cond:
            self._urgent += urgent
            try:
                while self._held or (self._urgent and not urgent):
                    self._cond.wait()
                self._held = True
            finally:
                self._urgent -= urgent
        if self._path is not None:
            try:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits without the GIL
            except BaseException:
                self._release_local()
                raise

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._release_local()

    def _release_local(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StoreUnavailable(Exception):
    """The database cannot take the write (disk full, server down): answer 503."""


@contextmanager
def _translated() -> Iterator[None]:
    """The one place a driver's ``OperationalError`` becomes ``StoreUnavailable``."""
    try:
        yield
    except OperationalError as exc:
        raise StoreUnavailable(str(exc.orig)[:200]) from exc


def json_column(value: Any, empty: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """A JSON column as read through the driver: text on SQLite (mostly ``[]`` or
    ``{}``), already decoded on PostgreSQL."""
    if value is None:
        return empty()
    if isinstance(value, str):
        return empty() if value in ("[]", "{}") else json.loads(value)
    return value


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
            self.engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
            event.listen(self.engine, "checkin", _note_idle)
            event.listen(self.engine, "checkout", _ping_if_idle)
        # SQLite has one writer: serialize our own writes instead of spinning on busy locks
        self._write_lock: WriteLock | None = None
        if self.dialect == "sqlite":
            database = self.engine.url.database or ""
            on_disk = database not in ("", ":memory:") and not database.startswith("file:")
            self._write_lock = WriteLock(database + "-writer" if on_disk else None)

    def close(self) -> None:
        self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @contextmanager
    def tx(self, *, urgent: bool = False) -> Iterator[Connection]:
        """One write transaction. ``urgent`` ones (a client waits on them) go first on
        SQLite when several wait for its single writer."""
        lock = self._write_lock
        if lock is not None:
            try:
                lock.acquire(urgent)
            except OSError as exc:  # the lock file beside the database: no directory, no space
                raise StoreUnavailable(f"cannot take the write lock: {exc.strerror}") from exc
        try:
            with _translated(), self.engine.connect() as conn:
                if lock is not None:  # SQLite: take the write lock at BEGIN (see _sqlite_begin)
                    conn.execution_options(formosms_write=True)
                with conn.begin():
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def single(self) -> Iterator[Connection]:
        """A write that is one statement. On PostgreSQL the statement commits by itself: no
        BEGIN and COMMIT round trips, each of which waited for the server to be scheduled
        on a busy machine (API p99, bench/gateway_e2e.py --postgres). On SQLite, ``tx``."""
        if self.dialect != "postgresql":
            with self.tx() as conn:
                yield conn
            return
        with _translated(), self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with _translated(), self.engine.connect() as conn:
            yield conn

    def _rows(self, conn: Connection, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement through the driver (``?`` placeholders), its rows as tuples: for
        the hot paths, where building and compiling the statement in SQLAlchemy each time
        cost more than running it (bench/gateway_e2e.py profile)."""
        return [tuple(r) for r in conn.exec_driver_sql(self._sql(sql), tuple(params))]

    def _exists(self, sql: str, params: Sequence[Any]) -> bool:
        """Whether a read (``?`` placeholders) finds a row: the periodic jobs look before
        they take the writer, which on SQLite they otherwise took several times a second
        for nothing, between the callbacks' commits (bench/gateway_e2e.py profile)."""
        with self.read() as conn:
            return bool(self._rows(conn, sql + " LIMIT 1", params))

    def _in(self, values: Sequence[Any], sql_type: str = "text") -> tuple[str, list[Any]]:
        """``column <this>`` for membership in ``values``, and its parameters: one array of
        the column's type on PostgreSQL (one statement text whatever the count, prepared
        once by the driver), a ``?`` list on SQLite."""
        if self.dialect == "postgresql":
            return f"= ANY(CAST(%b AS {sql_type}[]))", [list(values)]
        return f"IN ({', '.join('?' * len(values))})", list(values)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgresql" else sql

    def _bulk(
        self,
        conn: Connection,
        sqlite: str,
        postgres: str,
        rows: Sequence[tuple[Any, ...]],
        columns: Sequence[tuple[str, str]],
    ) -> None:
        """Many rows in one go: the driver's ``executemany`` on SQLite; on PostgreSQL one
        statement over one array per column, where ``{rows}`` in ``postgres`` becomes
        ``unnest(...) AS v(<columns>)``. psycopg's ``executemany`` sent a bind and an
        execute per row, and the server sat idle in the transaction waiting for them
        (``pg_stat_activity`` during bench/gateway_e2e.py --postgres)."""
        if not rows:
            return
        if self.dialect != "postgresql":
            conn.exec_driver_sql(sqlite, list(rows))
            return
        # %b: arrays go in binary; as text, quoting each element took psycopg a regex
        # substitution per value, more than the server's work (bench/store_ops.py profile)
        arrays = ", ".join(f"CAST(%b AS {sql_type}[])" for _, sql_type in columns)
        names = ", ".join(name for name, _ in columns)
        sql = self._sql(postgres).replace("{rows}", f"unnest({arrays}) AS v({names})")
        conn.exec_driver_sql(sql, tuple(list(column) for column in zip(*rows, strict=True)))

    def _add_events(self, conn: Connection, history: Sequence[Mapping[str, Any]]) -> None:
        """Append transitions to ``events`` (keys ``message_id``, ``at``, ``status`` and,
        optionally, ``provider``, ``provider_status``, ``detail``)."""
        self._bulk(
            conn,
            "INSERT INTO events (message_id, at, status, provider, provider_status, detail) VALUES (?, ?, ?, ?, ?, ?)",
            "INSERT INTO events (message_id, at, status, provider, provider_status, detail) SELECT * FROM {rows}",
            [
                (h["message_id"], h["at"], h["status"], h.get("provider"), h.get("provider_status"), h.get("detail"))
                for h in history
            ],
            _EVENT_COLUMNS,
        )

    def _insert(self, table: Table) -> PgInsert | SqliteInsert:
        """The dialect's INSERT (for ``on_conflict_do_nothing``: several nodes may race)."""
        return pg_insert(table) if self.dialect == "postgresql" else sqlite_insert(table)

    def refresh_statistics(self, tables: Mapping[str, Sequence[str]] = PLANNED_ON) -> list[str]:
        """``ANALYZE`` the tables that grew past twice the rows the planner knows of (at
        least 1,000 rows), on the columns queries filter on; returns their names.
        PostgreSQL only (SQLite plans without them); one process at a time.

        Autovacuum wakes once a minute. Until then a young outbox taking a campaign is
        planned with the statistics of an empty table: a status index looked cheaper than
        the primary key, and marking 200 rows read 60,000 dead index entries (37 ms,
        bench/gateway_e2e.py --postgres with auto_explain). Only growth is followed here:
        analyzing every time a fifth of the rows changed took a quarter of the server's
        time during a campaign (pg_stat_statements), and the whole rows cost twice the
        filtered columns. Autovacuum still analyzes whole tables as they turn over."""
        if self.dialect != "postgresql":
            return []
        with self.engine.connect() as conn, conn.begin():
            # several workers share a database: one of them analyzes, the others go on
            lock = "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.analyze'))"
            if not conn.execute(text(lock)).scalar():
                return []
            stale = [
                str(name)
                for name, live, known in conn.execute(
                    text(
                        "SELECT s.relname, s.n_live_tup, c.reltuples FROM pg_stat_user_tables s "
                        "JOIN pg_class c ON c.oid = s.relid "
                        "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)"
                    ),
                    {"tables": list(tables)},
                )
                if live >= 1000 and live > 2 * max(known, 0)
            ]
            for name in stale:
                conn.execute(text(f'ANALYZE "{name}" ({", ".join(tables[name])})'))
        return stale

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
        if not ids:
            return
        member, params = self._in(ids, "bigint")
        rows = self._rows(
            conn,
            "SELECT id, status, recipient, provider, provider_status, metadata, callback_url FROM messages "
            f"WHERE id {member} AND callback_url IS NOT NULL",
            params,
        )
        if rows:
            conn.execute(
                notifications.insert(),
                [
                    {
                        "message_id": mid,
                        "url": url,
                        "payload": {
                            "type": "message.status",
                            "id": mid,
                            "status": PUBLIC_STATUS.get(status, status),
                            "recipient": recipient,
                            "provider": provider,
                            "provider_status": provider_status,
                            "metadata": json_column(meta, dict),
                            "at": now,
                        },
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for mid, status, recipient, provider, provider_status, meta, url in rows
                ],
            )


_EVENT_COLUMNS = (
    ("message_id", "bigint"),
    ("at", "float8"),
    ("status", "text"),
    ("provider", "text"),
    ("provider_status", "text"),
    ("detail", "text"),
)


#: a pooled PostgreSQL connection idle longer than this is pinged before use
IDLE_PING_SECONDS = 10.0


def _note_idle(_dbapi_connection: Any, record: Any) -> None:
    record.info["formosms_idle_since"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat idle in the pool (the server may have restarted or a
    firewall dropped it); a dead one is replaced before anyone uses it. Not on every
    checkout: a ping is a round trip, and under load it made the API's commits slower
    (median 2.9-3.7 ms with it, 1.5-2.2 ms without; bench/gateway_e2e.py --postgres,
    latency phase). A connection that breaks while in use fails its transaction
    (``StoreUnavailable``), and SQLAlchemy then replaces every connection the pool held
    before the failure."""
    since = record.info.get("formosms_idle_since")
    if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()
    except Exception as exc:  # the driver's own error for a dead connection
        raise DisconnectionError(str(exc)[:200]) from exc


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
