"""What a policy's pods measure, per pod and fleet-wide. No I/O here.

Per pod, from its agent's ``GET /tune_gc`` (:func:`sample`): the share of
wall time its processes spend in the collector (the autopilot's own
measurement when it steers, else the growth of every process's
``pauses.pause_ns_total`` between two reads over the time between them; the
highest process counts, as the goal is per process), the longest pause, and
in Auto what its autopilot decided on the goal it steers to.

Fleet-wide (:func:`fleet`), the ``status.telemetry`` block: p50 and p95 of
those figures across the pods, and in Auto the lowest, median and highest
thresholds the pods chose. Figures are rounded (:func:`figure`) so that noise
does not rewrite the status at every refresh.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

GC_PERCENT_RESOLUTION = 0.01
PAUSE_MS_RESOLUTION = 0.1
SIGNIFICANT_DIGITS = 2
"""Telemetry figures keep two significant digits, and no finer than the resolutions above."""


@dataclasses.dataclass(frozen=True)
class AutopilotReport:
    """A pod's autopilot's last decision, on the goal the pod steers to."""

    state: str  # WithinGoal, Settling, GoalUnreachable, NoMemoryBudget, CannotMeasure
    reason: str
    thresholds: tuple[int, ...]  # what it chose
    frozen: bool


@dataclasses.dataclass(frozen=True)
class PodSample:
    """One read of one pod's agent, kept until the next."""

    at: float  # monotonic seconds of the read
    time: str  # RFC 3339, when read
    totals: Mapping[int, int]  # pid -> pause_ns_total: the baseline of the next read
    gc_percent: float | None  # None: not measured yet (a first read of a pod without autopilot)
    longest_pause_ms: float | None
    goal: Mapping[str, Any] | None  # the goal the agent steers to, as it reports it
    autopilot: AutopilotReport | None  # its decision on that goal; None before the first
    defaults: tuple[int, ...]  # the interpreter's startup thresholds


def sample(live: Mapping[str, Any], previous: PodSample | None, at: float, time: str) -> PodSample:
    """The pod's figures from its live state and the previous read (None: the first)."""
    processes = [p for p in live.get("processes") or () if isinstance(p, dict)]
    pauses = {p.get("pid"): p["pauses"] for p in processes if isinstance(p.get("pauses"), dict)}
    totals = {pid: int(v.get("pause_ns_total") or 0) for pid, v in pauses.items() if isinstance(pid, int)}
    goal = live.get("goal") if isinstance(live.get("goal"), dict) else None
    raw = live.get("autopilot") if isinstance(live.get("autopilot"), dict) else None
    report = _report(raw) if goal is not None and raw is not None and raw.get("goal") == goal else None
    found = raw.get("measured") if report is not None and raw is not None else None
    measured: Mapping[str, Any] = found if isinstance(found, dict) else {}
    gc_percent = _number(measured.get("gcTimePercent"))
    if gc_percent is None and previous is not None and at > previous.at:
        grown = [totals[pid] - before for pid, before in previous.totals.items()
                 if pid in totals and totals[pid] >= before]  # fmt: skip
        gc_percent = max(grown) / 1e9 / (at - previous.at) * 100 if grown else None
    longest = _number(measured.get("longestPauseMillis"))
    if longest is None and pauses:
        longest = max(int(v.get("pause_ns_max") or 0) for v in pauses.values()) / 1e6
    defaults = tuple(v for v in live.get("defaults") or () if isinstance(v, int))
    return PodSample(at, time, totals, gc_percent, longest, goal, report, defaults)


def _report(raw: Mapping[str, Any]) -> AutopilotReport | None:
    found = raw.get("choice")
    choice: Mapping[str, Any] = found if isinstance(found, dict) else {}
    thresholds = tuple(v for v in choice.get("thresholds") or () if isinstance(v, int))
    if not isinstance(raw.get("state"), str) or not thresholds:
        return None
    return AutopilotReport(raw["state"], str(raw.get("reason") or ""), thresholds, choice.get("frozen") is True)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def figure(value: float, resolution: float) -> float:
    """``value`` to ``resolution``, then to two significant digits: 0.0123 -> 0.01, 26.43 -> 26.0."""
    value = round(value / resolution) * resolution
    if value == 0:
        return 0.0
    digits = SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value)))
    return float(round(value, digits))


def spread(values: Sequence[float], resolution: float) -> dict[str, float] | None:
    """p50 and p95, rounded; None without values."""
    if not values:
        return None
    return {"p50": figure(percentile(values, 0.5), resolution), "p95": figure(percentile(values, 0.95), resolution)}


def chosen(samples: Iterable[PodSample], goal: Mapping[str, Any]) -> list[AutopilotReport]:
    """The autopilots' decisions on ``goal`` (the policy's, as the agents spell it)."""
    return [s.autopilot for s in samples if s.autopilot is not None and s.goal == goal]


def fleet(samples: Sequence[PodSample], goal: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``status.telemetry`` block of the pods a policy governs (``goal``: an Auto policy's); None without pods."""
    if not samples:
        return None
    gc = [s.gc_percent for s in samples if s.gc_percent is not None]
    pauses = [s.longest_pause_ms for s in samples if s.longest_pause_ms is not None]
    choices = sorted(chosen(samples, goal), key=lambda r: r.thresholds) if goal is not None else []
    thresholds = None
    if choices:
        thresholds = {"min": list(choices[0].thresholds), "median": list(choices[(len(choices) - 1) // 2].thresholds),
                      "max": list(choices[-1].thresholds)}  # fmt: skip
    return {
        "pods": len(samples),
        "gcTimePercent": spread(gc, GC_PERCENT_RESOLUTION),
        "longestPauseMillis": spread(pauses, PAUSE_MS_RESOLUTION),
        "thresholds": thresholds,
        "time": max(s.time for s in samples),
    }
