"""``Client`` and ``AsyncClient``: one interface over every provider.

Both validate locally (numbers, text, schedule, features) before any request, then run
the provider's exchange over their transport. A send where no recipient was accepted
raises that error; a send where some were raises ``PartialFailure`` carrying the result.

>>> with Client.from_dsn("twsms://user:pass@") as sms:       # doctest: +SKIP
...     result = sms.send("0912-345-678", "您的驗證碼是 123456")
...     sms.status(result)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import Any, Self

from formosms import phone, timefmt
from formosms.errors import InvalidMessage, PartialFailure
from formosms.model import (
    Attachment,
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    InboundMessage,
    Personalized,
    SendResult,
)
from formosms.providers.base import MessageRef, OutboundMMS, OutboundSMS, Provider, from_dsn, refs_from
from formosms.redact import protect_logs
from formosms.transport import AsyncDriver, SyncDriver

Recipients = str | Sequence[str]
Target = SendResult | MessageRef | str | Iterable[str | MessageRef]


def prepare_sms(
    provider: Provider,
    to: Recipients,
    text: str,
    schedule_at: datetime | None,
    validity: timedelta | int | None,
    options: dict[str, Any],
) -> OutboundSMS:
    """Validate and normalize a send; raises before any request."""
    region = str(options.pop("region", phone.DEFAULT_REGION))
    provider.check_options(options)
    recipients = tuple(dict.fromkeys(phone.normalize_many(to, region)))
    if not isinstance(text, str) or not text.strip():
        raise InvalidMessage("text is empty", provider=provider.name)
    when = timefmt.schedule(schedule_at)
    if when is not None:
        provider.require(Feature.SCHEDULE)
    valid = timefmt.validity(validity)
    if valid is not None:
        provider.require(Feature.VALIDITY)
    message = OutboundSMS(recipients, text, when, valid, options)
    provider.validate(message)
    return message


def prepare_mms(
    provider: Provider,
    to: Recipients,
    text: str,
    attachment: Attachment,
    subject: str,
    schedule_at: datetime | None,
    validity: timedelta | int | None,
) -> OutboundMMS:
    provider.require(Feature.MMS)
    if not isinstance(attachment, Attachment) or not attachment.data:
        raise InvalidMessage("attachment must be a non-empty Attachment", field="attachment")
    recipients = tuple(dict.fromkeys(phone.normalize_many(to)))
    return OutboundMMS(
        recipients,
        text,
        attachment,
        subject,
        timefmt.schedule(schedule_at),
        timefmt.validity(validity),
    )


def prepare_personalized(provider: Provider, items: Sequence[Personalized]) -> list[Personalized]:
    provider.require(Feature.PERSONALIZED)
    if not items:
        raise InvalidMessage("no personalized message given", field="messages")
    out = []
    for i, item in enumerate(items):
        if not item.text or not item.text.strip():
            raise InvalidMessage(f"messages[{i}].text is empty", field=f"messages[{i}].text")
        when = timefmt.schedule(item.send_at, field=f"messages[{i}].send_at")
        out.append(Personalized(phone.normalize(item.to), item.text, item.name, item.email, when))
    return out


def settle(result: SendResult) -> SendResult:
    """Raise when nothing was accepted, ``PartialFailure`` when only some were."""
    failed = result.failed
    if not failed:
        return result
    if len(failed) == len(result.messages) and failed[0].error is not None:
        raise failed[0].error
    raise PartialFailure(result)


class _Base:
    def __init__(self, provider: Provider):
        self.provider = provider
        protect_logs(provider.secrets)

    @property
    def features(self) -> frozenset[Feature]:
        return self.provider.features

    def estimate(self, to: Recipients, text: str, *, region: str = phone.DEFAULT_REGION) -> Estimate:
        """Encoding, parts and points by this provider's published pricing; no request."""
        if not text:
            raise InvalidMessage("text is empty")
        return self.provider.estimate(phone.normalize_many(to, region), text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.provider!r})"


