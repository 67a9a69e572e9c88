"""Secrets travel in query strings here: every repr, log line and error goes through this."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret, raw or URL-encoded, by ``***``."""
    for secret in secrets:
        if not secret or len(secret) < 2:
            continue
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, MASK)
    return text


class SecretFilter(logging.Filter):
    """Redacts registered secrets from every record of the loggers it is attached to.

    httpx logs each request's full URL at INFO, and these APIs put passwords in the URL;
    formosms attaches this filter to ``httpx`` and ``httpcore`` when a driver is created.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= 2)

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            cleaned = redact(message, self.secrets)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True


_FILTER = SecretFilter()


def protect_logs(secrets: Iterable[str], loggers: Iterable[str] = ("httpx", "httpcore", "aiohttp.client")) -> None:
    """Make sure ``secrets`` never reach the records of third-party HTTP loggers."""
    _FILTER.add(secrets)
    for name in loggers:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
