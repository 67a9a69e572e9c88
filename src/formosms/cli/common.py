"""Shared CLI plumbing: the Typer app, output as tables or JSON, one-line errors."""

from __future__ import annotations

import dataclasses
import enum
import gc
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from formosms.errors import FormosmsError

app = typer.Typer(
    name="formosms",
    help="Send SMS in Taiwan through SMSGo, TwSMS, SMS-Get or EVERY8D; run the sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

PROVIDER_HELP = "Provider DSN, e.g. twsms://USER:PASSWORD@ (or set FORMOSMS_PROVIDER)."


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, BaseException):
        return {"error": type(value).__name__, "message": str(value), "code": getattr(value, "code", None)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), ensure_ascii=False, indent=2) + "\n")


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    t = Table(title=title)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console.print(t)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def errors_as_exit() -> Iterator[None]:
    """Any formosms error becomes a one-line reason and exit status 1."""
    try:
        yield
    except FormosmsError as exc:
        fail(f"{type(exc).__name__}: {exc}".splitlines()[0])


def command(func: Callable[..., Any]) -> Callable[..., Any]:
    return app.command()(func)


def settle_heap(young: int = 20_000) -> None:
    """Tune the cyclic garbage collector for a long-running server process.

    Everything loaded so far (modules, the phone number metadata, compiled statements)
    is frozen out of its reach, and young collections wait for ``young`` new objects
    instead of 700, so the objects of a request in flight die before they are examined.
    Before, a full collection stopped the gateway for 75–95 ms every two or three seconds
    under load (``gc.callbacks`` during bench/gateway_e2e.py); after, none but at startup.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young, middle, old)
