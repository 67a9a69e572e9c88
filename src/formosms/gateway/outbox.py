"""Submissions and the worker side of the outbox: enqueue, claim, record, recover."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from formosms.gateway.db import FINAL, Database, NewMessage, Outcome, json_column
from formosms.gateway.schema import events, idempotency, messages


@dataclass
class Submission:
    """One ``POST /v1/messages``: its rows, and the idempotency record to complete."""

    items: Sequence[NewMessage]
    idempotency_key: tuple[int, str] | None = None
    response: Any = None  # the answer to store, or a callable taking the ids


def _row(m: NewMessage, submission: str, now: float) -> dict[str, Any]:
    return {
        "submission": submission,
        "recipient": m.recipient,
        "text": m.text,
        "status": "scheduled" if m.schedule_at and m.schedule_at > now else "queued",
        "requested_provider": m.provider,
        "tried": [],
        "next_attempt_at": now,
        "schedule_at": m.schedule_at,
        "validity": m.validity,
        "options": m.options,
        "metadata": m.metadata,
        "callback_url": m.callback_url,
        "at_least_once": m.at_least_once,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


_ROW_COLUMNS = tuple(_row(NewMessage("", ""), "", 0.0))


class Outbox(Database):
    # -- submissions ----------------------------------------------------------------------
    def enqueue(
        self,
        items: Sequence[NewMessage],
        *,
        idempotency_key: tuple[int, str] | None = None,
        response: Any = None,
    ) -> list[int]:
        """Insert a submission (and its first events) in one transaction; returns row ids.

        With ``idempotency_key``, the stored answer is written in the same transaction, so
        a crash can never leave messages without their idempotency record or the reverse.
        ``response`` may be a callable taking the ids.
        """
        return self.enqueue_many([Submission(items, idempotency_key, response)])[0]

    def enqueue_many(self, submissions: Sequence[Submission]) -> list[list[int]]:
        """Several submissions in one transaction (the API's group commit): all or none.
        Returns each submission's row ids."""
        prepared = self._prepare_submissions(submissions)
        if not prepared[0]:
            return [[] for _ in submissions]
        # the rows and their events are one statement on PostgreSQL; a stored idempotent
        # answer is a second one, and takes a transaction
        if self.dialect == "postgresql" and all(s.idempotency_key is None for s in submissions):
            with self.single() as conn:
                return self._enqueue_in(conn, submissions, prepared)
        with self.tx(urgent=True) as conn:
            return self._enqueue_in(conn, submissions, prepared)

    def _prepare_submissions(
        self, submissions: Sequence[Submission]
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]], float]:
        """The rows, and on SQLite their parameters, built before the write lock is taken."""
        now = time.time()
        rows: list[dict[str, Any]] = []
        for sub in submissions:
            token = secrets.token_hex(8)
            rows += [_row(m, token, now) for m in sub.items]
        return rows, _sqlite_values(rows) if self.dialect == "sqlite" and rows else [], now

    def _enqueue_in(
        self,
        conn: Connection,
        submissions: Sequence[Submission],
        prepared: tuple[list[dict[str, Any]], list[tuple[Any, ...]], float],
    ) -> list[list[int]]:
        rows, values, now = prepared
        if not rows:
            return [[] for _ in submissions]
        if self.dialect == "postgresql":
            ids = _insert_postgres(conn, rows, now)  # with their events
        else:
            ids = _insert_sqlite(conn, rows, values)
            self._add_events(
                conn, [{"message_id": i, "at": now, "status": row["status"]} for i, row in zip(ids, rows, strict=True)]
            )
        out, start = [], 0
        for sub in submissions:
            mine = ids[start : start + len(sub.items)]
            start += len(sub.items)
            out.append(mine)
            if sub.idempotency_key is not None:
                body = sub.response(mine) if callable(sub.response) else sub.response
                conn.execute(
                    update(idempotency)
                    .where(
                        idempotency.c.api_key_id == sub.idempotency_key[0],
                        idempotency.c.key == sub.idempotency_key[1],
                    )
                    .values(response=body, status_code=202)
                )
        return out

    def get(self, message_id: int) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
            if row is None:
                return None
            history = conn.execute(
                select(events).where(events.c.message_id == message_id).order_by(events.c.id)
            ).mappings()
            return {**row, "events": [dict(e) for e in history]}

    def search(
        self,
        *,
        status: str | None = None,
        recipient: str | None = None,
        since: float | None = None,
        until: float | None = None,
        metadata: dict[str, str] | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        query = select(messages).order_by(messages.c.id.desc()).limit(limit)
        if status:
            query = query.where(messages.c.status.in_(["queued", "claimed"] if status == "queued" else [status]))
        if recipient:
            query = query.where(messages.c.recipient == recipient)
        if since is not None:
            query = query.where(messages.c.created_at >= since)
        if until is not None:
            query = query.where(messages.c.created_at < until)
        if after is not None:
            query = query.where(messages.c.id < after)
        for key, value in (metadata or {}).items():
            query = query.where(messages.c.metadata[key].as_string() == value)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def cancel(self, message_id: int) -> str | None:
        """Cancel while queued or scheduled. Returns the status the message had (None: no
        such id): it was canceled by this call exactly when that is queued or scheduled,
        so a second cancel is told ``canceled`` and can answer "already canceled"."""
        now = time.time()
        with self.tx() as conn:
            current = conn.execute(
                select(messages.c.status).where(messages.c.id == message_id).with_for_update()
            ).scalar()
            if current in ("queued", "scheduled"):
                conn.execute(
                    update(messages)
                    .where(messages.c.id == message_id)
                    .values(status="canceled", updated_at=now, final_at=now)
                )
                conn.execute(events.insert().values(message_id=message_id, at=now, status="canceled"))
                self._notify(conn, [message_id], now)
        return None if current is None else str(current)

    # -- worker side ----------------------------------------------------------------------
    def release_scheduled(self, now: float | None = None) -> int:
        now = now or time.time()
        if not self._exists("SELECT 1 FROM messages WHERE status = 'scheduled' AND schedule_at <= ?", [now]):
            return 0
        with self.tx() as conn:
            due = conn.execute(
                update(messages)
                .where(messages.c.status == "scheduled", messages.c.schedule_at <= now)
                .values(status="queued", next_attempt_at=now, updated_at=now)
                .returning(messages.c.id)
            ).all()
            if due:
                conn.execute(events.insert(), [{"message_id": r[0], "at": now, "status": "queued"} for r in due])
        return len(due)

    def claim(self, worker: str, limit: int = 100, now: float | None = None) -> list[dict[str, Any]]:
        """Take up to ``limit`` rows ready to send (``queued`` → ``claimed``), in id order,
        with the columns a worker sends from (``CLAIMED``)."""
        now = now or time.time()
        skip = " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""
        with self.single() as conn:
            rows = self._rows(
                conn,
                "UPDATE messages SET status = 'claimed', claimed_by = ?, claimed_at = ?, attempts = attempts + 1, "
                "updated_at = ? WHERE id IN (SELECT id FROM messages WHERE status = 'queued' AND next_attempt_at <= ? "
                f"ORDER BY next_attempt_at, id LIMIT ?{skip}) RETURNING {', '.join(CLAIMED)}",
                (worker, now, now, now, limit),
            )
        # decoded after the commit: on SQLite the write lock is everyone's
        claimed = [dict(zip(CLAIMED, row, strict=True)) for row in sorted(rows)]
        for row in claimed:
            row["tried"] = json_column(row["tried"], list)
            row["options"] = json_column(row["options"], dict)
            row["at_least_once"] = bool(row["at_least_once"])
        return claimed

    def mark_sending(
        self, ids: Sequence[int], provider: str, record_no: str | None = None, *, worker: str | None = None
    ) -> list[int]:
        """The request is about to leave: from now on a crash leaves these ``unknown``.

        Returns the ids marked: with ``worker``, only rows that worker still holds (a claim
        that waited longer than ``recover``'s ``stale_after`` may have gone to another
        worker, which sends it instead). ``claimed_at`` restarts: ``recover`` counts a
        request's time in flight from here, not from the claim.
        """
        now = time.time()
        member, params = self._in(list(ids), "bigint")
        by_worker = ""
        if worker is not None:
            by_worker = " AND claimed_by = ?"
            params.append(worker)
        mark = (
            "UPDATE messages SET status = 'sending', provider = ?, record_no = ?, claimed_at = ?, "
            f"updated_at = ? WHERE id {member} AND status = 'claimed'{by_worker} RETURNING id"
        )
        params = [provider, record_no, now, now, *params]
        if self.dialect == "postgresql":  # the rows and their events: one statement
            with self.single() as conn:
                rows = self._rows(
                    conn,
                    f"WITH m AS ({mark}) INSERT INTO events (message_id, at, status, provider) "
                    "SELECT id, ?, 'sending', ? FROM m RETURNING message_id",
                    [*params, now, provider],
                )
            return sorted(int(r[0]) for r in rows)
        with self.tx() as conn:
            marked = [int(r[0]) for r in self._rows(conn, mark, params)]
            self._add_events(
                conn, [{"message_id": i, "at": now, "status": "sending", "provider": provider} for i in marked]
            )
        return sorted(marked)

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write a batch of send outcomes.

        A row a callback already moved on (the provider answered faster than we committed)
        keeps its status; it still gets the provider's ids, cost and the refused provider.
        """
        if not outcomes:
            return
        now = time.time()
        with self.tx() as conn:
            member, params = self._in([o.id for o in outcomes], "bigint")
            lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
            current = {
                int(i): (str(status), json_column(tried, list), error, bool(notify))
                # locked (PostgreSQL): a callback committing between this read and the
                # update below would otherwise be overwritten by the older "submitted"
                for i, status, tried, error, notify in self._rows(
                    conn,
                    "SELECT id, status, tried, error, callback_url IS NOT NULL FROM messages "
                    f"WHERE id {member} ORDER BY id{lock}",
                    params,
                )
            }
            changes: list[tuple[Any, ...]] = []  # in _RECORD_COLUMNS order
            history: list[dict[str, Any]] = []
            told: list[int] = []  # moved on, with a callback_url to tell
            for o in outcomes:
                if o.id not in current:
                    continue
                status, tried, error, has_callback = current[o.id]
                in_flight = status in ("claimed", "sending")
                new_status = o.status if in_flight else status
                changes.append(
                    (
                        new_status,
                        o.provider,
                        o.provider_message_id,
                        o.batch_id,
                        o.record_no,
                        o.provider_status if in_flight else None,
                        o.error if in_flight else error,  # no stale error on a settled row
                        None if o.cost is None else float(o.cost),  # SQLite's driver binds no Decimal
                        o.next_attempt_at or now,
                        now if new_status in FINAL and in_flight else None,
                        _dumps([*tried, o.refused_by] if o.refused_by else tried),
                        now,
                        o.id,
                    )
                )
                if in_flight:
                    if has_callback:
                        told.append(o.id)
                    history.append(
                        {
                            "message_id": o.id,
                            "at": now,
                            "status": o.status,
                            "provider": o.provider,
                            "provider_status": o.provider_status,
                            "detail": o.error,
                        }
                    )
            self._bulk(conn, _RECORD_SQLITE, _RECORD_PG, changes, _RECORD_COLUMNS)
            self._add_events(conn, history)
            self._notify(conn, told, now)

    def recover(self, stale_after: float = 60.0, now: float | None = None) -> tuple[int, int]:
        """After a crash: ``claimed`` rows go back to the queue (never left); ``sending``
        rows become ``unknown`` (they may have left) — or are queued again for callers who
        asked for at-least-once. Returns (requeued, unknown)."""
        now = now or time.time()
        cutoff = now - stale_after
        with self.tx() as conn:
            requeued = conn.execute(
                update(messages)
                .where(messages.c.status == "claimed", messages.c.claimed_at < cutoff)
                .values(status="queued", next_attempt_at=now, updated_at=now)
                .returning(messages.c.id)
            ).all()
            lost = conn.execute(
                update(messages)
                .where(messages.c.status == "sending", messages.c.claimed_at < cutoff)
                .values(status="unknown", error="worker stopped while the request was in flight", updated_at=now)
                .returning(messages.c.id, messages.c.at_least_once)
            ).all()
            again = [r[0] for r in lost if r[1]]
            if again:
                conn.execute(
                    update(messages).where(messages.c.id.in_(again)).values(status="queued", next_attempt_at=now)
                )
            history = [{"message_id": r[0], "at": now, "status": "queued"} for r in requeued]
            history += [{"message_id": r[0], "at": now, "status": "unknown", "detail": "worker crash"} for r in lost]
            history += [{"message_id": i, "at": now, "status": "queued", "detail": "at-least-once"} for i in again]
            if history:
                conn.execute(events.insert(), history)
            unknown = [int(r[0]) for r in lost if not r[1]]
            if unknown:
                self._notify(conn, unknown, now)
        return len(requeued), len(lost)

    def due_for_polling(self, providers: Sequence[str], older_than: float, limit: int = 500) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [
                dict(r)
                for r in conn.execute(
                    select(messages)
                    .where(
                        messages.c.status == "submitted",
                        messages.c.provider.in_(list(providers)),
                        messages.c.updated_at < older_than,
                    )
                    .order_by(messages.c.updated_at)
                    .limit(limit)
                ).mappings()
            ]

    def touch(self, ids: Sequence[int]) -> None:
        with self.tx() as conn:
            conn.execute(update(messages).where(messages.c.id.in_(list(ids))).values(updated_at=time.time()))


_JSON_COLUMNS = frozenset({"tried", "options", "metadata"})

#: what ``claim`` returns of each row: what routing and sending read
CLAIMED = (
    "id",
    "recipient",
    "text",
    "status",
    "requested_provider",
    "tried",
    "error",
    "attempts",
    "validity",
    "options",
    "at_least_once",
    "claimed_by",
)


def _dumps(value: Any) -> str:
    """JSON text for a column; most are empty, and ``json.dumps`` per row was a third of
    a 1,000-row submission's time."""
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return json.dumps(value)


def _sqlite_values(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(_dumps(row[c]) if c in _JSON_COLUMNS else row[c] for c in _ROW_COLUMNS) for row in rows]


def _insert_sqlite(conn: Connection, rows: list[dict[str, Any]], values: list[tuple[Any, ...]]) -> list[int]:
    """The submission's rows through the driver's ``executemany``: SQLAlchemy's per-row
    parameter processing was two thirds of the API's time on a 1,000-row campaign batch
    (bench/memory.py profile). ``tx`` holds SQLite's write lock (``BEGIN IMMEDIATE``),
    so the new rowids are consecutive and end at ``last_insert_rowid()``."""
    placeholders = ", ".join("?" * len(_ROW_COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO messages ({', '.join(_ROW_COLUMNS)}) VALUES ({placeholders})", values)
    last = int(conn.exec_driver_sql("SELECT last_insert_rowid()").scalar_one())
    return list(range(last - len(rows) + 1, last + 1))


_RECORD_SQLITE = """
    UPDATE messages SET status = ?, provider = coalesce(?, provider),
        provider_message_id = coalesce(?, provider_message_id), batch_id = coalesce(?, batch_id),
        record_no = coalesce(?, record_no), provider_status = coalesce(?, provider_status), error = ?,
        cost = coalesce(?, cost), next_attempt_at = ?, final_at = coalesce(?, final_at), tried = ?, updated_at = ?
    WHERE id = ?
"""


_ENQUEUE_PG = """
    WITH m AS (INSERT INTO messages (submission, recipient, text, status, requested_provider, tried, next_attempt_at,
        schedule_at, validity, options, metadata, callback_url, at_least_once, attempts, created_at, updated_at)
    SELECT u.submission, u.recipient, u.text, u.status, u.requested, '[]', %(now)s, u.schedule_at, u.validity,
        CAST(u.options AS json), CAST(u.metadata AS json), u.callback_url, u.at_least_once, 0, %(now)s, %(now)s
    FROM unnest(
        CAST(%(submission)b AS text[]), CAST(%(recipient)b AS text[]), CAST(%(text)b AS text[]),
        CAST(%(status)b AS text[]), CAST(%(requested)b AS text[]),
        CAST(%(schedule_at)b AS float8[]), CAST(%(validity)b AS integer[]), CAST(%(options)b AS text[]),
        CAST(%(metadata)b AS text[]), CAST(%(callback_url)b AS text[]), CAST(%(at_least_once)b AS boolean[])
    ) WITH ORDINALITY AS u(submission, recipient, text, status, requested, schedule_at, validity, options, metadata,
        callback_url, at_least_once, n)
    ORDER BY u.n
    RETURNING id, status)
    INSERT INTO events (message_id, at, status) SELECT id, %(now)s, status FROM m
    RETURNING message_id
    """


def _insert_postgres(conn: Connection, rows: list[dict[str, Any]], now: float) -> list[int]:
    """The submission as one constant statement over arrays (``insertmanyvalues`` built
    and converted a new statement per batch: half the API's time, bench --postgres). The
    sequence numbers rows in the ``ORDER BY`` order, so sorted ids line up with ``rows``."""
    column = {key: [row[key] for row in rows] for key in rows[0]}
    params: dict[str, Any] = {
        "submission": column["submission"],
        "now": now,
        "recipient": column["recipient"],
        "text": column["text"],
        "status": column["status"],
        "requested": column["requested_provider"],
        "schedule_at": column["schedule_at"],
        "validity": column["validity"],
        "options": [_dumps(v or {}) for v in column["options"]],
        "metadata": [_dumps(v or {}) for v in column["metadata"]],
        "callback_url": column["callback_url"],
        "at_least_once": column["at_least_once"],
    }
    return sorted(int(r[0]) for r in conn.exec_driver_sql(_ENQUEUE_PG, params))


#: the same update on PostgreSQL, one statement over arrays (``Database._bulk``): a
#: ``VALUES`` list was compiled anew per batch and took half the worker's time
#: (bench/gateway_e2e.py --postgres profile)
_RECORD_PG = """
    UPDATE messages AS m SET
        status = v.status,
        provider = coalesce(v.provider, m.provider),
        provider_message_id = coalesce(v.pmid, m.provider_message_id),
        batch_id = coalesce(v.batch, m.batch_id),
        record_no = coalesce(v.record, m.record_no),
        provider_status = coalesce(v.pstatus, m.provider_status),
        error = v.error,
        cost = coalesce(v.cost, m.cost),
        next_attempt_at = v.next,
        final_at = coalesce(v.final, m.final_at),
        tried = CAST(v.tried AS json),
        updated_at = v.updated_at
    FROM {rows}
    WHERE m.id = v.id
    """
_RECORD_COLUMNS = (
    ("status", "text"),
    ("provider", "text"),
    ("pmid", "text"),
    ("batch", "text"),
    ("record", "text"),
    ("pstatus", "text"),
    ("error", "text"),
    ("cost", "numeric"),
    ("next", "float8"),
    ("final", "float8"),
    ("tried", "text"),
    ("updated_at", "float8"),
    ("id", "bigint"),
)
