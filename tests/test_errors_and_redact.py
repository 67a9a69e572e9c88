"""The error tree and secret redaction."""

from formosms import errors
from formosms.redact import redact
from formosms.transport import HttpRequest


def test_tree_splits_by_what_to_do() -> None:
    assert issubclass(errors.InvalidRecipient, errors.InvalidRequest)
    assert issubclass(errors.InvalidRequest, errors.PermanentError)
    assert issubclass(errors.Timeout, errors.OutcomeUnknown)
    assert issubclass(errors.OutcomeUnknown, errors.TransientError)
    assert issubclass(errors.ConnectError, errors.TransientError)
    assert errors.ProviderUnavailable("busy").retryable
    assert not errors.AuthenticationError("no").retryable


def test_errors_carry_provider_and_code() -> None:
    exc = errors.InsufficientCredit("not enough points", provider="twsms", code="00020")
    assert (exc.provider, exc.code) == ("twsms", "00020")
    assert str(exc) == "[twsms 00020] not enough points"


def test_redact_raw_and_encoded_forms() -> None:
    secret = "p@ss+w&rd"
    text = "pwd=p@ss+w&rd or p%40ss%2Bw%26rd or p%40ss%2Bw%26rd"
    assert secret not in redact(text, [secret])
    assert "p%40ss%2Bw%26rd" not in redact(text, [secret])


def test_request_repr_hides_password() -> None:
    request = HttpRequest(
        "GET",
        "https://x.test/send",
        params=(("username", "u"), ("password", "s3cret!")),
        secrets=("s3cret!",),
    )
    assert "s3cret" not in repr(request)
    assert "s3cret" not in request.redacted_url()
    assert "s3cret" in request.full_url()
