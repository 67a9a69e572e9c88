"""Callbacks into the store: each event kept once, applied to its message, never backwards.

A report can arrive before the worker recorded the send it is about (the provider is
faster than our commit): it stays in ``inbox`` unapplied and ``apply_pending`` applies it
once ``record`` has written the provider's ids.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, select

from formosms.gateway.db import FINAL, Database, rank
from formosms.gateway.schema import inbox, messages, replies
from formosms.model import DeliveryReport, InboundMessage, Status
from formosms.webhooks.events import WebhookEvent


class Inbox(Database):
    def ingest(self, provider: str, batch: Sequence[WebhookEvent], notify_url: str | None = None) -> int:
        """Store a batch of callback events for the gateway provider ``provider``.

        Returns how many were new. Duplicates (the same event id) change nothing. The batch
        is set-based: one insert for the inbox rows, one read of the messages they refer to,
        one update per kind of write, whatever the batch size.
        """
        if not batch:
            return 0
        with self.tx(urgent=True) as conn:  # a provider waits on this for its ack
            return self._ingest_in(conn, provider, batch, notify_url)

    def _ingest_in(self, conn: Connection, provider: str, batch: Sequence[WebhookEvent], notify_url: str | None) -> int:
        """``ingest``'s work inside the caller's transaction."""
        now = time.time()
        unique = list({event.id: event for event in batch}.values())
        # the ones already stored, then the rest, applied and stored with the message
        # they matched; on PostgreSQL a concurrent duplicate is skipped by ON CONFLICT
        # and its report applied twice, which changes nothing (ranks)
        member, params = self._in([e.id for e in unique])
        known = {str(r[0]) for r in self._rows(conn, f"SELECT event_id FROM inbox WHERE event_id {member}", params)}
        fresh = [e for e in unique if e.id not in known]
        reports = [(e.id, e.report) for e in fresh if e.report is not None]
        applied: dict[str, int | None] = dict(self._apply_reports(conn, provider, reports, now))
        for e in fresh:
            if e.reply is not None:
                applied[e.id] = self._store_reply(conn, provider, e.id, e.reply, now, notify_url)
        self._bulk(
            conn,
            "INSERT INTO inbox (event_id, provider, kind, received_at, payload, applied, message_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
            "INSERT INTO inbox (event_id, provider, kind, received_at, payload, applied, message_id) "
            "SELECT event_id, provider, kind, received_at, CAST(payload AS json), applied, message_id FROM {rows} "
            "ON CONFLICT (event_id) DO NOTHING",
            [(e.id, provider, e.kind, now, json.dumps(_payload(e)), e.id in applied, applied.get(e.id)) for e in fresh],
            _INBOX_COLUMNS,
        )
        return len(fresh)

    def apply_pending(self, provider: str, max_age: float = 3600.0) -> int:
        """Apply reports that arrived before their send was recorded.

        Only reports younger than ``max_age`` seconds are tried again: one that matched no
        message for that long never will (another system's message, an unknown id), and
        every worker retries these twice a second.
        """
        now = time.time()
        if not self._exists(
            "SELECT 1 FROM inbox WHERE provider = ? AND applied = ? AND kind = 'report' AND received_at > ?",
            [provider, False, now - max_age],
        ):
            return 0
        with self.tx() as conn:
            pending = conn.execute(
                select(inbox.c.event_id, inbox.c.payload)
                .where(
                    inbox.c.provider == provider,
                    ~inbox.c.applied,
                    inbox.c.kind == "report",
                    inbox.c.received_at > now - max_age,
                )
                .order_by(inbox.c.received_at)
            ).all()
            if not pending:
                return 0
            applied = self._apply_reports(conn, provider, [(e, _report(p)) for e, p in pending], now)
            self._mark_applied(conn, applied)
        return len(applied)

    def replies_since(self, after: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(replies).order_by(replies.c.id.desc()).limit(limit)
        if after is not None:
            query = query.where(replies.c.id < after)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- internals --------------------------------------------------------------------------
    def _apply_reports(
        self, conn: Connection, provider: str, reports: Sequence[tuple[str, DeliveryReport]], now: float
    ) -> dict[str, int]:
        """Apply reports in order; returns ``{event_id: message id}`` for those that matched."""
        if not reports:
            return {}
        found = _Matches(self._candidates(conn, provider, [r for _, r in reports]))
        matched: dict[str, int] = {}
        updates: dict[int, tuple[Any, ...]] = {}  # the last state of each changed row
        history: list[dict[str, Any]] = []
        for event_id, report in reports:
            rows = found.match(report)
            if not rows:
                continue
            matched[event_id] = rows[0]["id"]
            new = report.status.value
            for row in rows:
                status = row["status"]
                if report.status is Status.UNKNOWN or status in FINAL or rank(new) <= rank(status):
                    continue  # a final state never moves; an older report never overrides a newer one
                if status in ("claimed", "sending", "queued", "scheduled") and rank(new) < 3:
                    continue
                row["status"] = new
                if not row["provider_message_id"] and report.message_id:
                    row["provider_message_id"] = report.message_id
                    found.add_pmid(row, report.message_id)
                if report.batch_id:
                    row["batch_id"] = report.batch_id
                final = now if new in FINAL else None
                pmid, batch = row["provider_message_id"], row["batch_id"]
                updates[row["id"]] = (new, report.provider_status, now, final, pmid, batch, row["id"])
                history.append(
                    {
                        "message_id": row["id"],
                        "at": now,
                        "status": new,
                        "provider": provider,
                        "provider_status": report.provider_status,
                        "detail": report.done_at.isoformat() if report.done_at else None,
                    }
                )
        if updates:
            self._bulk(
                conn,
                "UPDATE messages SET status = ?, provider_status = ?, updated_at = ?, final_at = ?, "
                "provider_message_id = ?, batch_id = ? WHERE id = ?",
                "UPDATE messages AS m SET status = v.status, provider_status = v.provider_status, "
                "updated_at = v.updated_at, final_at = v.final_at, provider_message_id = v.pmid, batch_id = v.batch "
                "FROM {rows} WHERE m.id = v.id",
                list(updates.values()),
                _REPORT_COLUMNS,
            )
            self._add_events(conn, history)
            # only rows with a callback_url have someone to tell (a read saved per batch)
            self._notify(conn, [i for i in updates if found.notify(i)], now)
        return matched

    def _candidates(self, conn: Connection, provider: str, reports: Sequence[DeliveryReport]) -> list[dict[str, Any]]:
        """Every message of ``provider`` a report could refer to, locked (PostgreSQL) in id
        order: a send being recorded meanwhile waits instead of overwriting the report."""
        branches: list[str] = []
        params: list[Any] = []
        # each key with the recipients it was named with: a list provider's batch id (also
        # EVERY8D's message id) covers up to 1,000 rows, and a callback is about one of them
        named_by = (
            ("provider_message_id", [(r.message_id, r.recipient) for r in reports if r.message_id]),
            ("batch_id", [(r.batch_id, r.recipient) for r in reports if r.batch_id]),
            ("record_no", [(r.record_no, r.recipient) for r in reports if r.record_no]),
        )
        for column, values in named_by:
            named = sorted({key for key, recipient in values if recipient})
            bare = sorted({key for key, recipient in values if not recipient and column == "provider_message_id"})
            if named:
                keys, key_params = self._in(named)
                to, to_params = self._in(sorted({recipient for _, recipient in values if recipient}))
                # the record and batch indexes do not lead with the provider: checked on
                # the rows found (in SQL the planner may join a scan of the provider's rows)
                if column in ("record_no", "batch_id"):
                    branches.append(f"SELECT id FROM messages WHERE {column} {keys} AND recipient {to}")
                    params += [*key_params, *to_params]
                else:
                    where = f"provider = ? AND {column} {keys} AND recipient {to}"
                    branches.append(f"SELECT id FROM messages WHERE {where}")
                    params += [provider, *key_params, *to_params]
            if bare:
                keys, key_params = self._in(bare)
                branches.append(f"SELECT id FROM messages WHERE provider = ? AND {column} {keys}")
                params += [provider, *key_params]
        if not branches:
            return []
        # a UNION of one index lookup per key: with the keys OR-ed in one WHERE, PostgreSQL
        # scanned every row of the provider (40 ms at 100,000 rows, growing with the table)
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        rows = self._rows(
            conn,
            "SELECT id, status, recipient, provider_message_id, batch_id, record_no, provider, "
            "callback_url IS NOT NULL FROM messages "
            f"WHERE id IN ({' UNION '.join(branches)}) ORDER BY id{lock}",
            params,
        )
        return [dict(zip(_CANDIDATE, row, strict=True)) for row in rows if row[6] == provider]  # the record branch

    def _mark_applied(self, conn: Connection, applied: Mapping[str, int | None]) -> None:
        self._bulk(
            conn,
            "UPDATE inbox SET applied = ?, message_id = ? WHERE event_id = ?",
            "UPDATE inbox AS i SET applied = v.applied, message_id = v.message_id FROM {rows} "
            "WHERE i.event_id = v.event_id",
            [(True, m, e) for e, m in applied.items() if m is not None],
            (("applied", "boolean"), ("message_id", "bigint"), ("event_id", "text")),
        )

    def _store_reply(
        self,
        conn: Connection,
        provider: str,
        event_id: str,
        reply: InboundMessage,
        now: float,
        notify_url: str | None,
    ) -> int | None:
        message_id = None
        if reply.reply_to:
            found = conn.execute(
                select(messages.c.id).where(
                    messages.c.provider == provider,
                    (messages.c.provider_message_id == reply.reply_to)
                    | (messages.c.batch_id == reply.reply_to)
                    | (messages.c.record_no == reply.reply_to),
                    messages.c.recipient == reply.sender,
                )
            ).first()
            message_id = int(found[0]) if found else None
        received = reply.received_at.timestamp() if reply.received_at else now
        conn.execute(
            replies.insert().values(
                event_id=event_id,
                provider=provider,
                sender=reply.sender,
                text=reply.text,
                received_at=received,
                reply_to=reply.reply_to,
                message_id=message_id,
                created_at=now,
            )
        )
        if notify_url:
            from formosms.gateway.schema import notifications

            conn.execute(
                notifications.insert().values(
                    message_id=message_id,
                    url=notify_url,
                    payload={
                        "type": "reply",
                        "provider": provider,
                        "from": reply.sender,
                        "text": reply.text,
                        "message_id": message_id,
                        "received_at": received,
                    },
                    attempts=0,
                    next_attempt_at=now,
                )
            )
        return message_id if message_id is not None else -1


_INBOX_COLUMNS = (
    ("event_id", "text"),
    ("provider", "text"),
    ("kind", "text"),
    ("received_at", "float8"),
    ("payload", "text"),
    ("applied", "boolean"),
    ("message_id", "bigint"),
)
_REPORT_COLUMNS = (
    ("status", "text"),
    ("provider_status", "text"),
    ("updated_at", "float8"),
    ("final_at", "float8"),
    ("pmid", "text"),
    ("batch", "text"),
    ("id", "bigint"),
)
_CANDIDATE = ("id", "status", "recipient", "provider_message_id", "batch_id", "record_no", "provider", "notify")


class _Matches:
    """The candidate rows indexed the way ``DeliveryReport`` names a message: by the
    provider's message id (and recipient, when given), by batch and recipient, and by our
    record number (EVERY8D's MR) and recipient, tried in that order."""

    def __init__(self, rows: list[dict[str, Any]]):
        self._notify = {int(row["id"]) for row in rows if row.get("notify")}
        self.by_pmid: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.by_pmid_recipient: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.by_batch: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.by_record: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            self.index(row)

    def index(self, row: dict[str, Any]) -> None:
        if row["provider_message_id"]:
            self.add_pmid(row, row["provider_message_id"])
        if row["batch_id"]:
            self.by_batch[(row["batch_id"], row["recipient"])].append(row)
        if row["record_no"]:
            self.by_record[(row["record_no"], row["recipient"])].append(row)

    def add_pmid(self, row: dict[str, Any], pmid: str) -> None:
        self.by_pmid[pmid].append(row)
        self.by_pmid_recipient[(pmid, row["recipient"])].append(row)

    def notify(self, message_id: int) -> bool:
        """Whether the message has a ``callback_url`` to tell of its changes."""
        return message_id in self._notify

    def match(self, report: DeliveryReport) -> list[dict[str, Any]]:
        recipient = report.recipient
        if report.message_id:
            if recipient:
                rows = self.by_pmid_recipient.get((report.message_id, recipient), [])
            else:
                rows = self.by_pmid.get(report.message_id, [])
            if rows:
                return rows
        if report.batch_id and recipient and (rows := self.by_batch.get((report.batch_id, recipient), [])):
            return rows
        if report.record_no and recipient:
            return self.by_record.get((report.record_no, recipient), [])
        return []


def _payload(event: WebhookEvent) -> dict[str, Any]:
    if event.report is not None:
        r = event.report
        return {
            "status": r.status.value,
            "provider_status": r.provider_status,
            "recipient": r.recipient,
            "message_id": r.message_id,
            "batch_id": r.batch_id,
            "record_no": r.record_no,
            "done_at": r.done_at.isoformat() if r.done_at else None,
            "provider": r.provider,
        }
    assert event.reply is not None
    m = event.reply
    return {
        "sender": m.sender,
        "text": m.text,
        "reply_to": m.reply_to,
        "received_at": m.received_at.isoformat() if m.received_at else None,
        "provider": m.provider,
    }


def _report(payload: dict[str, Any]) -> DeliveryReport:
    from datetime import datetime

    done = payload.get("done_at")
    return DeliveryReport(
        provider=str(payload.get("provider", "")),
        status=Status(payload["status"]) if payload.get("status") in Status._value2member_map_ else Status.UNKNOWN,
        provider_status=str(payload.get("provider_status", "")),
        recipient=payload.get("recipient"),
        message_id=payload.get("message_id"),
        batch_id=payload.get("batch_id"),
        record_no=payload.get("record_no"),
        done_at=datetime.fromisoformat(done) if done else None,
    )
