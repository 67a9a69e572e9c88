"""Gateway settings: ``formosms.toml``, every value overridable by the environment.

``FORMOSMS_<SECTION>_<KEY>`` overrides ``[section] key``: ``FORMOSMS_GATEWAY_DATABASE``,
``FORMOSMS_PROVIDERS_E8D_DSN`` (which also creates provider ``e8d`` when the file has
none). With no file and no environment: SQLite in ``./formosms.db`` and no provider.

```toml
[gateway]
database = "sqlite:///formosms.db"        # or "postgresql://user@host/db"
public_url = "https://sms.example.com.tw" # where providers reach /webhooks/...
notify_url = "https://app.example.com.tw/sms-events"   # status changes and replies
notify_secret = "…"                       # HMAC-SHA256 key for X-Formosms-Signature

[providers.e8d]
dsn = "every8d://UID:PWD@"
priority = 1

[[routes]]                                 # first match wins
to = "+86*"                                # fnmatch on E.164, or TW / CN / INTL
providers = ["twsms"]
```
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from formosms.errors import ConfigurationError
from formosms.model import Feature
from formosms.providers.base import Provider, from_dsn
from formosms.redact import redact


@dataclass
class ProviderSettings:
    name: str
    dsn: str
    priority: int = 1
    weight: float = 1.0
    rate_limit: float | None = None  # requests/s; None: the provider's documented figure
    concurrency: int = 20
    poll_interval: float = 30.0  # seconds between status polls for messages without callbacks
    callbacks: bool = True  # False: poll statuses even when a public URL is set
    #: with callbacks, a message still ``submitted`` after this many seconds is polled
    #: anyway (a callback lost while the gateway was down must not leave it hanging)
    callback_grace: float = 600.0

    def build(self) -> Provider:
        return from_dsn(self.dsn)

    def __repr__(self) -> str:
        # no provider is built here: a repr must not fail on a bad DSN (or show it)
        return f"ProviderSettings(name={self.name!r}, dsn={redact_dsn(self.dsn)!r})"


_USERINFO = re.compile(r"^([A-Za-z][\w+.-]*://[^:/@]*:).*@", re.DOTALL)


def redact_dsn(dsn: str) -> str:
    """``twsms://user:***@``: everything between the user name and the last ``@`` masked."""
    password = unquote(urlsplit(dsn).password or "")
    return redact(_USERINFO.sub(r"\1***@", dsn), [password])


@dataclass
class RouteSettings:
    to: str = "*"
    providers: list[str] = field(default_factory=list)
    feature: str | None = None
    cheapest: bool = False


@dataclass
class Settings:
    database: str = "sqlite:///formosms.db"
    public_url: str | None = None
    webhook_secret: str | None = None
    notify_url: str | None = None
    notify_secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    claim_batch: int = 500
    max_attempts: int = 5
    at_least_once: bool = False
    stale_after: float = 60.0
    providers: dict[str, ProviderSettings] = field(default_factory=dict)
    routes: list[RouteSettings] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Settings(database={redact_dsn(self.database)!r}, providers={sorted(self.providers)})"


_GATEWAY_KEYS = {
    "database": str,
    "public_url": str,
    "webhook_secret": str,
    "notify_url": str,
    "notify_secret": str,
    "host": str,
    "port": int,
    "claim_batch": int,
    "max_attempts": int,
    "at_least_once": bool,
    "stale_after": float,
}
_PROVIDER_KEYS = {
    "dsn": str,
    "priority": int,
    "weight": float,
    "rate_limit": float,
    "concurrency": int,
    "poll_interval": float,
    "callbacks": bool,
    "callback_grace": float,
}


def _cast(kind: type, value: Any, where: str) -> Any:
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: expected {kind.__name__}, got {value!r}") from None


