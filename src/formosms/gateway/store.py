"""``Store``: the outbox, the inbox and the accounts on one database.

``Store("sqlite:///formosms.db")`` (embedded, WAL) or ``Store("postgresql://user@host/db")``
(several gateway processes and machines). Every method is one transaction; the hot paths
are batched. See ``db`` (connections, migrations), ``outbox`` (submissions, claims,
outcomes), ``inbox`` (callbacks) and ``notices`` (API keys, idempotency, rate limits,
notifications).
"""

from __future__ import annotations

from formosms.gateway.db import FINAL, NewMessage, Outcome, StoreUnavailable, rank
from formosms.gateway.inbox import Inbox
from formosms.gateway.notices import Accounts
from formosms.gateway.outbox import Outbox, Submission


class Store(Outbox, Inbox, Accounts):
    """The gateway's database: see the module docstring."""


__all__ = ["FINAL", "NewMessage", "Outcome", "Store", "StoreUnavailable", "Submission", "rank"]
