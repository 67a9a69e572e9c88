"""Group commit: concurrent callers share transactions and each gets its own answer."""

from __future__ import annotations

import asyncio
import threading

import pytest

from formosms.gateway.group import GroupCommit


async def test_concurrent_callers_share_commits_and_get_their_answers() -> None:
    commits: list[list[int]] = []
    gate = threading.Event()

    def commit(items: list[int]) -> list[int]:
        gate.wait(5)  # the first commit is slow: everyone else queues behind it
        commits.append(items)
        return [i * 10 for i in items]

    group: GroupCommit[int, int] = GroupCommit(commit, limit=1000)
    calls = [asyncio.create_task(group(i)) for i in range(50)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*calls) == [i * 10 for i in range(50)]
    assert sorted(i for batch in commits for i in batch) == list(range(50))
    assert len(commits) < 50
    await group.close()


async def test_the_limit_bounds_a_transaction_by_weight() -> None:
    commits: list[list[str]] = []
    gate = threading.Event()

    def commit(items: list[str]) -> list[int]:
        gate.wait(5)
        commits.append(items)
        return [len(i) for i in items]

    group: GroupCommit[str, int] = GroupCommit(commit, limit=10, weight=len)
    calls = [asyncio.create_task(group("x" * 4)) for _ in range(9)]
    await asyncio.sleep(0.05)
    gate.set()
    assert await asyncio.gather(*calls) == [4] * 9
    assert all(sum(len(i) for i in batch) <= 12 for batch in commits)  # stops once over the limit
    await group.close()


async def test_a_failed_commit_fails_everyone_in_it_and_the_next_one_works() -> None:
    failures: list[tuple[list[int], str]] = []
    broken = True

    def commit(items: list[int]) -> list[int]:
        if broken:
            raise RuntimeError("disk full")
        return items

    group: GroupCommit[int, int] = GroupCommit(commit, on_error=lambda items, exc: failures.append((items, str(exc))))
    with pytest.raises(RuntimeError, match="disk full"):
        await group(1)
    assert failures == [([1], "disk full")]
    broken = False
    assert await group(2) == 2
    await group.close()