def load(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (default ``./formosms.toml`` if it exists), then apply the environment."""
    env = os.environ if env is None else env
    file = Path(path or env.get("FORMOSMS_CONFIG", "formosms.toml"))
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{file}: {exc}") from None
    elif path is not None:
        raise ConfigurationError(f"{file}: no such file")
    settings = Settings()
    for section in data:
        if section not in ("gateway", "providers", "routes"):
            raise ConfigurationError(f"{file}: unknown key {section} (sections: gateway, providers, routes)")
    for key, value in _table(data, "gateway", file).items():
        if key not in _GATEWAY_KEYS:
            raise ConfigurationError(f"{file}: unknown key gateway.{key}")
        setattr(settings, key, _cast(_GATEWAY_KEYS[key], value, f"gateway.{key}"))
    for name, table in _table(data, "providers", file).items():
        if not isinstance(table, dict):
            raise ConfigurationError(f"{file}: providers.{name} must be a table")
        settings.providers[name] = _provider(name, table, str(file))
    routes = data.get("routes") or []
    if not isinstance(routes, list):
        raise ConfigurationError(f"{file}: routes must be an array of tables ([[routes]])")
    for i, route in enumerate(routes):
        settings.routes.append(_route(i, route, str(file)))
    _apply_env(settings, env)
    for route in settings.routes:
        for name in route.providers:
            if name not in settings.providers:
                raise ConfigurationError(f"route to {route.to!r} names unknown provider {name!r}")
    return settings


def _table(data: Mapping[str, Any], key: str, file: Path) -> Mapping[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigurationError(f"{file}: {key} must be a table")
    return value


_ROUTE_KEYS = {"to": str, "providers": list, "feature": str, "cheapest": bool}


def _route(i: int, route: Any, where: str) -> RouteSettings:
    if not isinstance(route, dict):
        raise ConfigurationError(f"{where}: routes[{i}] must be a table")
    for key, value in route.items():
        if key not in _ROUTE_KEYS:
            raise ConfigurationError(f"{where}: unknown key routes[{i}].{key}")
        if not isinstance(value, _ROUTE_KEYS[key]):
            raise ConfigurationError(f"{where}: routes[{i}].{key} must be a {_ROUTE_KEYS[key].__name__}")
    if not all(isinstance(p, str) for p in route.get("providers", [])):
        raise ConfigurationError(f"{where}: routes[{i}].providers must be provider names")
    features = {f.value for f in Feature}
    if route.get("feature") is not None and route["feature"] not in features:
        raise ConfigurationError(
            f"{where}: routes[{i}].feature {route['feature']!r} is not one of {', '.join(sorted(features))}"
        )
    return RouteSettings(**route)


def _provider(name: str, table: Mapping[str, Any], where: str) -> ProviderSettings:
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _PROVIDER_KEYS:
            raise ConfigurationError(f"{where}: unknown key providers.{name}.{key}")
        values[key] = _cast(_PROVIDER_KEYS[key], value, f"providers.{name}.{key}")
    if "dsn" not in values:
        raise ConfigurationError(f"{where}: providers.{name} needs a dsn")
    return ProviderSettings(name=name, **values)


def _apply_env(settings: Settings, env: Mapping[str, str]) -> None:
    overrides: list[tuple[str, str, str, str]] = []  # (variable, name as written, key, value)
    for var, value in env.items():
        if var.startswith("FORMOSMS_GATEWAY_"):
            key = var.removeprefix("FORMOSMS_GATEWAY_").lower()
            if key not in _GATEWAY_KEYS:
                raise ConfigurationError(f"{var}: unknown key gateway.{key}")
            setattr(settings, key, _cast(_GATEWAY_KEYS[key], value, var))
        elif var.startswith("FORMOSMS_PROVIDERS_"):
            rest = var.removeprefix("FORMOSMS_PROVIDERS_")
            found = next((k for k in _PROVIDER_KEYS if rest.endswith("_" + k.upper())), None)
            if found is None or len(rest) <= len(found) + 1:
                keys = "|".join(k.upper() for k in _PROVIDER_KEYS)
                raise ConfigurationError(f"{var}: unknown key (FORMOSMS_PROVIDERS_<NAME>_<{keys}>)")
            overrides.append((var, rest[: -len(found) - 1], found, value))
    # DSNs first: a provider the environment creates takes its other keys in any order
    overrides.sort(key=lambda o: o[2] != "dsn")
    for var, written, key, value in overrides:
        # FORMOSMS_PROVIDERS_MY_TW_DSN is [providers.my_tw] or [providers.my-tw]
        name = next(
            (n for n in settings.providers if n.upper().replace("-", "_") == written.upper()),
            written.lower().replace("_", "-"),
        )
        current = settings.providers.get(name)
        if current is None:
            if key != "dsn":
                raise ConfigurationError(f"{var}: no provider {name!r} (give its DSN first)")
            settings.providers[name] = ProviderSettings(name=name, dsn=value)
        else:
            setattr(current, key, _cast(_PROVIDER_KEYS[key], value, var))
