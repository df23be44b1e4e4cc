"""What an Auto policy asks for: a GC time share, a pause, a memory budget.

Validated here for every way in (a POST, ``GCTUNER_GOAL``, the state file),
with the same bounds the GCPolicy CRD enforces, so a goal the API server
accepts is never refused by an agent. Keys are the CRD's (camelCase), so the
operator forwards ``spec.goal`` as it is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gctuner.core.settings import MAX_THRESHOLD, InvalidSettings

GC_TIME_PERCENT = (0.1, 50.0)
"""Below 0.1 % the measurement is noise; above 50 % the collector is the app."""

MAX_PAUSE_MILLIS = (1, 60_000)
MEMORY_PERCENT = (10.0, 100.0)
MEMORY_BYTES = (16 * 2**20, 2**40)
THRESHOLD0 = (100, MAX_THRESHOLD)
"""The range a goal may give for threshold0. 100 keeps the collector far from
disabled (0) and from collecting at every allocation."""

DEFAULT_MEMORY_PERCENT = 80.0
"""Used when a goal names neither ``memoryPercent`` nor ``memoryBytes``."""

DEFAULT_MAX_THRESHOLD0 = 200_000
"""Highest threshold0 the autopilot picks unless the goal allows more: the
reference benchmark found 100,000 already worse than 50,000 for p99."""

FIELDS = ("gcTimePercent", "maxPauseMillis", "memoryPercent", "memoryBytes", "minThreshold0", "maxThreshold0")
_EXAMPLE = '{"goal": {"gcTimePercent": 2, "memoryPercent": 80}}'


@dataclasses.dataclass(frozen=True)
class Goal:
    """A validated goal; see :func:`parse_goal` for the rules."""

    gc_time_percent: float
    """At most this share of each process's wall time in the collector."""

    max_pause_millis: int | None = None
    """The longest single collection to aim for (freezing the heap helps)."""

    memory_percent: float | None = DEFAULT_MEMORY_PERCENT
    """The budget as a share of the container's memory limit."""

    memory_bytes: int | None = None
    """The budget in bytes, for a container without a limit."""

    min_threshold0: int | None = None
    """Lowest threshold0 the autopilot may choose; default: the startup value."""

    max_threshold0: int | None = None
    """Highest threshold0 the autopilot may choose; default :data:`DEFAULT_MAX_THRESHOLD0`."""

    def budget(self, limit: int | None) -> int | None:
        """The memory budget in bytes, given the container's limit (None: no limit)."""
        if self.memory_bytes is not None:
            return self.memory_bytes
        if limit is None or self.memory_percent is None:
            return None
        return int(limit * self.memory_percent / 100)

    def threshold0_bounds(self, startup: int) -> tuple[int, int]:
        """The range threshold0 stays in: never below the process's own start
        value unless the goal says so, never disabled."""
        low = self.min_threshold0 if self.min_threshold0 is not None else max(startup, THRESHOLD0[0])
        high = self.max_threshold0 if self.max_threshold0 is not None else max(DEFAULT_MAX_THRESHOLD0, low)
        return low, max(low, high)

    def to_json(self) -> dict[str, Any]:
        """The wire form (the CRD's keys), accepted back by :func:`parse_goal`."""
        values = {
            "gcTimePercent": self.gc_time_percent,
            "maxPauseMillis": self.max_pause_millis,
            "memoryPercent": None if self.memory_bytes is not None else self.memory_percent,
            "memoryBytes": self.memory_bytes,
            "minThreshold0": self.min_threshold0,
            "maxThreshold0": self.max_threshold0,
        }
        return {key: value for key, value in values.items() if value is not None}


def parse_goal(payload: object) -> Goal:
    """Validate a decoded ``goal`` object; raise :class:`InvalidSettings` if refused."""
    if not isinstance(payload, dict):
        raise InvalidSettings(f"goal must be a JSON object such as {_EXAMPLE}, got {_show(payload)}")
    unknown = [key for key in payload if key not in FIELDS]
    if unknown:
        raise InvalidSettings(f"unknown goal field {_show(unknown[0])}; the fields are {', '.join(FIELDS)}")
    if "gcTimePercent" not in payload:
        raise InvalidSettings(f"goal.gcTimePercent is required, as in {_EXAMPLE}")
    if "memoryPercent" in payload and "memoryBytes" in payload:
        raise InvalidSettings("give goal.memoryPercent (of the container's limit) or goal.memoryBytes, not both")
    memory_bytes = _number(payload, "memoryBytes", MEMORY_BYTES, integer=True)
    memory_percent = _number(payload, "memoryPercent", MEMORY_PERCENT)
    low = _number(payload, "minThreshold0", THRESHOLD0, integer=True)
    high = _number(payload, "maxThreshold0", THRESHOLD0, integer=True)
    if low is not None and high is not None and low > high:
        raise InvalidSettings(f"goal.minThreshold0 ({low}) must not be above goal.maxThreshold0 ({high})")
    pause = _number(payload, "maxPauseMillis", MAX_PAUSE_MILLIS, integer=True)
    gc_time = _number(payload, "gcTimePercent", GC_TIME_PERCENT)
    assert gc_time is not None  # required above
    return Goal(
        gc_time_percent=float(gc_time),
        max_pause_millis=None if pause is None else int(pause),
        memory_percent=None if memory_bytes is not None else float(memory_percent or DEFAULT_MEMORY_PERCENT),
        memory_bytes=None if memory_bytes is None else int(memory_bytes),
        min_threshold0=None if low is None else int(low),
        max_threshold0=None if high is None else int(high),
    )


def _number(payload: dict[str, Any], key: str, bounds: tuple[float, float], *, integer: bool = False) -> float | None:
    if key not in payload:
        return None
    value = payload[key]
    low, high = bounds
    kinds = (int,) if integer else (int, float)
    # bool is an int subclass, but `true` as a number is a mistake.
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise InvalidSettings(f"goal.{key} must be {kind} between {_plain(low)} and {_plain(high)}, got {_show(value)}")
    return value


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _show(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
