"""Hostile input against the REST API: schemathesis generates requests from the published
OpenAPI schema; no combination may produce a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from formosms.gateway.api import create_app
from formosms.gateway.config import ProviderSettings, Settings
from formosms.gateway.runtime import open_gateway
from tests.conftest import secret

_TMP = Path(__import__("tempfile").mkdtemp(prefix="formosms-schemathesis-"))
_SETTINGS = Settings(
    database=f"sqlite:///{_TMP / 'api.db'}",
    providers={
        "e8d": ProviderSettings(name="e8d", dsn="every8d://u:pw-schemathesis@127.0.0.1:9/x?scheme=http"),
        "tw": ProviderSettings(name="tw", dsn="twsms://u:pw-schemathesis@127.0.0.1:9/x?scheme=http"),
    },
)
_GATEWAY = open_gateway(_SETTINGS)
_KEY = secret(_GATEWAY.store.create_api_key("schemathesis"))
secret("pw-schemathesis")
APP = create_app(_SETTINGS, _GATEWAY.store, _GATEWAY.router, with_workers=False)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {_KEY}"})
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
