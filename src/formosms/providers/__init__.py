"""The provider classes, one module per provider API, and the registry (``from_dsn``).

Adding a provider: one module here (codec + class decorated with ``@register``), a line
below, an emulator in ``formosms.sandbox``, fixtures from its document. See
``ADDING_A_PROVIDER.md``.
"""

from formosms.providers.base import MessageRef, Provider, from_dsn, register, registry
from formosms.providers.every8d import Every8d
from formosms.providers.every8d_soap import Every8dSoap
from formosms.providers.smsget import SMSGet
from formosms.providers.smsgo import SMSGo
from formosms.providers.twsms import TwSMS

__all__ = [
    "Every8d",
    "Every8dSoap",
    "MessageRef",
    "Provider",
    "SMSGet",
    "SMSGo",
    "TwSMS",
    "from_dsn",
    "register",
    "registry",
]
