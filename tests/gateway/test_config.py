"""``formosms.toml`` and ``FORMOSMS_*``: parsing, overrides, refusals, no secret in a repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from formosms.errors import ConfigurationError
from formosms.gateway.config import ProviderSettings, RouteSettings, Settings, load
from formosms.providers.twsms import TwSMS

TOML = """
[gateway]
database = "postgresql://gw:db-secret@db.example/outbox"
public_url = "https://sms.example.com.tw"
notify_url = "https://app.example.com.tw/sms-events"
port = 8080
at_least_once = true
stale_after = 30

[providers.e8d]
dsn = "twsms://UID:e8d-password@"
priority = 1
weight = 2.5

[providers.my_tw]
dsn = "twsms://USER:tw-password@"
priority = 2
rate_limit = 100
callbacks = false

[[routes]]
to = "+86*"
providers = ["my_tw"]

[[routes]]
to = "INTL"
feature = "mms"
cheapest = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "formosms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load(env={"FORMOSMS_CONFIG": str(tmp_path / "absent.toml")})
    assert settings.database == "sqlite:///formosms.db"
    assert settings.providers == {} and settings.routes == []
    assert (settings.host, settings.port, settings.at_least_once) == ("127.0.0.1", 8000, False)


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no such file"):
        load(tmp_path / "absent.toml", env={})


def test_toml(tmp_path: Path) -> None:
    settings = load(write(tmp_path, TOML), env={})
    assert settings.database.startswith("postgresql://gw:")
    assert settings.public_url == "https://sms.example.com.tw"
    assert settings.port == 8080 and settings.at_least_once is True and settings.stale_after == 30.0
    e8d, tw = settings.providers["e8d"], settings.providers["my_tw"]
    assert (e8d.priority, e8d.weight, e8d.rate_limit, e8d.callbacks) == (1, 2.5, None, True)
    assert (tw.priority, tw.rate_limit, tw.callbacks) == (2, 100.0, False)
    assert isinstance(tw.build(), TwSMS)
    assert settings.routes == [
        RouteSettings(to="+86*", providers=["my_tw"]),
        RouteSettings(to="INTL", feature="mms", cheapest=True),
    ]


def test_environment_overrides(tmp_path: Path) -> None:
    env = {
        "FORMOSMS_GATEWAY_DATABASE": "sqlite:///other.db",
        "FORMOSMS_GATEWAY_PORT": "9000",
        "FORMOSMS_GATEWAY_AT_LEAST_ONCE": "no",
        "FORMOSMS_PROVIDERS_E8D_DSN": "twsms://UID:from-env@",
        "FORMOSMS_PROVIDERS_MY_TW_PRIORITY": "7",  # [providers.my_tw]: underscores in the name
        "FORMOSMS_PROVIDERS_MY_TW_CALLBACKS": "true",
        "FORMOSMS_API_KEY": "not a setting of the gateway",
    }
    settings = load(write(tmp_path, TOML), env=env)
    assert settings.database == "sqlite:///other.db" and settings.port == 9000
    assert settings.at_least_once is False
    assert settings.providers["e8d"].dsn == "twsms://UID:from-env@"
    assert settings.providers["e8d"].priority == 1  # the rest of the table stays
    assert settings.providers["my_tw"].priority == 7 and settings.providers["my_tw"].callbacks is True
    assert sorted(settings.providers) == ["e8d", "my_tw"]