class Client(_Base):
    """Synchronous client over a pooled ``httpx.Client``."""

    def __init__(self, provider: Provider):
        super().__init__(provider)
        self._driver = SyncDriver(provider.name, provider.timeout)

    @classmethod
    def from_dsn(cls, dsn: str) -> Self:
        """``Client.from_dsn("every8d://UID:PWD@")``; see ``formosms.providers.from_dsn``."""
        return cls(from_dsn(dsn))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._driver.close()

    def send(
        self,
        to: Recipients,
        text: str,
        *,
        schedule_at: datetime | None = None,
        validity: timedelta | int | None = None,
        **options: Any,
    ) -> SendResult:
        """Send one text to one number or many (split into as few requests as allowed)."""
        message = prepare_sms(self.provider, to, text, schedule_at, validity, options)
        return settle(self._driver.run(self.provider.send(message)))

    def send_personalized(
        self, messages: Sequence[Personalized], *, subject: str = "", schedule_at: datetime | None = None
    ) -> SendResult:
        """A different text per recipient in one request (EVERY8D SOAP ``sendParamSMS``)."""
        items = prepare_personalized(self.provider, messages)
        when = timefmt.schedule(schedule_at)
        return settle(self._driver.run(self.provider.send_personalized(items, subject=subject, schedule_at=when)))

    def send_mms(
        self,
        to: Recipients,
        text: str,
        attachment: Attachment,
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity: timedelta | int | None = None,
    ) -> SendResult:
        message = prepare_mms(self.provider, to, text, attachment, subject, schedule_at, validity)
        return settle(self._driver.run(self.provider.send_mms(message)))

    def status(self, target: Target, *, mms: bool = False) -> list[DeliveryReport]:
        """Delivery reports for a ``SendResult`` or ids (EVERY8D: batch ids)."""
        return self._driver.run(self.provider.status(refs_from(target), mms=mms))

    def balance(self) -> Decimal:
        return self._driver.run(self.provider.balance())

    def cancel(self, target: Target, *, mms: bool = False) -> CancelResult:
        """Cancel a scheduled send (``SendResult`` or ids)."""
        return self._driver.run(self.provider.cancel(refs_from(target), mms=mms))

    def replies(self, *, day: date | None = None, code: str | None = None) -> list[InboundMessage]:
        """Poll replies where the provider allows it (TwSMS ``smsmo_query.php``)."""
        return self._driver.run(self.provider.replies(day=day, code=code))


class AsyncClient(_Base):
    """Asynchronous client over a pooled ``aiohttp.ClientSession``.

    ``concurrency`` bounds requests in flight (TwSMS takes one number per request);
    ``rate_limit`` paces requests per second: by default the provider's documented
    ceiling (TwSMS 500/s), ``0`` for no pacing.
    """

    def __init__(self, provider: Provider, *, concurrency: int = 50, rate_limit: float | None = None):
        super().__init__(provider)
        rate = provider.rate_limit if rate_limit is None else rate_limit
        self._driver = AsyncDriver(provider.name, provider.timeout, concurrency, rate or None)

    @classmethod
    def from_dsn(cls, dsn: str, *, concurrency: int = 50, rate_limit: float | None = None) -> Self:
        return cls(from_dsn(dsn), concurrency=concurrency, rate_limit=rate_limit)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._driver.close()

    async def send(
        self,
        to: Recipients,
        text: str,
        *,
        schedule_at: datetime | None = None,
        validity: timedelta | int | None = None,
        **options: Any,
    ) -> SendResult:
        message = prepare_sms(self.provider, to, text, schedule_at, validity, options)
        return settle(await self._driver.run(self.provider.send(message)))

    async def send_personalized(
        self, messages: Sequence[Personalized], *, subject: str = "", schedule_at: datetime | None = None
    ) -> SendResult:
        items = prepare_personalized(self.provider, messages)
        when = timefmt.schedule(schedule_at)
        return settle(await self._driver.run(self.provider.send_personalized(items, subject=subject, schedule_at=when)))

    async def send_mms(
        self,
        to: Recipients,
        text: str,
        attachment: Attachment,
        *,
        subject: str = "",
        schedule_at: datetime | None = None,
        validity: timedelta | int | None = None,
    ) -> SendResult:
        message = prepare_mms(self.provider, to, text, attachment, subject, schedule_at, validity)
        return settle(await self._driver.run(self.provider.send_mms(message)))

    async def status(self, target: Target, *, mms: bool = False) -> list[DeliveryReport]:
        return await self._driver.run(self.provider.status(refs_from(target), mms=mms))

    async def balance(self) -> Decimal:
        return await self._driver.run(self.provider.balance())

    async def cancel(self, target: Target, *, mms: bool = False) -> CancelResult:
        return await self._driver.run(self.provider.cancel(refs_from(target), mms=mms))

    async def replies(self, *, day: date | None = None, code: str | None = None) -> list[InboundMessage]:
        return await self._driver.run(self.provider.replies(day=day, code=code))
