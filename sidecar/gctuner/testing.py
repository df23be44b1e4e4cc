"""Test doubles for code that uses the agent: import in tests, never in an app.

Like ``flask.testing``: public, so the tests of an app (and our own tests and
benchmarks) drive the agent without changing this process's garbage collector.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["StandInGC"]


class StandInGC:
    """Stands in for the ``gc`` module, so a test (or a benchmark serving many
    pods from one process) can run the agent without touching the real collector."""

    def __init__(self, thresholds: tuple[int, ...] = (700, 10, 10)) -> None:
        self.thresholds = tuple(thresholds)
        self.frozen = 0
        self.collections = 0
        self.callbacks: list[Callable[[str, dict[str, int]], None]] = []

    def get_threshold(self) -> tuple[int, ...]:
        return self.thresholds

    def set_threshold(self, *values: int) -> None:
        # like gc.set_threshold: the values left out keep their current ones
        if not 1 <= len(values) <= 3:
            raise TypeError(f"set_threshold takes 1 to 3 thresholds, got {len(values)}")
        self.thresholds = tuple(values) + self.thresholds[len(values):]

    def get_count(self) -> tuple[int, int, int]:
        return (5, 1, 0)

    def get_stats(self) -> list[dict[str, int]]:
        return [{"collections": 3, "collected": 7, "uncollectable": 0}] * 3

    def freeze(self) -> None:
        self.frozen += 100

    def unfreeze(self) -> None:
        self.frozen = 0

    def collect(self, generation: int = 2) -> int:
        self.collections += 1
        return 0

    def get_freeze_count(self) -> int:
        return self.frozen
