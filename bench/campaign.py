"""Figure 1: a 10,000-recipient campaign against the provider's own limit, and against the
loop users write by hand (``requests``, one call per number).

Sandbox: 30 ms added latency, documented rate limits on (TwSMS 500 requests/s, one number
per request). formosms: ``AsyncClient`` with its default pacing (the documented rate).
The hand loop is timed on a sample and extrapolated (running it for 10,000 numbers at
30 ms each would take five minutes per provider).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time

import requests

from bench.common import dsn, numbers, sandbox_process, save
from formosms import AsyncClient
from formosms.providers import from_dsn

PROVIDERS = ["twsms", "smsgo", "smsget", "every8d", "every8d-soap"]
COUNT = 10_000
SAMPLE = 150
LATENCY = 0.030


def hand_loop(base: str, provider: str, count: int) -> float:
    """What a user writes first: one blocking call per number. Returns seconds."""
    session = requests.Session()
    started = time.perf_counter()
    for number in numbers(count, start=30_000_000):
        if provider == "twsms":
            session.post(
                f"{base}/twsms/json/sms_send.php",
                data={"username": "demo", "password": "demo-secret", "mobile": number, "message": "hi"},
            )
        elif provider == "smsgo":
            session.get(
                f"{base}/smsgo/sms_gw/sendsms.aspx",
                params={
                    "username": "demo",
                    "password": "demo-secret",
                    "dstaddr": number,
                    "smbody": "hi",
                    "encoding": "ASCII",
                },
            )
        elif provider == "smsget":
            session.post(
                f"{base}/smsget/api_send.php",
                data={
                    "username": "demo",
                    "password": "demo-secret",
                    "method": "1",
                    "sms_msg": "hi",
                    "phone": number,
                },
            )
        elif provider == "every8d":
            session.post(
                f"{base}/every8d/API21/HTTP/sendSMS.ashx",
                data={"UID": "demo", "PWD": "demo-secret", "MSG": "hi", "DEST": number, "SB": "", "ST": ""},
            )
        else:
            return float("nan")  # a hand-written SOAP loop is not what people write first
    return time.perf_counter() - started


async def formosms_campaign(base: str, provider: str) -> tuple[float, int]:
    client = AsyncClient(from_dsn(dsn(provider, base)), concurrency=64)
    started = time.perf_counter()
    try:
        result = await client.send(numbers(COUNT), "campaign 活動通知")
    finally:
        await client.close()
    return time.perf_counter() - started, len(result.accepted)


def main() -> int:
    rows = []
    with sandbox_process(latency=LATENCY) as base:
        for provider in PROVIDERS:
            seconds, accepted = asyncio.run(formosms_campaign(base, provider))
            p = from_dsn(dsn(provider, base))
            requests_needed = math.ceil(COUNT / p.max_recipients)
            floor = requests_needed / p.rate_limit if p.rate_limit else None
            sample = hand_loop(base, provider, SAMPLE)
            hand = sample / SAMPLE * COUNT
            row = {
                "provider": provider,
                "recipients": COUNT,
                "accepted": accepted,
                "requests": requests_needed,
                "formosms_seconds": round(seconds, 2),
                "limit_seconds": round(floor, 2) if floor else None,
                "vs_limit": round(seconds / floor, 3) if floor else None,
                "hand_loop_seconds_extrapolated": round(hand, 1) if hand == hand else None,
                "speedup_vs_hand_loop": round(hand / seconds, 1) if hand == hand else None,
            }
            rows.append(row)
            limit = f"{row['vs_limit']}× the limit's {floor:.1f} s" if floor else "no documented limit"
            print(
                f"{provider:13} {seconds:7.2f} s for {accepted} ({limit}); hand loop ≈ {hand:7.1f} s"
                f" → {row['speedup_vs_hand_loop']}× faster"
            )
    save(
        "campaign",
        {"latency_seconds": LATENCY, "rows": rows, "targets": {"vs_limit_max": 1.10, "speedup_min": 10}},
    )
    twsms = rows[0]
    ok = (
        twsms["vs_limit"] is not None
        and twsms["vs_limit"] <= 1.10
        and all(r["speedup_vs_hand_loop"] is None or r["speedup_vs_hand_loop"] >= 10 for r in rows)
    )
    print("targets met" if ok else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
