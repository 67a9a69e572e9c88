"""formosms: send SMS in Taiwan through SMSGo, TwSMS, SMS-Get or EVERY8D with one interface.

>>> from formosms import Client
>>> from formosms.providers import TwSMS
>>> with Client(TwSMS("user", "password")) as sms:          # doctest: +SKIP
...     sms.send("0912-345-678", "您的驗證碼是 123456")
"""

from formosms import errors
from formosms.client import AsyncClient, Client
from formosms.errors import FormosmsError
from formosms.model import (
    Attachment,
    CancelResult,
    DeliveryReport,
    Encoding,
    Estimate,
    Feature,
    InboundMessage,
    MessageResult,
    Personalized,
    SendResult,
    Status,
)
from formosms.providers.base import MessageRef

__all__ = [
    "AsyncClient",
    "Attachment",
    "CancelResult",
    "Client",
    "DeliveryReport",
    "Encoding",
    "Estimate",
    "Feature",
    "FormosmsError",
    "InboundMessage",
    "MessageRef",
    "MessageResult",
    "Personalized",
    "SendResult",
    "Status",
    "errors",
]
__version__ = "0.1.0"
