"""Group commit: concurrent requests share one transaction, each answered after it commits.

A transaction on SQLite costs about the same for one row as for hundreds (the write lock,
the connection, the fsync), so requests that arrive while one commits go together in the
next. Nobody waits for a timer: an idle gateway commits each request at once. A failed
commit fails every request in it; what it leaves written is the commit function's affair
(``enqueue_many`` is one transaction; callbacks of two providers are two, and a provider
that retries an event already stored changes nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """``await group(item)`` returns ``commit([..., item, ...])``'s answer for ``item``.

    ``commit`` runs in a thread with a list of items and returns one answer per item, in
    order. ``weight`` and ``limit`` bound how much goes into one transaction.
    ``on_error(items, exc)`` hears of a failed commit (the callers get the exception).
    """

    def __init__(
        self,
        commit: Callable[[list[T]], Sequence[R]],
        *,
        limit: int = 1000,
        weight: Callable[[T], int] = lambda _: 1,
        on_error: Callable[[list[T], Exception], None] | None = None,
    ):
        self.commit = commit
        self.limit = limit
        self.weight = weight
        self.on_error = on_error
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def __call__(self, item: T) -> R:
        if self._queue is None:
            # its own thread: in the shared pool a commit queued behind the workers' jobs
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="group-commit")
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._run(self._queue, self._thread))
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, done))
        return await done

    async def _run(self, queue: asyncio.Queue[tuple[T, asyncio.Future[R]]], thread: ThreadPoolExecutor) -> None:
        while True:
            batch = [await queue.get()]
            size = self.weight(batch[0][0])
            while not queue.empty() and size < self.limit:
                entry = queue.get_nowait()
                batch.append(entry)
                size += self.weight(entry[0])
            items = [item for item, _ in batch]
            try:
                answers = await asyncio.get_running_loop().run_in_executor(thread, self.commit, items)
            except Exception as exc:
                if self.on_error is not None:
                    self.on_error(items, exc)
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), answer in zip(batch, answers, strict=True):
                if not done.done():
                    done.set_result(answer)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            self._thread.shutdown(wait=False)
        self._task = self._queue = self._thread = None
