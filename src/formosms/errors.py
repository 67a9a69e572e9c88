"""One error tree, split by what the caller must do next.

::

    FormosmsError                      .provider, .code (the provider's own code, as text)
    ├── PermanentError                 fix something first: the same request fails again
    │   ├── ConfigurationError         bad DSN, unknown provider, missing credentials
    │   ├── AuthenticationError        wrong account or password, locked account
    │   ├── AccountError               IP not allowed, API not enabled, account suspended,
    │   │                              international SMS off, two-way not subscribed
    │   ├── InsufficientCredit         not enough points
    │   ├── InvalidRequest             the request itself is wrong (raised locally when possible)
    │   │   ├── InvalidRecipient       .recipient: the number as given
    │   │   ├── InvalidMessage         empty, too long, characters the channel cannot carry
    │   │   ├── InvalidSchedule        past or malformed schedule / validity
    │   │   └── UnsupportedFeature     the provider cannot do this (raised before any request)
    │   ├── NotFound                   unknown message / batch id
    │   └── Rejected                   refused by the provider for another documented reason
    ├── TransientError                 try again later
    │   ├── ConnectError               the request never left: safe to retry or fail over
    │   ├── ProviderUnavailable        5xx, "busy", rate limited: the provider did not take it
    │   └── OutcomeUnknown             the request left and no usable answer came back
    │       ├── Timeout                (a send may have happened: never re-send blindly)
    │       └── MalformedResponse      the reply could not be understood
    └── PartialFailure                 a multi-request send where some requests failed;
                                       ``.result`` holds every recipient's outcome

Foreign exceptions (httpx, aiohttp, XML, JSON) are translated in one place,
``formosms.transport``; codecs raise only these classes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from formosms.model import Feature, SendResult


class FormosmsError(Exception):
    """Base of every error formosms raises."""

    def __init__(self, message: str, *, provider: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.code = code

    def __str__(self) -> str:
        where = f"[{self.provider}" + (f" {self.code}" if self.code else "") + "] "
        return (where if self.provider else "") + self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, code={self.code!r})"

    @property
    def retryable(self) -> bool:
        return isinstance(self, TransientError)


class PermanentError(FormosmsError):
    """Retrying the same request will fail again."""


class ConfigurationError(PermanentError):
    """Bad DSN, unknown provider name, missing credentials."""


class AuthenticationError(PermanentError):
    """Wrong account or password (or a locked account)."""


class AccountError(PermanentError):
    """The account is not allowed to do this (IP allow-list, API switch, international off)."""


class InsufficientCredit(PermanentError):
    """Not enough points for this send."""


class InvalidRequest(PermanentError):
    """The request is wrong; raised locally before any request where it can be."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        provider: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, provider=provider, code=code)
        self.field = field


class InvalidRecipient(InvalidRequest):
    """A phone number that cannot be sent to (``.recipient`` is the number as given)."""

    def __init__(
        self,
        message: str,
        *,
        recipient: str | None = None,
        provider: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, field="to", provider=provider, code=code)
        self.recipient = recipient


class InvalidMessage(InvalidRequest):
    """Empty, too long, or containing characters the provider or channel refuses."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "text",
        provider: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, field=field, provider=provider, code=code)


class InvalidSchedule(InvalidRequest):
    """A schedule time in the past, or a validity period out of range."""

    def __init__(
        self,
        message: str,
        *,
        field: str = "schedule_at",
        provider: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, field=field, provider=provider, code=code)


class UnsupportedFeature(InvalidRequest):
    """The provider API cannot do what was asked."""

    def __init__(self, message: str, *, feature: Feature | None = None, provider: str | None = None):
        super().__init__(message, field=str(feature) if feature else None, provider=provider)
        self.feature = feature


class NotFound(PermanentError):
    """Unknown message id or batch id."""


class Rejected(PermanentError):
    """Refused by the provider for a reason not covered above (code and text kept)."""


class TransientError(FormosmsError):
    """Try again later."""


class ConnectError(TransientError):
    """The request never reached the provider; retrying or failing over cannot double-send."""


class ProviderUnavailable(TransientError):
    """The provider answered that it did not take the request (5xx, busy, rate limited)."""


class OutcomeUnknown(TransientError):
    """The request left and no usable answer came back: a send may have happened."""


class Timeout(OutcomeUnknown):
    """No answer in time after the request was sent."""


class MalformedResponse(OutcomeUnknown):
    """The provider's reply could not be parsed (it is kept in ``.body``, truncated)."""

    def __init__(
        self,
        message: str,
        *,
        body: str = "",
        provider: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message, provider=provider, code=code)
        self.body = body[:500]


class PartialFailure(FormosmsError):
    """Some recipients were accepted and others not; nothing is hidden: see ``.result``."""

    def __init__(self, result: SendResult):
        failed = result.failed
        first = failed[0].error if failed else None
        super().__init__(
            f"{len(result.accepted)} of {len(result.messages)} recipients accepted; first failure: {first}",
            provider=result.provider,
            code=getattr(first, "code", None),
        )
        self.result = result


ErrorClass = type[FormosmsError]


class InvalidWebhook(FormosmsError):
    """A callback that cannot be understood: answered 400 with this one-line reason."""
