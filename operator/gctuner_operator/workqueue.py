"""A de-duplicating work queue of pod keys, processed with bounded parallelism.

The controller-runtime idea in a few lines: a key queued twice is processed
once; a key is never processed by two workers at once (a change that arrives
mid-flight runs again afterwards); retries are delayed re-queues.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Hashable
from typing import Callable, Generic, TypeVar

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, work: Callable[[K, bool], Awaitable[None]], parallel: int) -> None:
        self._work = work
        self._parallel = parallel
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._pending: dict[K, bool] = {}  # key -> verify live state
        self._busy: set[K] = set()
        self._again: dict[K, bool] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._parallel)]

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def add(self, key: K, verify: bool = False) -> None:
        """Queue ``key`` now (cancelling a scheduled retry of it)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        if key in self._busy:
            self._again[key] = self._again.get(key, False) or verify
        elif key in self._pending:
            self._pending[key] = self._pending[key] or verify
        else:
            self._pending[key] = verify
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds (a retry), unless queued sooner."""
        if key in self._timers:
            self._timers[key].cancel()
        loop = asyncio.get_running_loop()
        self._timers[key] = loop.call_later(delay, self._fire, key)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key, verify=True)

    def idle(self) -> bool:
        return not self._pending and not self._busy and not self._again

    async def _run(self) -> None:
        while True:
            key = await self._queue.get()
            verify = self._pending.pop(key, False)
            self._busy.add(key)
            try:
                await self._work(key, verify)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the worker; the next event retries
                logger.exception("reconciling %s failed unexpectedly", key)
            finally:
                self._busy.discard(key)
            if key in self._again:
                self.add(key, self._again.pop(key))
