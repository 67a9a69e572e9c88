"""EVERY8D (互動資通) Web Services (SOAP) API 2.1 (``every8d-soap-api-2.1.txt``, v2.0.4).

``Every8dSoap("UID", "PWD")`` logs in with ``getConnection`` (1.1), sends with ``sendSMS``
(1.2) or ``sendMessage`` when a validity is given (2.2), personalized texts with
``sendParamSMS`` (2.3), MMS with ``sendMMS`` (5.1), queries ``getDeliveryStatus`` /
``getMMSDeliveryStatus`` (3.2, 5.2), ``getCredit`` (4.1) and cancels with ``eraseBooking`` /
``eraseMMSBooking`` (4.2, 4.3). Reply strings, codes and pricing are the HTTP API's
(``every8d_codes``); the callback is the same GET (3.1), parsed by ``parse_webhook`` here.

Quirks and decisions:

* SOAP 1.2 envelopes (``application/soap+xml; charset=utf-8``) in namespace
  ``http://tempuri.org/``. Each ``…Result`` element holds a *string* that is itself XML
  (getConnection, getDeliveryStatus) or CSV (sends): both layers are parsed with
  defusedxml (no DTDs, no entities), and every input is XML-escaped exactly once.
* The session: "一個帳號只會有一個 SessionKey" and ``closeConnection`` kills it for every
  system on the account (1.1). One key per provider instance, acquired lazily by the
  first operation that needs it and reused; on ``-301`` (session gone) we log in again
  ONCE and repeat the call; a failed login is raised, never retried (10 failures lock the
  account, -999). ``closeConnection`` is never called implicitly: ``close_session()``.
  Two exchanges running at once on a fresh instance may both log in (the document says an
  account has one key, so both get the same one).
* The key is a secret like the password: redacted from reprs, logs and errors.
* ``getDeliveryStatus``: pages of 1000 (pageNo "", "2", "3"…) until COUNT rows; MOBILE
  comes padded with spaces (trimmed); the document's sample writes ``< NAME>`` (not XML):
  a reply that does not parse is retried once with ``< TAG`` repaired, and NAME is never
  needed. Replies (``REPLY_SMS``) are kept in ``DeliveryReport.raw["replies"]``.
* ``sendParamSMS`` contentXML: ``<REPS><USER NAME MOBILE EMAIL SENDTIME><![CDATA[text]]>``;
  MOBILE in ``+886…`` form ("請務必轉為+886933123456"); a text containing ``]]>`` is split
  across two CDATA sections; the whole contentXML is then escaped as the parameter value.
* ``sendMMS`` attachment: 5.1 says "binary base64 encoded + urlEncode" (the HTTP API says
  base64 only). We follow the SOAP document: base64, then percent-encoded (``+`` → ``%2B``,
  ``/`` → ``%2F``, ``=`` → ``%3D``), then XML-escaped like every value. Types jpg/jpeg/png.
* ``sendMMS``, ``getMMSDeliveryStatus`` (5) and ``eraseMMSBooking`` go to MMS.asmx: 4.3 is
  printed under section 4 but absent from the table of contents, i.e. it came with the MMS
  web service (revision 2.0.4). Everything else goes to SMS.asmx; one login serves both.
* Delivery callbacks are configured by EVERY8D for the account (3.1 "請提供…URL 給我們做系統
  設定"), so there is no per-send ``callback_url`` here.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from urllib.parse import quote

from formosms.errors import FormosmsError, InvalidRequest, MalformedResponse
from formosms.model import (
    CancelResult,
    DeliveryReport,
    Estimate,
    Feature,
    Personalized,
    SendResult,
    WebhookResult,
)
from formosms.providers import every8d
from formosms.providers.base import MessageRef, OutboundMMS, OutboundSMS, Provider, chunks, register
from formosms.providers.every8d_codes import (
    ERRORS,
    STATUS,
    batch_ids,
    check_mms,
    check_options_values,
    check_text,
    estimate,
    merge_cancels,
    parse_balance,
    parse_cancel,
    reply_code,
    retry_minutes,
    wire_time,
)
from formosms.providers.every8d_soap_codes import (
    CONTENT_TYPE,
    ENDPOINTS,
    NAME,
    SMS_ENDPOINT,
    Call,
    content_xml,
    envelope,
    merge_sends,
    parse_connection,
    parse_status_xml,
    soap_result,
)
from formosms.transport import Exchange, HttpRequest, one

PAGE_SIZE = 1000
MMS_TYPES = frozenset({"jpg", "jpeg", "png"})


# -- the provider -------------------------------------------------------------------------------


@register
class Every8dSoap(Provider):
    """EVERY8D over SOAP API 2.1: ``Every8dSoap(uid, password)``; DSN ``every8d-soap://UID:PWD@``."""

    name = NAME
    features = frozenset(
        {
            Feature.SEND,
            Feature.SCHEDULE,
            Feature.VALIDITY,
            Feature.LONG_SMS,
            Feature.PERSONALIZED,
            Feature.MMS,
            Feature.STATUS_QUERY,
            Feature.DELIVERY_CALLBACK,
            Feature.BALANCE,
            Feature.CANCEL,
            Feature.INTERNATIONAL,
        }
    )
    max_recipients = 1000
    default_base_url = "https://oms.every8d.com"
    send_options = frozenset({"subject"})
    rate_limit = None
    dsn_options = frozenset()

    def __init__(self, uid: str, password: str, *, base_url: str | None = None, timeout: float = 10.0):
        super().__init__(uid, password, base_url=base_url, timeout=timeout)
        self._session_key: str | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self._password, self._session_key) if self._session_key else (self._password,)

    @property
    def has_session(self) -> bool:
        return self._session_key is not None

    # -- session --------------------------------------------------------------------------------
    def soap_request(self, operation: str, params: Sequence[tuple[str, str]]) -> HttpRequest:
        return self.request(
            ENDPOINTS.get(operation, SMS_ENDPOINT),
            method="POST",
            content=envelope(operation, params),
            headers=[("Content-Type", CONTENT_TYPE)],
            operation=operation,
        )

    def _result(self, text: str, operation: str) -> str:
        try:
            return soap_result(text, operation, self.name)
        except MalformedResponse as exc:
            raise MalformedResponse(exc.message, body=self.redact(exc.body), provider=self.name) from None

    def login(self) -> Exchange[str]:
        """getConnection once; a failure is raised (never retried: 10 failures lock the account)."""
        request = self.soap_request("getConnection", [("userID", self.username), ("password", self.password)])
        response = yield from one(request)
        text = self._result(response.text, "getConnection")
        try:
            self._session_key = parse_connection(text, self.name)
        except MalformedResponse as exc:
            raise MalformedResponse(exc.message, body=self.redact(exc.body), provider=self.name) from None
        return self._session_key

    def calls(self, calls: Sequence[Call]) -> Exchange[list[str | FormosmsError]]:
        """Run calls concurrently with the shared session; on -301 log in again once and repeat."""
        results: list[str | FormosmsError] = [""] * len(calls)
        pending = list(range(len(calls)))
        relogged = False
        while pending:
            key = self._session_key
            if key is None:
                try:
                    key = yield from self.login()
                except FormosmsError as exc:  # earlier answers are kept: a send may have happened
                    for i in pending:
                        results[i] = exc
                    break
            requests = [self.soap_request(calls[i].operation, [("sessionKey", key), *calls[i].params]) for i in pending]
            outcomes = yield requests
            again = []
            for i, outcome in zip(pending, outcomes, strict=True):
                if isinstance(outcome, FormosmsError):
                    results[i] = outcome
                    continue
                try:
                    text = self._result(outcome.text, calls[i].operation)
                except FormosmsError as exc:
                    results[i] = exc
                    continue
                if reply_code(text) == "-301" and not relogged:
                    again.append(i)
                results[i] = text
            if again:
                relogged = True
                if self._session_key == key:
                    self._session_key = None
            pending = again
        return results

    def call(self, operation: str, params: Sequence[tuple[str, str]] = ()) -> Exchange[str]:
        (result,) = yield from self.calls([Call(operation, tuple(params))])
        if isinstance(result, FormosmsError):
            raise result
        return result

    def close_session(self) -> Exchange[bool]:
        """closeConnection (1.3): ends the account's session for EVERY system using it.

        Call it only when no other system shares the account. True when EVERY8D said "1".
        """
        key = self._session_key
        if key is None:
            return False
        response = yield from one(self.soap_request("closeConnection", [("sessionKey", key)]))
        self._session_key = None
        return self._result(response.text, "closeConnection").strip() == "1"

    # -- local checks and pricing ---------------------------------------------------------------
    def estimate(self, recipients: Sequence[str], text: str) -> Estimate:
        return estimate(self.name, recipients, text)

    def validate(self, message: OutboundSMS) -> None:
        check_options_values(message.options, self.name)
        check_text(message.text, self.name, xml=True)
        check_text(str(message.options.get("subject", "")), self.name, field="subject", xml=True)

    # -- sends ----------------------------------------------------------------------------------
    def build_send(self, message: OutboundSMS, recipients: Sequence[str]) -> Call:
        """1.2 sendSMS(subject, content, mobile, sendTime); 2.2 sendMessage adds retryTime."""
        params = [
            ("subject", str(message.options.get("subject", ""))),
            ("content", message.text),
            ("mobile", ",".join(recipients)),
            ("sendTime", wire_time(message.schedule_at)),
        ]
        if message.validity is None:
            return Call("sendSMS", tuple(params))
        return Call("sendMessage", (*params, ("retryTime", retry_minutes(message.validity))))

    def send(self, message: OutboundSMS) -> Exchange[SendResult]:
        groups = chunks(message.recipients, self.max_recipients)
        results = yield from self.calls([self.build_send(message, g) for g in groups])
        return merge_sends(self.name, groups, results)

    def send_personalized(
        self, items: Sequence[Personalized], *, subject: str = "", schedule_at: datetime | None = None
    ) -> Exchange[SendResult]:
        """2.3 sendParamSMS, up to ``max_recipients`` people per request."""
        self.require(Feature.PERSONALIZED)
        for i, item in enumerate(items):
            check_text(item.text, self.name, field=f"messages[{i}].text", xml=True)
            check_text(item.email, self.name, field=f"messages[{i}].email", xml=True)
            check_text(item.name, self.name, field=f"messages[{i}].name", xml=True)
            if len(item.name) > 50:  # 2.3 NAME "長度 50"
                raise InvalidRequest(
                    f"messages[{i}].name is longer than 50", field=f"messages[{i}].name", provider=self.name
                )
        check_text(subject, self.name, field="subject", xml=True)
        batches = [items[i : i + self.max_recipients] for i in range(0, len(items), self.max_recipients)]
        calls = [
            Call(
                "sendParamSMS",
                (("subject", subject), ("contentXML", content_xml(b)), ("sendTime", wire_time(schedule_at))),
            )
            for b in batches
        ]
        results = yield from self.calls(calls)
        return merge_sends(self.name, [[item.to for item in b] for b in batches], results)

    def build_mms(self, message: OutboundMMS, recipients: Sequence[str], kind: str) -> Call:
        """5.1 sendMMS(subject, content, mobile, sendTime, retryTime, attachment, type)."""
        encoded = quote(base64.b64encode(message.attachment.data).decode("ascii"), safe="")
        return Call(
            "sendMMS",
            (
                ("subject", message.subject),
                ("content", message.text),
                ("mobile", ",".join(recipients)),
                ("sendTime", wire_time(message.schedule_at)),
                ("retryTime", retry_minutes(message.validity)),
                ("attachment", encoded),
                ("type", kind),
            ),
        )

    def send_mms(self, message: OutboundMMS) -> Exchange[SendResult]:
        self.require(Feature.MMS)
        kind = check_mms(message, self.name, types=MMS_TYPES)
        check_text(message.text, self.name, xml=True)
        check_text(message.subject, self.name, field="subject", xml=True)
        groups = chunks(message.recipients, self.max_recipients)
        results = yield from self.calls([self.build_mms(message, g, kind) for g in groups])
        return merge_sends(self.name, groups, results)

    # -- status, balance, cancel ----------------------------------------------------------------
    def status(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[list[DeliveryReport]]:
        """3.2/5.2: every row of each batch, all pages."""
        self.require(Feature.STATUS_QUERY)
        operation = "getMMSDeliveryStatus" if mms else "getDeliveryStatus"
        batches = batch_ids(refs, self.name)
        got: dict[str, list[DeliveryReport]] = {b: [] for b in batches}
        page = dict.fromkeys(batches, 1)
        pending = list(batches)
        while pending:
            calls = [
                Call(operation, (("batchID", b), ("pageNo", "" if page[b] == 1 else str(page[b])))) for b in pending
            ]
            results = yield from self.calls(calls)
            following = []
            for batch, result in zip(pending, results, strict=True):
                if isinstance(result, FormosmsError):
                    raise result
                total, rows = parse_status_xml(result, batch, self.name)
                got[batch] += rows
                if rows and len(got[batch]) < total and page[batch] * PAGE_SIZE < total:
                    page[batch] += 1
                    following.append(batch)
            pending = following
        return [report for b in batches for report in got[b]]

    def balance(self) -> Exchange[Decimal]:
        """4.1 getCredit -> ``2310.00``."""
        self.require(Feature.BALANCE)
        return parse_balance((yield from self.call("getCredit")), self.name)

    def cancel(self, refs: Sequence[MessageRef], *, mms: bool = False) -> Exchange[CancelResult]:
        """4.2 eraseBooking / 4.3 eraseMMSBooking per batch: ``a,b``; empty = not found."""
        self.require(Feature.CANCEL)
        operation = "eraseMMSBooking" if mms else "eraseBooking"
        batches = batch_ids(refs, self.name)
        if not batches:
            raise InvalidRequest("no batch id to cancel", field="batch_id", provider=self.name)
        results = yield from self.calls([Call(operation, (("batchID", b),)) for b in batches])
        parsed: list[CancelResult | FormosmsError] = []
        for batch, result in zip(batches, results, strict=True):
            if isinstance(result, FormosmsError):
                parsed.append(result)
                continue
            try:
                parsed.append(parse_cancel(result, batch, self.name))
            except FormosmsError as exc:
                parsed.append(exc)
        return merge_cancels(self.name, parsed)


def parse_webhook(*, method: str, query: bytes, body: bytes, content_type: str) -> WebhookResult:
    """The SOAP account's callback (3.1) is the HTTP API's GET, with ``USERID`` added."""
    return every8d.parse_webhook(method=method, query=query, body=body, content_type=content_type, provider=NAME)


__all__ = [
    "ERRORS",
    "STATUS",
    "Call",
    "Every8dSoap",
    "content_xml",
    "envelope",
    "parse_connection",
    "parse_status_xml",
    "parse_webhook",
    "soap_result",
]
