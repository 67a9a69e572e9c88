"""Figure 2: ``AsyncClient`` against a bare ``aiohttp`` loop, same requests, same server.

TwSMS sends (one number per request), zero added latency, the sandbox's rate limit off,
50 requests in flight on both sides; alternated twice to even out drift.
"""

from __future__ import annotations

import asyncio
import sys
import time
from urllib.parse import urlencode

import aiohttp

from bench.common import control, dsn, numbers, sandbox_process, save
from formosms import AsyncClient
from formosms.providers import from_dsn

COUNT = 4_000
CONCURRENCY = 50


async def bare(base: str) -> float:
    url = f"{base}/twsms/json/sms_send.php"
    bodies = [
        urlencode({"username": "demo", "password": "demo-secret", "mobile": n, "message": "overhead"})
        for n in numbers(COUNT, start=40_000_000)
    ]
    limit = asyncio.Semaphore(CONCURRENCY)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(body: str) -> None:
            async with limit, session.post(url, data=body, headers=headers) as reply:
                await reply.read()

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        return time.perf_counter() - started


async def ours(base: str) -> float:
    client = AsyncClient(from_dsn(dsn("twsms", base)), concurrency=CONCURRENCY, rate_limit=0)
    started = time.perf_counter()
    try:
        result = await client.send(numbers(COUNT, start=50_000_000), "overhead")
    finally:
        await client.close()
    assert len(result.accepted) == COUNT
    return time.perf_counter() - started


def main() -> int:
    with sandbox_process() as base:
        control(base, "POST", "/twsms/faults", json={"rate_limit": None})
        runs: dict[str, list[float]] = {"aiohttp": [], "formosms": []}
        for _ in range(2):
            runs["aiohttp"].append(COUNT / asyncio.run(bare(base)))
            runs["formosms"].append(COUNT / asyncio.run(ours(base)))
    bare_rps = max(runs["aiohttp"])
    ours_rps = max(runs["formosms"])
    ratio = ours_rps / bare_rps
    print(f"bare aiohttp {bare_rps:7.0f} req/s   AsyncClient {ours_rps:7.0f} req/s   ratio {ratio:.2f} (target ≥ 0.70)")
    save(
        "client_overhead",
        {
            "requests": COUNT,
            "concurrency": CONCURRENCY,
            "runs_rps": runs,
            "aiohttp_rps": round(bare_rps),
            "formosms_rps": round(ours_rps),
            "ratio": round(ratio, 3),
            "target": 0.70,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