def test_environment_creates_a_provider(tmp_path: Path) -> None:
    # the other keys may come before the DSN in the environment
    env = {
        "FORMOSMS_PROVIDERS_TW2_PRIORITY": "3",
        "FORMOSMS_PROVIDERS_TW2_RATE_LIMIT": "50",
        "FORMOSMS_PROVIDERS_TW2_DSN": "twsms://u:p4ss@",
        "FORMOSMS_CONFIG": str(tmp_path / "absent.toml"),
    }
    settings = load(env=env)
    tw2 = settings.providers["tw2"]
    assert (tw2.dsn, tw2.priority, tw2.rate_limit) == ("twsms://u:p4ss@", 3, 50.0)
    assert isinstance(tw2.build(), TwSMS)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[gateway]\ndatabse = 'x'\n", "gateway.databse"),
        ("[gatway]\ndatabase = 'x'\n", "gatway"),
        ("[providers.tw]\ndsn = 'twsms://u:p@'\nprority = 1\n", "providers.tw.prority"),
        ("[providers.tw]\npriority = 1\n", "providers.tw needs a dsn"),
        ("[providers.tw]\ndsn = 'twsms://u:p@'\npriority = 'high'\n", "providers.tw.priority"),
        ("[[routes]]\nto = '+86*'\nprovider = ['tw']\n", "routes[0].provider"),
        ("[[routes]]\nto = '+86*'\nproviders = 'tw'\n", "routes[0].providers"),
        ("[[routes]]\nfeature = 'fax'\n", "routes[0].feature"),
        ("[gateway\n", "formosms.toml"),
    ],
)
def test_unknown_or_bad_keys_are_refused(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load(write(tmp_path, text), env={})
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("var", "named"),
    [
        ("FORMOSMS_GATEWAY_DATABSE", "FORMOSMS_GATEWAY_DATABSE"),
        ("FORMOSMS_PROVIDERS_TW_PASSWORD", "FORMOSMS_PROVIDERS_TW_PASSWORD"),
        ("FORMOSMS_PROVIDERS_NOPE_PRIORITY", "nope"),
    ],
)
def test_unknown_environment_keys_are_refused(tmp_path: Path, var: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        load(env={var: "1", "FORMOSMS_CONFIG": str(tmp_path / "absent.toml")})


def test_routes_naming_unknown_providers_are_refused(tmp_path: Path) -> None:
    text = "[providers.tw]\ndsn = 'twsms://u:p@'\n[[routes]]\nto = 'CN'\nproviders = ['tw', 'e8d']\n"
    with pytest.raises(ConfigurationError, match="unknown provider 'e8d'"):
        load(write(tmp_path, text), env={})
    # the environment can supply it
    settings = load(write(tmp_path, text), env={"FORMOSMS_PROVIDERS_E8D_DSN": "twsms://x:y@"})
    assert settings.routes[0].providers == ["tw", "e8d"]


def test_no_password_in_reprs(tmp_path: Path) -> None:
    settings = load(write(tmp_path, TOML), env={"FORMOSMS_PROVIDERS_ODD_DSN": "twsms://u:p%40ss/w#rd?x@@"})
    shown = repr(settings) + repr(settings.providers) + str(settings.providers)
    for secret in ("e8d-password", "tw-password", "db-secret", "p%40ss", "p@ss", "w#rd"):
        assert secret not in shown
    assert "UID" in repr(settings.providers["e8d"])
    # a DSN that cannot even be built still has a repr
    bad = ProviderSettings(name="x", dsn="nosuch://user:hunter22@")
    assert "hunter22" not in repr(bad) and "nosuch" in repr(bad)
    assert "db.example" in repr(settings) and "db-secret" not in repr(Settings(database=settings.database))


def test_open_gateway(tmp_path: Path) -> None:
    from formosms.gateway.runtime import open_gateway

    def settings() -> Settings:
        path = write(tmp_path, f"[gateway]\ndatabase = 'sqlite:///{tmp_path / 'gw.db'}'\n")
        return load(path, env={"FORMOSMS_PROVIDERS_TW_DSN": "twsms://u:p@"})

    first = open_gateway(settings())
    try:
        assert first.store.version() >= 3
        assert list(first.router.providers) == ["tw"]
        assert first.settings.webhook_secret and len(first.settings.webhook_secret) >= 16
    finally:
        first.store.close()
    second = open_gateway(settings())  # the secret in the callback URLs survives a restart
    try:
        assert second.settings.webhook_secret == first.settings.webhook_secret
    finally:
        second.store.close()
