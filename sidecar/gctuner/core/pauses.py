"""How often the collector ran and how long it stopped the process.

Recorded through ``gc.callbacks``. A callback runs inside whatever allocation
triggered the collection, in whatever thread, possibly while that thread holds
a lock of its own: taking a lock here can deadlock (prometheus_client removed
its GC pause histogram for that reason). So this module takes none. It only
stores ints in preallocated lists, which the GIL keeps consistent.

On a free-threaded build two threads may bump the same counter at once and
lose an increment: the numbers can be slightly low, never a deadlock. Counts
are per process since the recorder was installed; a forked child starts with
its parent's numbers.
"""

from __future__ import annotations

import bisect
import gc
import time
from types import ModuleType
from typing import Any, Callable

BUCKETS_NS = (
    100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
    10_000_000, 25_000_000, 50_000_000,
    100_000_000, 250_000_000, 1_000_000_000,
)  # fmt: skip
"""Upper bounds of the pause histogram, from 0.1 ms to 1 s; one more bucket
holds the longer pauses."""

GENERATIONS = 3
"""Generations 0-2; the incremental collector of 3.14 reports 0-2 as well."""


class PauseRecorder:
    """Collections, objects collected and pause times, per generation."""

    def __init__(
        self,
        gc_module: ModuleType | Any = gc,
        clock: Callable[[], int] = time.perf_counter_ns,
        buckets_ns: tuple[int, ...] = BUCKETS_NS,
    ) -> None:
        self._gc = gc_module
        self._clock = clock
        self.buckets_ns = buckets_ns
        self._callback = self._on_gc  # one bound method, so remove() finds it
        self._started: int | None = None
        self._collections = [0] * GENERATIONS
        self._collected = [0] * GENERATIONS
        self._uncollectable = [0] * GENERATIONS
        self._pause_total = [0] * GENERATIONS
        self._pause_max = [0] * GENERATIONS
        self._histogram = [[0] * (len(buckets_ns) + 1) for _ in range(GENERATIONS)]

    @property
    def installed(self) -> bool:
        return self._callback in self._gc.callbacks

    def install(self) -> None:
        """Start recording (idempotent)."""
        if not self.installed:
            self._gc.callbacks.append(self._callback)

    def uninstall(self) -> None:
        """Stop recording; the numbers so far stay readable."""
        if self.installed:
            self._gc.callbacks.remove(self._callback)
        self._started = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        # Must never raise: an exception here is printed from inside the
        # collector. Hence .get() and the guard against a "stop" whose "start"
        # came before install().
        if phase == "start":
            self._started = self._clock()
            return
        started, self._started = self._started, None
        if started is None:
            return
        pause = self._clock() - started
        generation = min(max(info.get("generation", 0), 0), GENERATIONS - 1)
        self._collections[generation] += 1
        self._collected[generation] += info.get("collected", 0)
        self._uncollectable[generation] += info.get("uncollectable", 0)
        self._pause_total[generation] += pause
        if pause > self._pause_max[generation]:
            self._pause_max[generation] = pause
        self._histogram[generation][bisect.bisect_left(self.buckets_ns, pause)] += 1

    def snapshot(self) -> dict[str, Any]:
        """The numbers as JSON-ready data; ``histogram[i]`` counts the pauses
        of at most ``buckets_ns[i]`` (not cumulative), the last one the rest."""
        return {
            "enabled": self.installed,
            "buckets_ns": list(self.buckets_ns),
            "generations": [
                {
                    "generation": generation,
                    "collections": self._collections[generation],
                    "collected": self._collected[generation],
                    "uncollectable": self._uncollectable[generation],
                    "pause_ns_total": self._pause_total[generation],
                    "pause_ns_max": self._pause_max[generation],
                    "histogram": list(self._histogram[generation]),
                }
                for generation in range(GENERATIONS)
            ],
        }



def summarize(snapshot: Any) -> dict[str, int] | None:
    """A :meth:`PauseRecorder.snapshot` in brief, as ``GET /tune_gc`` lists it
    per process: collections, total and longest pause since the recording
    started. None when the process does not record (or the record is not one)."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("generations"), list):
        return None
    generations = [g for g in snapshot["generations"] if isinstance(g, dict)]
    return {
        "collections": sum(int(g.get("collections", 0)) for g in generations),
        "pause_ns_total": sum(int(g.get("pause_ns_total", 0)) for g in generations),
        "pause_ns_max": max((int(g.get("pause_ns_max", 0)) for g in generations), default=0),
    }
