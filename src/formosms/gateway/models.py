"""The API's input, and its validation into store rows (422 naming the field, nothing written)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, Field

from formosms import phone
from formosms.errors import InvalidRecipient
from formosms.gateway.routing import Router, needed_features
from formosms.gateway.store import NewMessage

MAX_RECIPIENTS = 10_000
MAX_TEXT = 2_000
MAX_MMS_BYTES = 300 * 1024
#: options a caller may pass through; callback URLs and record numbers are the gateway's
OPTIONS = frozenset({"flash", "subject", "wap_url", "two_way", "reply_url", "reply_days", "long", "encoding"})


class PersonalizedIn(BaseModel):
    to: str
    text: str
    metadata: dict[str, str] = Field(default_factory=dict)


class MMSIn(BaseModel):
    data: str = Field(description="The image, base64")
    type: str = Field("jpg", description="jpg, jpeg, png or gif")
    subject: str = ""


class MessageIn(BaseModel):
    """One text to ``to`` (one number or a list), or ``messages`` each with its own text."""

    to: str | list[str] | None = None
    text: str | None = None
    messages: list[PersonalizedIn] | None = None
    provider: str | None = None
    schedule_at: datetime | None = None
    validity: int | None = Field(None, description="Seconds the message stays valid")
    metadata: dict[str, str] = Field(default_factory=dict)
    callback_url: str | None = Field(None, description="Status changes of these messages are POSTed here")
    at_least_once: bool = Field(False, description="Re-send messages whose outcome is unknown")
    options: dict[str, Any] = Field(default_factory=dict)
    mms: MMSIn | None = None


def _invalid(loc: list[str | int], msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", *loc], "msg": msg, "type": "value_error"}])


def validate_submission(body: MessageIn, router: Router) -> list[NewMessage]:
    """Every check before anything is written; raises 422 naming the first bad field."""
    pairs: list[tuple[list[str | int], str, str, dict[str, str]]] = []  # (loc, number, text, metadata)
    if body.messages is not None:
        if body.to is not None or body.text is not None:
            raise _invalid(["messages"], "give either to + text or messages, not both")
        for i, item in enumerate(body.messages):
            pairs.append((["messages", i, "to"], item.to, item.text, {**body.metadata, **item.metadata}))
    else:
        if body.to is None:
            raise _invalid(["to"], "field required")
        if body.text is None:
            raise _invalid(["text"], "field required")
        numbers = [body.to] if isinstance(body.to, str) else body.to
        for i, number in enumerate(numbers):
            pairs.append((["to", i] if not isinstance(body.to, str) else ["to"], number, body.text, body.metadata))
    if not pairs:
        raise _invalid(["messages" if body.messages is not None else "to"], "no recipient")
    if len(pairs) > MAX_RECIPIENTS:
        raise _invalid(["to"], f"at most {MAX_RECIPIENTS} recipients per request")
    if body.provider is not None and body.provider not in router.providers:
        raise _invalid(
            ["provider"], f"unknown provider {body.provider!r} (known: {', '.join(sorted(router.providers))})"
        )
    when = _schedule(body.schedule_at)
    if body.validity is not None and not 60 <= body.validity <= 3 * 86400:
        raise _invalid(["validity"], "validity must be between 60 and 259200 seconds")
    if body.callback_url is not None and not body.callback_url.startswith(("http://", "https://")):
        raise _invalid(["callback_url"], "must be an http(s) URL")
    unknown = sorted(set(body.options) - OPTIONS)
    if unknown:
        raise _invalid(["options", unknown[0]], f"unknown option (allowed: {', '.join(sorted(OPTIONS))})")
    options = dict(body.options)
    if body.mms is not None:
        options["mms"] = _mms(body.mms)
    out = []
    for loc, number, text, metadata in pairs:
        try:
            recipient = phone.normalize(number)
        except InvalidRecipient as exc:
            raise _invalid(loc, exc.message) from None
        text_loc: list[str | int] = [*loc[:-1], "text"] if loc[0] == "messages" else ["text"]
        if not text or not text.strip():
            raise _invalid(text_loc, "text is empty")
        if len(text) > MAX_TEXT:
            raise _invalid(text_loc, f"text longer than {MAX_TEXT} characters")
        needed = needed_features(options, recipient)
        names = [body.provider] if body.provider else list(router.providers)
        if not any(needed <= router.providers[n].provider.features for n in names):
            wanted = ", ".join(sorted(f.value for f in needed)) or "sms"
            raise _invalid(loc, f"no configured provider can send this ({wanted})")
        out.append(
            NewMessage(
                recipient=recipient,
                text=text,
                schedule_at=when,
                validity=body.validity,
                options=options,
                metadata=metadata,
                callback_url=body.callback_url,
                provider=body.provider,
                at_least_once=body.at_least_once,
            )
        )
    return out


def _schedule(when: datetime | None) -> float | None:
    if when is None:
        return None
    if when.tzinfo is None:
        raise _invalid(["schedule_at"], "must include a time zone offset, e.g. 2026-12-01T09:30:00+08:00")
    import time

    stamp = when.timestamp()
    if stamp <= time.time():
        raise _invalid(["schedule_at"], "is in the past")
    return stamp


def _mms(mms: MMSIn) -> dict[str, str]:
    try:
        data = base64.b64decode(mms.data, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(["mms", "data"], "not valid base64") from None
    if not data:
        raise _invalid(["mms", "data"], "empty image")
    if len(data) > MAX_MMS_BYTES:
        raise _invalid(["mms", "data"], f"image over {MAX_MMS_BYTES // 1024} KB")
    if mms.type.lower() not in ("jpg", "jpeg", "png", "gif"):
        raise _invalid(["mms", "type"], "jpg, jpeg, png or gif")
    return {"data": mms.data, "type": mms.type.lower(), "subject": mms.subject}
