"""Test helpers: drive a codec exchange with scripted replies, no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from formosms.errors import FormosmsError
from formosms.transport import Exchange, HttpRequest, HttpResponse, Outcome

T = TypeVar("T")
FIXTURES = Path(__file__).parent / "fixtures"


def fixture(provider: str, name: str) -> str:
    """The text of ``tests/fixtures/<provider>/<name>`` (a sample quoted from the spec)."""
    return (FIXTURES / provider / name).read_text(encoding="utf-8")


def reply(text: str | bytes, status: int = 200, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return HttpResponse(status, body, {"content-type": content_type})


def drive(
    exchange: Exchange[T],
    answer: Callable[[HttpRequest], Outcome | str],
    seen: list[HttpRequest] | None = None,
) -> T:
    """Run ``exchange``, answering each request with ``answer(request)``.

    ``answer`` may return a body string (HTTP 200), an ``HttpResponse`` or a
    ``FormosmsError`` (a transport failure). Requests are appended to ``seen``.
    """
    try:
        requests = next(exchange)
        while True:
            outcomes: list[Outcome] = []
            for request in requests:
                if seen is not None:
                    seen.append(request)
                result = answer(request)
                outcomes.append(reply(result) if isinstance(result, str) else result)
            requests = exchange.send(outcomes)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def wait_for(check: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> None:
    """Poll ``check`` until it is true; fail the test after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(interval)


def query(request: HttpRequest) -> dict[str, str]:
    """The request's fields (query and form) as a dict, decoded once."""
    from urllib.parse import parse_qsl, urlsplit

    fields = dict(parse_qsl(urlsplit(request.full_url()).query, keep_blank_values=True))
    body = request.body()
    if request.form is not None and body:
        fields.update(parse_qsl(body.decode("ascii"), keep_blank_values=True))
    return fields


__all__ = ["FIXTURES", "FormosmsError", "drive", "fixture", "query", "reply", "wait_for"]
