"""The outbox schema (SQLAlchemy Core) and its migrations, for SQLite and PostgreSQL.

One row per recipient in ``messages``; every transition appended to ``events``;
``inbox`` keeps every provider callback once (by event id), applied or waiting for the
send it refers to; ``notifications`` is the outbox towards the user's app.

Migrations are numbered functions run in order inside one transaction each; the
database remembers its version in ``schema_version``. A new column is a new function.
Because ``_v1`` creates the tables as this module defines them today, a later migration
must check before it alters (a fresh database already has the new column from ``_v1``):
use ``inspect(conn).get_columns(...)`` and add only what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    inspect,
    text,
)

metadata = MetaData()
ID = BigInteger().with_variant(Integer, "sqlite")  # SQLite's rowid alias needs INTEGER

#: internal statuses; ``claimed`` is shown as ``queued`` (the request has not left)
WAITING = "queued"

messages = Table(
    "messages",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("submission", String(40), nullable=False),  # one POST /v1/messages
    Column("recipient", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider", String(40)),  # the provider that took it (or the one tried last)
    Column("requested_provider", String(40)),
    Column("tried", JSON, nullable=False, default=list),  # providers that refused definitively
    Column("provider_message_id", String(64)),
    Column("batch_id", String(64)),
    Column("record_no", String(40)),
    Column("provider_status", String(64)),
    Column("error", Text),
    Column("cost", Numeric(12, 2)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("schedule_at", Float),
    Column("validity", Integer),
    Column("options", JSON, nullable=False, default=dict),  # features and provider options
    Column("metadata", JSON, nullable=False, default=dict),
    Column("callback_url", Text),
    Column("at_least_once", Boolean, nullable=False, default=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("final_at", Float),
)


def _partial(name: str, *columns: Column[Any], where: ColumnElement[bool]) -> Index:
    """An index of the rows ``where`` holds for, on both databases."""
    return Index(name, *columns, postgresql_where=where, sqlite_where=where)


# The provider's keys are unknown until a send is recorded: these indexes hold only rows
# that have them (v6), so a queued, claimed or sending row adds no entry to them. On
# PostgreSQL every status change writes a new row version with an entry in each index
# (status is indexed: no HOT update) (bench/gateway_e2e.py --postgres, pg_stat_statements).
ix_messages_provider_ids = _partial(
    "ix_messages_provider_ids",
    messages.c.provider,
    messages.c.provider_message_id,
    where=messages.c.provider_message_id.is_not(None),
)
# batch and recipient, without the provider in front: with the provider leading, a planner
# with stale statistics (a young table) read every row of the provider through another
# index to find one batch (20 ms per callback batch; v4, bench/gateway_e2e.py --postgres)
ix_messages_batch = _partial(
    "ix_messages_batch_recipient", messages.c.batch_id, messages.c.recipient, where=messages.c.batch_id.is_not(None)
)
ix_messages_record = _partial(
    "ix_messages_record", messages.c.record_no, messages.c.recipient, where=messages.c.record_no.is_not(None)
)
# the overdue-callback poll asks each provider every second for its oldest ``submitted``
# rows: through the status index it read every submitted row (7 ms a call under load, v6)
ix_messages_submitted = _partial(
    "ix_messages_submitted", messages.c.provider, messages.c.updated_at, where=messages.c.status == "submitted"
)
Index("ix_messages_recipient", messages.c.recipient, messages.c.id)
Index("ix_messages_status_id", messages.c.status, messages.c.id)
# The claim scans only rows waiting to be sent: a partial index, so claimed and finished
# rows never slow it down (a composite (status, id) index makes PostgreSQL rescan them).
_partial("ix_messages_ready", messages.c.next_attempt_at, messages.c.id, where=messages.c.status == WAITING)
_partial("ix_messages_scheduled", messages.c.schedule_at, where=messages.c.status == "scheduled")

events = Table(
    "events",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    # no foreign key (v5): events are written only by the transaction that changed their
    # message; on PostgreSQL the per-row check was a third of the insert and took a KEY
    # SHARE lock on the message row that record()'s FOR UPDATE then waited for
    Column("message_id", ID, nullable=False),
    Column("at", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider", String(40)),
    Column("provider_status", String(64)),
    Column("detail", Text),
)
Index("ix_events_message", events.c.message_id, events.c.id)

inbox = Table(
    "inbox",
    metadata,
    Column("event_id", String(64), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("kind", String(8), nullable=False),  # report | reply
    Column("received_at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("applied", Boolean, nullable=False, default=False),
    Column("message_id", ID),
)
_partial("ix_inbox_pending", inbox.c.provider, where=~inbox.c.applied)

replies = Table(
    "replies",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), unique=True, nullable=False),
    Column("provider", String(40), nullable=False),
    Column("sender", String(20), nullable=False),
    Column("text", Text, nullable=False),
    Column("received_at", Float),
    Column("reply_to", String(64)),
    Column("message_id", ID),
    Column("created_at", Float, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("api_key_id", Integer, primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", JSON),  # NULL while the first request is in flight
    Column("status_code", Integer),
    Column("created_at", Float, nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("message_id", ID),
    Column("url", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Float, nullable=False),
    Column("delivered_at", Float),
    Column("last_error", Text),
)
_partial("ix_notifications_due", notifications.c.next_attempt_at, where=notifications.c.delivered_at.is_(None))

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("provider", String(40), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

kv = Table(
    "kv",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))


def _v1(conn: Connection) -> None:
    tables = [messages, events, inbox, replies, idempotency, notifications, api_keys, rate_limits]
    metadata.create_all(conn, tables=[t for t in tables if t.name != "rate_limits"])


def _v2(conn: Connection) -> None:
    # v2: shared rate limits (token buckets every gateway node takes from)
    rate_limits.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    # v3: gateway-wide settings kept in the database (the webhook path secret)
    kv.create(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    # v4: reports are matched by (batch, recipient) whatever the provider (checked on the
    # rows found), so a batch lookup cannot turn into a scan of the provider's rows
    conn.execute(text("DROP INDEX IF EXISTS ix_messages_batch"))
    ix_messages_batch.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    # v5: events without a foreign key to messages (see the table). SQLite cannot drop a
    # constraint in place, and its check is an index lookup: kept there on older files.
    if conn.dialect.name == "postgresql":
        for key in inspect(conn).get_foreign_keys("events"):
            if key.get("name"):
                conn.execute(text(f'ALTER TABLE events DROP CONSTRAINT IF EXISTS "{key["name"]}"'))


def _v6(conn: Connection) -> None:
    # v6: the provider-key indexes only for rows that have the key; an index for the poll
    for index in (ix_messages_provider_ids, ix_messages_batch, ix_messages_record):
        conn.execute(text(f"DROP INDEX IF EXISTS {index.name}"))
        index.create(conn)
    ix_messages_submitted.create(conn, checkfirst=True)


MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5, _v6]
LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    row = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
    return int(row or 0)


def migrate(conn: Connection, target: int = LATEST) -> list[int]:
    """Apply the missing migrations up to ``target``; returns the versions applied."""
    schema_version.create(conn, checkfirst=True)
    applied = []
    for version in range(current_version(conn) + 1, target + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute(schema_version.insert().values(version=version))
        applied.append(version)
    return applied
