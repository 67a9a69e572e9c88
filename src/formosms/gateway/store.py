"""``Store``: the outbox, the inbox and the accounts on one database.

``Store("sqlite:///formosms.db")`` (embedded, WAL) or ``Store("postgresql://user@host/db")``
(several gateway processes and machines). Every method is one transaction; the hot paths
are batched. See ``db`` (connections, migrations), ``outbox`` (submissions, claims,
outcomes), ``inbox`` (callbacks) and ``notices`` (API keys, idempotency, rate limits,
notifications).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from formosms.gateway.db import FINAL, NewMessage, Outcome, StoreUnavailable, rank
from formosms.gateway.inbox import Inbox
from formosms.gateway.notices import Accounts
from formosms.gateway.outbox import Outbox, Submission
from formosms.webhooks.events import WebhookEvent


class Store(Outbox, Inbox, Accounts):
    """The gateway's database: see the module docstring."""

    def write_urgent(
        self,
        submissions: Sequence[Submission],
        callbacks: Mapping[str, Sequence[WebhookEvent]],
        notify_url: str | None = None,
    ) -> list[list[int]]:
        """Submissions and callbacks (events by provider) in one transaction: one turn of
        SQLite's single writer and one fsync for both, where they took turns with each
        other and with the workers (the API's group commit). Returns each submission's ids."""
        prepared = self._prepare_submissions(submissions)
        with self.tx(urgent=True) as conn:
            ids = self._enqueue_in(conn, submissions, prepared)
            for provider, batch in callbacks.items():
                self._ingest_in(conn, provider, batch, notify_url)
        return ids


__all__ = ["FINAL", "NewMessage", "Outcome", "Store", "StoreUnavailable", "Submission", "rank"]
