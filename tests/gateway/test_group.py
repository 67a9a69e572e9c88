"""Group commit: concurrent callers share transactions and each gets its own answer."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from formosms.gateway.group import GroupCommit
from formosms.gateway.store import Store


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


def test_the_sqlite_write_lock_serves_urgent_waiters_first() -> None:
    from formosms.gateway.db import WriteLock

    lock = WriteLock()
    order: list[str] = []
    lock.acquire()  # a worker's transaction is running

    def take(name: str, urgent: bool) -> None:
        lock.acquire(urgent)
        order.append(name)
        lock.release()

    workers = [threading.Thread(target=take, args=(f"worker{i}", False)) for i in range(3)]
    for t in workers:
        t.start()
    import time

    time.sleep(0.05)  # the workers wait first
    api = threading.Thread(target=take, args=("api", True))
    api.start()
    time.sleep(0.05)
    lock.release()
    for t in [*workers, api]:
        t.join(5)
    assert order[0] == "api" and sorted(order[1:]) == ["worker0", "worker1", "worker2"]


def test_the_sqlite_write_lock_is_shared_with_other_processes(sqlite_store: Store) -> None:
    """A writer in another process (``formosms worker`` beside ``serve``) waits on the lock
    file beside the database, not in SQLite's sleeping busy handler."""
    import fcntl
    import os

    database = sqlite_store.engine.url.database
    assert database is not None
    path = database + "-writer"
    other = os.open(path, os.O_RDWR)  # what another process holds: its own open file
    try:
        with sqlite_store.tx(), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once the transaction ended
        fcntl.flock(other, fcntl.LOCK_UN)
    finally:
        os.close(other)


def test_no_lock_file_means_no_store(tmp_path: Any) -> None:
    from formosms.gateway.store import StoreUnavailable

    store = Store(f"sqlite:///{tmp_path / 'gone' / 'x.db'}")
    try:
        with pytest.raises(StoreUnavailable, match="write lock"), store.tx():
            pass
    finally:
        store.close()
