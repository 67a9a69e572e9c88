"""Suite-wide: every log record of the whole run is scanned for secrets at the end.

Passwords travel in query strings with these providers; no log line may contain one, nor
an API key or a webhook secret. Tests register the secrets they create with ``secret()``.
"""

from __future__ import annotations

import contextlib
import logging

import pytest

from formosms.sandbox import DEMO_PASSWORD

SECRETS: set[str] = {DEMO_PASSWORD, "demo-api-key", "wrong-password", "poor-secret", "hunter2!!"}


def secret(value: str) -> str:
    """Register a secret the log scan must never find; returns it."""
    SECRETS.add(value)
    return value


def _protect_raw_http_logs() -> None:
    # Tests that drive the emulators with raw httpx (not through formosms) get the same
    # redaction formosms installs for itself; every other logger is scanned as it is.
    from formosms.redact import protect_logs

    protect_logs(SECRETS)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a record that cannot format is not a leak
            self.lines.append(record.getMessage())


_COLLECTOR = _Collector()


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_COLLECTOR)
    root.setLevel(min(root.level, logging.INFO))
    for name in ("formosms", "httpx"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    _protect_raw_http_logs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = [(s, line) for line in _COLLECTOR.lines for s in SECRETS if s in line]
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"log scan: {len(_COLLECTOR.lines)} records, {len(SECRETS)} secrets, {len(leaks)} leaks")
    if leaks:
        if reporter is not None:
            for found, line in leaks[:10]:
                reporter.write_line(f"SECRET IN LOG ({found[:3]}…): {line[:200]}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
