"""The ``formosms`` command: library operations, the sandbox, the webhook listener."""

from __future__ import annotations

import formosms.cli.demo
import formosms.cli.gateway
import formosms.cli.library
import formosms.cli.sandbox  # noqa: F401  (importing registers the commands)
from formosms.cli.common import app


def main() -> None:
    app()


__all__ = ["app", "main"]
