"""The sandbox's own API (not a provider's): inspection, faults, accounts, replies, reset."""

from __future__ import annotations

import httpx

from formosms.sandbox import create_sandbox


async def test_control_api_refuses_bad_input_with_4xx() -> None:
    box = create_sandbox()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=box.app), base_url="http://sandbox") as c:
        assert (await c.get("/_sandbox/nope/messages")).status_code == 404
        assert (await c.post("/_sandbox/twsms/faults", json={"bogus": 1})).status_code == 422
        assert (await c.post("/_sandbox/twsms/reply", json={})).status_code == 422
        assert (await c.post("/_sandbox/twsms/accounts", json={"points": "1"})).status_code == 422
        overview = (await c.get("/_sandbox")).json()
        assert set(overview) == {"smsgo", "twsms", "smsget", "every8d", "every8d-soap"}
        assert (await c.post("/_sandbox/twsms/faults", json={"error_rate": 0.5})).json()["error_rate"] == 0.5
        assert (await c.post("/_sandbox/reset")).json() == {"ok": True}
        faults = (await c.get("/_sandbox/twsms/faults")).json()
        assert faults["error_rate"] == 0.0 and faults["rate_limit"] == 500.0  # the documented limit stays
