"""Faithful local emulators of the five provider APIs, so everything runs offline.

>>> from formosms.sandbox import create_sandbox, ServerThread     # doctest: +SKIP
>>> sandbox = create_sandbox()
>>> with ServerThread(sandbox.app) as server:
...     dsn = sandbox.dsn("twsms", server.url)
"""

from formosms.sandbox.app import DEMO_PASSWORD, DEMO_USER, Sandbox, create_sandbox
from formosms.sandbox.core import Account, Faults, SandboxConfig
from formosms.sandbox.emulator import Emulator
from formosms.sandbox.server import ServerThread

__all__ = [
    "DEMO_PASSWORD",
    "DEMO_USER",
    "Account",
    "Emulator",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "ServerThread",
    "create_sandbox",
]
