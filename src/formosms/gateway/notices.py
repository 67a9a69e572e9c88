"""API keys, idempotency keys, shared rate limits and notifications to the user's app."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from formosms.gateway.db import PUBLIC_STATUS, Database, hash_key
from formosms.gateway.schema import api_keys, idempotency, kv, messages, notifications, rate_limits

REFUSED_PREFIX = "callbacks_refused:"


class Accounts(Database):
    # -- API keys -------------------------------------------------------------------------
    def create_api_key(self, name: str) -> str:
        token = "fsk_" + secrets.token_urlsafe(24)
        with self.tx() as conn:
            conn.execute(
                api_keys.insert().values(name=name, prefix=token[:8], hash=hash_key(token), created_at=time.time())
            )
        return token

    def verify_api_key(self, token: str) -> int | None:
        with self.read() as conn:
            row = conn.execute(
                select(api_keys.c.id).where(api_keys.c.hash == hash_key(token), ~api_keys.c.revoked)
            ).first()
        return int(row[0]) if row else None

    # -- idempotency ----------------------------------------------------------------------
    def idempotency_begin(
        self, key_id: int, key: str, request_hash: str, abandoned_after: float = 60.0
    ) -> tuple[str, Any]:
        """('new', None) | ('replay', (status, body)) | ('mismatch', None) | ('in_flight', None).

        A request still in flight after ``abandoned_after`` seconds died with its process
        (the answer is written in the same transaction as the messages): the key is free.
        """
        now = time.time()
        mine = (idempotency.c.api_key_id == key_id, idempotency.c.key == key)
        with self.tx() as conn:
            conn.execute(
                idempotency.delete().where(
                    *mine, idempotency.c.response.is_(None), idempotency.c.created_at < now - abandoned_after
                )
            )
            # insert-or-nothing: two nodes taking the same key at once get new + in_flight
            created = conn.execute(
                self._insert(idempotency)
                .values(api_key_id=key_id, key=key, request_hash=request_hash, created_at=now)
                .on_conflict_do_nothing(index_elements=["api_key_id", "key"])
                .returning(idempotency.c.key)
            ).first()
            if created is not None:
                return "new", None
            row = conn.execute(select(idempotency).where(*mine)).first()
        if row is None:  # the first request was aborted a moment ago: let the client retry
            return "in_flight", None
        if row.request_hash != request_hash:
            return "mismatch", None
        if row.response is None:
            return "in_flight", None
        return "replay", (row.status_code, row.response)

    def idempotency_abort(self, key_id: int, key: str) -> None:
        with self.tx() as conn:
            conn.execute(
                idempotency.delete().where(
                    idempotency.c.api_key_id == key_id,
                    idempotency.c.key == key,
                    idempotency.c.response.is_(None),
                )
            )

    # -- shared rate limits ---------------------------------------------------------------
    def take_tokens(self, provider: str, count: int, rate: float) -> float:
        """Take ``count`` tokens from the provider's shared bucket; returns seconds to wait."""
        now = time.time()
        bucket = select(rate_limits).where(rate_limits.c.provider == provider).with_for_update()
        with self.tx() as conn:
            row = conn.execute(bucket).first()
            if row is None:  # first use: a full bucket (several nodes may create it at once)
                conn.execute(
                    self._insert(rate_limits)
                    .values(provider=provider, tokens=rate, updated_at=now)
                    .on_conflict_do_nothing(index_elements=["provider"])
                )
                row = conn.execute(bucket).one()
            tokens = min(rate, row.tokens + max(0.0, now - row.updated_at) * rate) - count
            conn.execute(
                update(rate_limits)
                .where(rate_limits.c.provider == provider)
                .values(tokens=tokens, updated_at=max(now, row.updated_at))
            )
        return 0.0 if tokens >= 0 else -tokens / rate

    # -- notifications --------------------------------------------------------------------
    def notify(self, url: str, payload: dict[str, Any], message_id: int | None = None) -> None:
        with self.tx() as conn:
            conn.execute(
                notifications.insert().values(
                    message_id=message_id, url=url, payload=payload, attempts=0, next_attempt_at=time.time()
                )
            )

    def due_notifications(
        self, limit: int = 100, now: float | None = None, lease: float = 60.0
    ) -> list[dict[str, Any]]:
        """The oldest undelivered notification of each message (in order per message).

        The rows returned are leased for ``lease`` seconds (``notification_result`` ends the
        lease), so several gateway nodes never POST the same notification at once.
        """
        now = now or time.time()
        if not self._exists("SELECT 1 FROM notifications WHERE delivered_at IS NULL AND next_attempt_at <= ?", [now]):
            return []
        older = notifications.alias("older")
        first_of_message = (
            ~select(older.c.id)
            .where(
                older.c.message_id == notifications.c.message_id,
                older.c.delivered_at.is_(None),
                older.c.id < notifications.c.id,
            )
            .exists()
        )
        query = (
            select(notifications)
            .where(
                notifications.c.delivered_at.is_(None),
                notifications.c.next_attempt_at <= now,
                or_(notifications.c.message_id.is_(None), first_of_message),
            )
            .order_by(notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.tx() as conn:
            rows = [dict(r) for r in conn.execute(query).mappings()]
            if rows:
                conn.execute(
                    update(notifications)
                    .where(notifications.c.id.in_([r["id"] for r in rows]))
                    .values(next_attempt_at=now + lease)
                )
        return rows

    def notification_result(self, notification_id: int, ok: bool, error: str = "", retry_in: float = 0) -> None:
        now = time.time()
        values: dict[str, Any] = (
            {"delivered_at": now}
            if ok
            else {
                "attempts": notifications.c.attempts + 1,
                "next_attempt_at": now + retry_in,
                "last_error": error,
            }
        )
        with self.tx() as conn:
            conn.execute(update(notifications).where(notifications.c.id == notification_id).values(**values))

    # -- observability --------------------------------------------------------------------
    def counts(self) -> dict[tuple[str, str], int]:
        with self.read() as conn:
            rows = conn.execute(
                select(func.coalesce(messages.c.provider, ""), messages.c.status, func.count()).group_by(
                    messages.c.provider, messages.c.status
                )
            ).all()
        out: dict[tuple[str, str], int] = {}
        for p, s, n in rows:  # several internal statuses show as one (claimed is queued)
            key = (str(p), PUBLIC_STATUS.get(s, s))
            out[key] = out.get(key, 0) + int(n)
        return out

    def queue_depth(self) -> int:
        with self.read() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(and_(messages.c.status.in_(["queued", "claimed", "scheduled"])))
                ).scalar()
                or 0
            )

    def setting(self, key: str, default: Callable[[], str]) -> str:
        """A gateway-wide value, created once (by whichever node comes first)."""
        with self.tx() as conn:
            found = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar()
            if found is not None:
                return str(found)
            conn.execute(
                self._insert(kv).values(key=key, value=str(default())).on_conflict_do_nothing(index_elements=["key"])
            )
            return str(conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar_one())

    # -- callbacks we had to refuse -------------------------------------------------------
    def note_refused_callbacks(self, provider: str, at: float) -> None:
        """Remember that callbacks of ``provider`` were refused (503) until ``at``: if the
        provider gave up retrying, those reports are gone, so the poller asks for them."""
        key = REFUSED_PREFIX + provider
        with self.tx() as conn:
            found = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar()
            if found is None:
                conn.execute(self._insert(kv).values(key=key, value=repr(at)).on_conflict_do_nothing())
            elif float(found) < at:
                conn.execute(update(kv).where(kv.c.key == key).values(value=repr(at)))

    def refused_callbacks(self) -> dict[str, float]:
        """``{provider: when its latest refusal was noted}``, until the poller clears it."""
        with self.read() as conn:
            rows = conn.execute(select(kv.c.key, kv.c.value).where(kv.c.key.startswith(REFUSED_PREFIX))).all()
        return {key.removeprefix(REFUSED_PREFIX): float(value) for key, value in rows}

    def clear_refused_callbacks(self, provider: str, at: float) -> None:
        """Forget the refusal at ``at`` (and not a newer one noted meanwhile)."""
        with self.tx() as conn:
            conn.execute(kv.delete().where(kv.c.key == REFUSED_PREFIX + provider, kv.c.value == repr(at)))
