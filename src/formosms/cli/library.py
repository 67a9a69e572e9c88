"""``send``, ``status``, ``balance``, ``cancel``, ``replies``, ``estimate``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import typer

from formosms import phone
from formosms.cli.common import PROVIDER_HELP, app, console, errors_as_exit, fail, print_json, table
from formosms.client import Client
from formosms.errors import PartialFailure
from formosms.model import SendResult
from formosms.providers.base import MessageRef, from_dsn
from formosms.timefmt import TAIPEI

Provider = Annotated[str, typer.Option("--provider", "-p", envvar="FORMOSMS_PROVIDER", help=PROVIDER_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _client(dsn: str) -> Client:
    if not dsn:
        fail("no provider: pass --provider DSN or set FORMOSMS_PROVIDER")
    with errors_as_exit():
        return Client(from_dsn(dsn))


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{name}: expected an ISO time like 2026-12-01T09:30 (Taiwan time unless an offset is given)")
    return when if when.tzinfo else when.replace(tzinfo=TAIPEI)


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--option {pair!r}: expected KEY=VALUE")
        lowered = value.lower()
        options[key] = True if lowered in ("true", "yes") else False if lowered in ("false", "no") else value
    return options


def _refs(ids: list[str]) -> list[MessageRef]:
    refs = []
    for item in ids:
        message_id, _, number = item.partition("@")
        with errors_as_exit():
            recipient = phone.normalize(number) if number else None
        refs.append(MessageRef(message_id=message_id, recipient=recipient, batch_id=message_id))
    return refs


def _show_send(result: SendResult, as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    rows = [(m.recipient, m.message_id, "accepted" if m.accepted else f"failed: {m.error}") for m in result.messages]
    table(f"{result.provider}: batch {result.batch_id or '-'}", ["recipient", "message id", "result"], rows)
    console.print(f"cost: {result.cost if result.cost is not None else '-'}  balance: {result.balance or '-'}")


@app.command()
def send(
    to: Annotated[list[str], typer.Argument(help="Recipients (0912-345-678, +886912345678, …).")],
    text: Annotated[str, typer.Option("--text", "-t", help="Message text.")],
    provider: Provider = "",
    schedule: Annotated[str | None, typer.Option(help="Send at this ISO time (Taiwan time).")] = None,
    validity: Annotated[int | None, typer.Option(help="Validity in seconds.")] = None,
    option: Annotated[list[str], typer.Option("--option", "-o", help="Provider option KEY=VALUE.")] = [],  # noqa: B006
    as_json: AsJson = False,
) -> None:
    """Send one text to one or more numbers."""
    with _client(provider) as client, errors_as_exit():
        try:
            result = client.send(
                to,
                text,
                schedule_at=_parse_time(schedule, "--schedule"),
                validity=validity,
                **_options(option),
            )
        except PartialFailure as partial:
            _show_send(partial.result, as_json)
            raise
        _show_send(result, as_json)


@app.command()
def status(
    ids: Annotated[
        list[str], typer.Argument(help="Message or batch ids; ID@PHONE where the provider needs the number.")
    ],
    provider: Provider = "",
    mms: Annotated[bool, typer.Option(help="MMS batch (EVERY8D).")] = False,
    as_json: AsJson = False,
) -> None:
    """Delivery status of sent messages."""
    with _client(provider) as client, errors_as_exit():
        reports = client.status(_refs(ids), mms=mms)
    if as_json:
        print_json(reports)
        return
    table(
        "delivery status",
        ["recipient", "message id", "batch id", "status", "provider status", "done at"],
        [(r.recipient, r.message_id, r.batch_id, r.status.value, r.provider_status, r.done_at) for r in reports],
    )


@app.command()
def balance(provider: Provider = "", as_json: AsJson = False) -> None:
    """Remaining points."""
    with _client(provider) as client, errors_as_exit():
        points = client.balance()
    if as_json:
        print_json({"provider": client.provider.name, "balance": points})
    else:
        console.print(f"{client.provider.name}: {points} points")


@app.command()
def cancel(
    ids: Annotated[list[str], typer.Argument(help="Message or batch ids (ID@PHONE for TwSMS).")],
    provider: Provider = "",
    mms: Annotated[bool, typer.Option(help="MMS booking (EVERY8D).")] = False,
    as_json: AsJson = False,
) -> None:
    """Cancel scheduled messages."""
    with _client(provider) as client, errors_as_exit():
        result = client.cancel(_refs(ids), mms=mms)
    if as_json:
        print_json(result)
    else:
        console.print(f"{result.provider}: {result.canceled} canceled, refunded {result.refunded or 0}")


@app.command()
def replies(
    provider: Provider = "",
    day: Annotated[str | None, typer.Option(help="Day to query, YYYY-MM-DD (default today).")] = None,
    code: Annotated[str | None, typer.Option(help="Two-way code (TwSMS snumber).")] = None,
    as_json: AsJson = False,
) -> None:
    """Replies from handsets, where the provider lets you poll them."""
    try:
        when = date.fromisoformat(day) if day else None
    except ValueError:
        fail("--day: expected YYYY-MM-DD")
    with _client(provider) as client, errors_as_exit():
        found = client.replies(day=when, code=code)
    if as_json:
        print_json(found)
        return
    table(
        "replies",
        ["from", "text", "received at", "reply to"],
        [(r.sender, r.text, r.received_at, r.reply_to) for r in found],
    )


@app.command()
def estimate(
    to: Annotated[list[str], typer.Argument(help="Recipients.")],
    text: Annotated[str, typer.Option("--text", "-t", help="Message text.")],
    provider: Provider = "",
    as_json: AsJson = False,
) -> None:
    """Encoding, parts and points a send would cost (no request is made)."""
    with _client(provider) as client, errors_as_exit():
        result = client.estimate(to, text)
    if as_json:
        print_json(result)
        return
    table(
        f"{result.provider} estimate",
        ["recipients", "characters", "encoding", "parts", "points"],
        [(result.recipients, result.characters, result.encoding.value, result.parts, result.points)],
    )
