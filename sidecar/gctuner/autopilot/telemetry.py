"""What the pod's processes measured between two moments, from their records.

Every following process rewrites its record every few seconds with its pause
recording (collections, pause totals and a histogram per generation, since
it started), its RSS and the time. The elected process keeps the records it
saw at the start of a window; the difference to the records now is what each
process spent in the collector meanwhile. Deltas, not totals: a worker that
started an hour ago must not hide what the new thresholds do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

FULL = 2
"""The oldest generation: its collections are the long pauses."""


@dataclasses.dataclass(frozen=True)
class Observation:
    """One window of the pod's telemetry; percentages of wall time."""

    processes: int
    """Processes measured in both records of the window."""

    seconds: float
    """The shortest window of those processes."""

    gc_percent: float
    """The highest share of wall time in the collector among the processes
    (the goal is per process)."""

    gc_percent_mean: float
    longest_pause_ms: float
    """Upper bound of the longest pause (from the histogram's buckets)."""

    full_collections: int
    full_pause_ms: float
    """Upper bound of the longest full (oldest-generation) collection."""

    freed_per_full_ms: float | None
    """Objects a full collection freed per millisecond it took: low means it
    scanned a heap that mostly survives (a case for ``gc.freeze``)."""

    rss_bytes: int | None
    """Sum of the processes' RSS, for pods without a cgroup limit."""

    youngest_seconds: float
    """Age of the youngest measured process: warm-up is not steady state."""

    full_share: float = 0.0
    """The full collections' share of all the time in the collector (0 to 1)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "windowSeconds": round(self.seconds, 1),
            "gcTimePercent": round(self.gc_percent, 3),
            "gcTimePercentMean": round(self.gc_percent_mean, 3),
            "longestPauseMillis": round(self.longest_pause_ms, 2),
            "fullCollections": self.full_collections,
            "longestFullPauseMillis": round(self.full_pause_ms, 2),
            "fullCollectionShare": round(self.full_share, 2),
        }


def observe(start: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]]) -> Observation | None:
    """The window from ``start`` to ``now``; None if no process can be measured
    (pause recording off, or no record was rewritten since ``start``)."""
    before = {record.get("pid"): record for record in start}
    shares, windows, longest, full_longest, ages = [], [], [0.0], [0.0], []
    full_collections, full_freed, full_ns, all_ns = 0, 0, 0, 0
    rss: int | None = 0
    for record in now:
        earlier = before.get(record.get("pid"))
        measured = _delta(earlier, record)
        if measured is None:
            continue
        seconds, generations, buckets = measured
        paused = sum(g.pause_ns_total for g in generations)
        all_ns += paused
        shares.append(100.0 * paused / (seconds * 1e9))
        windows.append(seconds)
        for index, generation in enumerate(generations):
            bound = _longest(generation.histogram, buckets)
            longest.append(bound)
            if index == FULL:
                full_longest.append(bound)
                full_collections += generation.collections
                full_freed += generation.collected
                full_ns += generation.pause_ns_total
        ages.append(float(record.get("uptime", 0.0)))
        size = record.get("rss")
        rss = rss + size if rss is not None and type(size) is int else None
    if not shares:
        return None
    return Observation(
        processes=len(shares),
        seconds=min(windows),
        gc_percent=max(shares),
        gc_percent_mean=sum(shares) / len(shares),
        longest_pause_ms=max(longest),
        full_collections=full_collections,
        full_pause_ms=max(full_longest),
        freed_per_full_ms=full_freed / (full_ns / 1e6) if full_ns else None,
        full_share=full_ns / all_ns if all_ns else 0.0,
        rss_bytes=rss,
        youngest_seconds=min(ages) if ages else 0.0,
    )


@dataclasses.dataclass(frozen=True)
class _Generation:
    """What one generation did in one process during the window."""

    collections: int
    collected: int
    pause_ns_total: int
    histogram: list[int]


def _delta(
    earlier: Mapping[str, Any] | None, later: Mapping[str, Any]
) -> tuple[float, list[_Generation], list[int]] | None:
    """Seconds between two records of one process and what each generation did meanwhile."""
    if earlier is None:
        return None
    try:
        seconds = float(later["at"]) - float(earlier["at"])
        old, new = earlier["pauses"]["generations"], later["pauses"]["generations"]
        buckets = [int(bound) for bound in later["pauses"]["buckets_ns"]]
        generations = [
            _Generation(
                collections=int(n["collections"]) - int(o["collections"]),
                collected=int(n["collected"]) - int(o["collected"]),
                pause_ns_total=int(n["pause_ns_total"]) - int(o["pause_ns_total"]),
                histogram=[int(b) - int(a) for a, b in zip(o["histogram"], n["histogram"])],
            )
            for o, n in zip(old, new)
        ]
    except (KeyError, TypeError, ValueError):  # pause recording off, or not a record of ours
        return None
    if seconds <= 0 or any(g.collections < 0 for g in generations):
        return None  # not rewritten since, or a new process under a reused pid
    return seconds, generations, buckets


def _longest(histogram: Sequence[int], buckets: Sequence[int]) -> float:
    """The upper bound, in ms, of the highest bucket that gained a pause; the
    overflow bucket counts as twice the last bound."""
    for index in range(len(histogram) - 1, -1, -1):
        if histogram[index] > 0:
            bound = buckets[index] if index < len(buckets) else 2 * buckets[-1]
            return bound / 1e6
    return 0.0
