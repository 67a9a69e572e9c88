"""What every provider module implements, the registry, and DSN parsing.

A provider is credentials plus a codec. Its operations are *exchanges* (see
``formosms.transport``): generators that yield ``HttpRequest`` lists and return model
objects, so the same code serves ``Client`` and ``AsyncClient`` and is tested without
a network. Operations a provider lacks raise ``UnsupportedFeature`` before any request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from formosms.errors import (
    ConfigurationError,
    FormosmsError,
    InvalidRequest,
    MalformedResponse,
    UnsupportedFeature,
)
from formosms.model import (
    Attachment,
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    MessageResult,
    Personalized,
    SendResult,
)
from formosms.redact import redact
from formosms.transport import Exchange, HttpRequest, HttpResponse, Outcome


@dataclass(frozen=True, slots=True)
class OutboundSMS:
    """A validated send: E.164 recipients, Taiwan-time schedule, provider options."""

    recipients: tuple[str, ...]
    text: str
    schedule_at: datetime | None = None
    validity: timedelta | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutboundMMS:
    recipients: tuple[str, ...]
    text: str
    attachment: Attachment
    subject: str = ""
    schedule_at: datetime | None = None
    validity: timedelta | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """What identifies a sent message for status and cancel; providers need different parts."""

    message_id: str | None = None
    recipient: str | None = None
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What one send request answered, parsed."""

    messages: list[MessageResult]
    batch_id: str | None = None
    cost: Decimal | None = None
    balance: Decimal | None = None
    raw: str = ""


def refs_from(target: SendResult | MessageRef | str | Iterable[str | MessageRef]) -> list[MessageRef]:
    """Turn a ``SendResult``, ids or refs into a list of ``MessageRef``."""
    if isinstance(target, SendResult):
        refs = [MessageRef(m.message_id, m.recipient, target.batch_id) for m in target.messages if m.accepted]
        known = {r.batch_id for r in refs}
        refs += [MessageRef(batch_id=b) for b in target.batch_ids if b not in known]
        return refs
    if isinstance(target, MessageRef):
        return [target]
    if isinstance(target, str):
        return [MessageRef(message_id=target, batch_id=target)]
    out: list[MessageRef] = []
    for item in target:
        out.extend(refs_from(item))
    return out


def to_decimal(value: object, *, provider: str, what: str, body: str = "") -> Decimal:
    try:
        return Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise MalformedResponse(f"{what} is not a number: {str(value)[:40]!r}", body=body, provider=provider) from None


