"""Callbacks into the store: each event kept once, applied to its message, never backwards.

A report can arrive before the worker recorded the send it is about (the provider is
faster than our commit): it stays in ``inbox`` unapplied and ``apply_pending`` applies it
once ``record`` has written the provider's ids.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select, update

from formosms.gateway.db import FINAL, Database, rank
from formosms.gateway.schema import events, inbox, messages, replies
from formosms.model import DeliveryReport, InboundMessage, Status
from formosms.webhooks.events import WebhookEvent


class Inbox(Database):
    def ingest(self, provider: str, batch: Sequence[WebhookEvent], notify_url: str | None = None) -> int:
        """Store a batch of callback events for the gateway provider ``provider``.

        Returns how many were new. Duplicates (the same event id) change nothing.
        """
        now = time.time()
        new = 0
        with self.tx() as conn:
            for event in batch:
                payload = _payload(event)
                inserted = conn.execute(
                    self._insert(inbox)
                    .values(
                        event_id=event.id,
                        provider=provider,
                        kind=event.kind,
                        received_at=now,
                        payload=payload,
                        applied=False,
                    )
                    .on_conflict_do_nothing(index_elements=["event_id"])
                    .returning(inbox.c.event_id)
                ).first()
                if inserted is None:
                    continue
                new += 1
                if event.report is not None:
                    message_id = self._apply_report(conn, provider, event.report, now)
                else:
                    assert event.reply is not None
                    message_id = self._store_reply(conn, provider, event.id, event.reply, now, notify_url)
                if message_id is not None:
                    conn.execute(
                        update(inbox).where(inbox.c.event_id == event.id).values(applied=True, message_id=message_id)
                    )
        return new

    def apply_pending(self, provider: str, max_age: float = 3600.0) -> int:
        """Apply reports that arrived before their send was recorded.

        Only reports younger than ``max_age`` seconds are tried again: one that matched no
        message for that long never will (another system's message, an unknown id), and
        every worker retries these twice a second.
        """
        now = time.time()
        applied = 0
        with self.tx() as conn:
            pending = conn.execute(
                select(inbox.c.event_id, inbox.c.payload).where(
                    inbox.c.provider == provider,
                    ~inbox.c.applied,
                    inbox.c.kind == "report",
                    inbox.c.received_at > now - max_age,
                )
            ).all()
            for event_id, payload in pending:
                message_id = self._apply_report(conn, provider, _report(payload), now)
                if message_id is not None:
                    applied += 1
                    conn.execute(
                        update(inbox).where(inbox.c.event_id == event_id).values(applied=True, message_id=message_id)
                    )
        return applied

    def replies_since(self, after: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        query = select(replies).order_by(replies.c.id.desc()).limit(limit)
        if after is not None:
            query = query.where(replies.c.id < after)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- internals --------------------------------------------------------------------------
    def _match(self, conn: Connection, provider: str, report: DeliveryReport) -> list[Any]:
        columns = (messages.c.id, messages.c.status, messages.c.provider_message_id)
        recipient = report.recipient
        lookups = []
        if report.message_id:
            where = [messages.c.provider == provider, messages.c.provider_message_id == report.message_id]
            lookups.append(where + ([messages.c.recipient == recipient] if recipient else []))
        if report.batch_id and recipient:
            lookups.append(
                [
                    messages.c.provider == provider,
                    messages.c.batch_id == report.batch_id,
                    messages.c.recipient == recipient,
                ]
            )
        if report.record_no and recipient:
            # EVERY8D echoes the MR we set: it identifies a row even when the send timed out
            # (the provider too: SMS-Get's per-recipient record ids are not our MR numbers)
            lookups.append(
                [
                    messages.c.provider == provider,
                    messages.c.record_no == report.record_no,
                    messages.c.recipient == recipient,
                ]
            )
        for where in lookups:
            rows = conn.execute(select(*columns).where(*where)).all()
            if rows:
                return list(rows)
        return []

    def _apply_report(self, conn: Connection, provider: str, report: DeliveryReport, now: float) -> int | None:
        rows = self._match(conn, provider, report)
        if not rows:
            return None
        new = report.status.value
        changed = []
        for row in rows:
            if report.status is Status.UNKNOWN or row.status in FINAL or rank(new) <= rank(row.status):
                continue  # a final state never moves; an older report never overrides a newer one
            if row.status in ("claimed", "sending", "queued", "scheduled") and rank(new) < 3:
                continue
            conn.execute(
                update(messages)
                .where(messages.c.id == row.id)
                .values(
                    status=new,
                    provider_status=report.provider_status,
                    updated_at=now,
                    final_at=now if new in FINAL else None,
                    provider_message_id=row.provider_message_id or report.message_id,
                    batch_id=messages.c.batch_id if not report.batch_id else report.batch_id,
                )
            )
            changed.append(row.id)
        if changed:
            conn.execute(
                events.insert(),
                [
                    {
                        "message_id": i,
                        "at": now,
                        "status": new,
                        "provider": provider,
                        "provider_status": report.provider_status,
                        "detail": report.done_at.isoformat() if report.done_at else None,
                    }
                    for i in changed
                ],
            )
            self._notify(conn, changed, now)
        return int(rows[0].id)

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