def chunks(items: Sequence[str], size: int) -> list[tuple[str, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]


class Provider:
    """Base of the five provider classes. Subclasses set the class attributes and codecs."""

    name: ClassVar[str]
    features: ClassVar[frozenset[Feature]]
    max_recipients: ClassVar[int] = 1
    default_base_url: ClassVar[str]
    send_options: ClassVar[frozenset[str]] = frozenset()
    #: requests/s the provider documents (None: not documented)
    rate_limit: ClassVar[float | None] = None
    #: fields of the DSN query string the constructor accepts (besides base_url/timeout)
    dsn_options: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        username: str,
        password: str,
        *,
        base_url: str | None = None,
        timeout: float = 10.0,
    ):
        if not username or not password:
            raise ConfigurationError(f"{self.name}: username and password are required")
        self.username = username
        self._password = password
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.timeout = float(timeout)

    # -- secrets ------------------------------------------------------------------------
    @property
    def password(self) -> str:
        return self._password

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password,)

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(username={self.username!r}, password='***', base_url={self.base_url!r})"

    # -- helpers for codecs ---------------------------------------------------------------
    def require(self, feature: Feature) -> None:
        if feature not in self.features:
            raise UnsupportedFeature(f"{self.name} does not support {feature}", feature=feature, provider=self.name)

    def check_options(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - self.send_options)
        if unknown:
            allowed = ", ".join(sorted(self.send_options)) or "none"
            raise InvalidRequest(
                f"{self.name} does not take option {unknown[0]!r} (options: {allowed})",
                field=unknown[0],
                provider=self.name,
            )

    def request(
        self,
        path: str,
        params: Iterable[tuple[str, str]] = (),
        *,
        method: str = "GET",
        operation: str = "",
        form: Iterable[tuple[str, str]] | None = None,
        content: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> HttpRequest:
        return HttpRequest(
            method=method,
            url=self.base_url + path,
            params=tuple(params),
            form=tuple(form) if form is not None else None,
            content=content,
            headers=tuple(headers),
            secrets=self.secrets,
            operation=operation or path,
        )

    def batched_send(
        self,
        recipients: Sequence[str],
        build: Callable[[tuple[str, ...]], HttpRequest],
        parse: Callable[[tuple[str, ...], HttpResponse], BatchOutcome],
    ) -> Exchange[SendResult]:
        """Split recipients by ``max_recipients``, send every chunk, merge the answers.

        A chunk whose request failed yields one failed ``MessageResult`` per recipient,
        so the caller sees every recipient's fate (``Client`` raises ``PartialFailure``).
        """
        groups = chunks(recipients, self.max_recipients)
        requests = [build(g) for g in groups]  # every chunk built (and validated) first
        outcomes: list[Outcome] = yield requests
        messages: list[MessageResult] = []
        batch_ids: list[str] = []
        raws: list[str] = []
        cost: Decimal | None = None
        balance: Decimal | None = None
        for group, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, HttpResponse):
                try:
                    parsed = parse(group, outcome)
                except FormosmsError as exc:
                    outcome = exc
                else:
                    messages += parsed.messages
                    raws.append(parsed.raw)
                    if parsed.batch_id:
                        batch_ids.append(parsed.batch_id)
                    if parsed.cost is not None:
                        cost = (cost or Decimal(0)) + parsed.cost
                    if parsed.balance is not None:
                        balance = parsed.balance
                    continue
            messages += [MessageResult(recipient=r, error=outcome) for r in group]
        return SendResult(
            provider=self.name,
            batch_id=batch_ids[0] if len(batch_ids) == 1 else None,
            messages=tuple(messages),
            cost=cost,
            balance=balance,
            raw="\n".join(raws),
            batch_ids=tuple(batch_ids),
        )

    # -- operations (override what the provider documents) --------------------------------
    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        raise NotImplementedError

    def validate(self, message: OutboundSMS) -> None:
        """Refuse locally what the provider is documented to refuse. Raises ``InvalidRequest``."""

    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        raise NotImplementedError

    def send_personalized(
        self, items: Sequence[Personalized], *, subject: str = "", schedule_at: datetime | None = None
    ) -> Exchange[SendResult]:
        self.require(Feature.PERSONALIZED)
        raise NotImplementedError

    def send_mms(self, message: OutboundMMS) -> Exchange[SendResult]:
        self.require(Feature.MMS)
        raise NotImplementedError

    def status(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[list[DeliveryReport]]:
        self.require(Feature.STATUS_QUERY)
        raise NotImplementedError

    def balance(self) -> Exchange[Decimal]:
        self.require(Feature.BALANCE)
        raise NotImplementedError

    def cancel(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[CancelResult]:
        self.require(Feature.CANCEL)
        raise NotImplementedError

    def replies(self, *, day: date | None = None, code: str | None = None) -> Exchange[list[InboundMessage]]:
        self.require(Feature.REPLIES_POLL)
        raise NotImplementedError


# -- registry and DSNs ------------------------------------------------------------------------

_REGISTRY: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make a provider reachable by its ``name`` (and in DSNs)."""
    _REGISTRY[cls.name] = cls
    return cls


def registry() -> dict[str, type[Provider]]:
    import formosms.providers  # noqa: F401  (importing the package registers every provider)

    return dict(_REGISTRY)


def from_dsn(dsn: str) -> Provider:
    """``twsms://user:pass@`` -> ``TwSMS("user", "pass")``.

    The host, when given, becomes ``base_url`` (``https://`` unless ``?scheme=http``);
    query options: ``timeout``, ``base_url`` and the provider's own ``dsn_options``.
    """
    parts = urlsplit(dsn)
    scheme = parts.scheme.lower().replace("_", "-")
    providers = registry()
    if scheme not in providers:
        raise ConfigurationError(f"unknown provider {scheme!r} in DSN (known: {', '.join(sorted(providers))})")
    cls = providers[scheme]
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    kwargs: dict[str, Any] = {}
    host = parts.hostname
    if host:
        netloc = host + (f":{parts.port}" if parts.port else "")
        web_scheme = options.pop("scheme", "https")
        kwargs["base_url"] = f"{web_scheme}://{netloc}{parts.path.rstrip('/')}"
    if "base_url" in options:
        kwargs["base_url"] = options.pop("base_url")
    if "timeout" in options:
        try:
            kwargs["timeout"] = float(options.pop("timeout"))
        except ValueError:
            raise ConfigurationError("timeout in DSN must be a number of seconds") from None
    unknown = set(options) - cls.dsn_options
    if unknown:
        raise ConfigurationError(f"{scheme}: unknown DSN option {sorted(unknown)[0]!r}")
    kwargs.update(options)
    if not username or not password:
        raise ConfigurationError(f"{scheme}: DSN needs credentials, like {scheme}://USER:PASSWORD@")
    return cls(username, password, **kwargs)
