"""The autopilot's decision: one pure function, table-tested per flavour.

Memory is the hard limit, GC time the objective, a pause goal last:

1. Near the memory budget (:data:`NEAR_BUDGET`): halve threshold0 and
   collect, as Go's GOMEMLIMIT collects more as the heap nears its limit;
   but once the collector already takes :data:`GC_CAP_PERCENT` of the time,
   stop lowering (the heap does not fit; more collecting would stall the
   service) and say so, as Go's limiter caps the collector's CPU.
2. GC time over the goal with headroom: raise threshold0 in proportion,
   ``t0 * measured / goal`` clamped to :data:`STEP_UP`: young collections
   cost roughly the same each, so their share of time falls with their rate,
   as Uber's GOGCTuner recomputes GOGC from the distance to its target.
   A raise that did not lower the GC time (a workload whose garbage costs the
   same at any rate, e.g. mostly cyclic) is undone and becomes the ceiling:
   the autopilot holds the cheaper setting and says the goal is out of reach.
3. Full collections that take most of the collector's time, or last longer
   than ``maxPauseMillis``, on a heap that mostly survives them:
   ``gc.freeze()`` once, after warm-up, so they stop scanning it.

Guardrails: threshold0 stays within the goal's bounds (never 0: the collector
is never disabled), steps are bounded, a band of :data:`HYSTERESIS` around
the goal and a cool-down after every raise keep it from oscillating, and
without a measurement or a budget it holds the startup defaults, and says why.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gctuner.autopilot.goal import Goal
from gctuner.autopilot.memory import MemoryReading
from gctuner.autopilot.telemetry import Observation
from gctuner.core.runtime import INCREMENTAL, Flavour

NEAR_BUDGET = 0.95
"""Lower threshold0 and collect when the memory used reaches this share of the budget."""

HEADROOM = 0.85
"""Raise threshold0 only while the memory used is below this share of the budget."""

HYSTERESIS = 0.10
"""GC time within ``goal * (1 + HYSTERESIS)`` counts as met: no change."""

STEP_UP = (1.25, 4.0)
"""Bounds of one raise's factor: small enough to watch its effect, large
enough to reach 50,000 from 700 in three steps."""

STEP_DOWN = 2.0
"""One lowering's divisor under memory pressure."""

GC_CAP_PERCENT = 30.0
"""Under memory pressure, stop lowering once the collector takes this share."""

COOL_DOWN_SECONDS = 10.0
"""Least time between a raise and the next one: one window, measured after
every process applied the raise (see :mod:`gctuner.pod.pilot`)."""

MIN_GAIN = 0.10
"""A raise must lower the GC time by this share, or it is undone."""

FULL_SHARE_FOR_FREEZE = 0.5
"""Freeze, without a pause goal, once full collections take this share of the GC time."""

WARM_UP_SECONDS = 30.0
"""A process younger than this is still building its heap: no freeze yet."""

LONG_LIVED_FREED_PER_MS = 2_000.0
"""A full collection freeing fewer objects per millisecond than this scanned
mostly survivors (CPython traverses some 10,000-50,000 objects per ms)."""

WITHIN_GOAL, SETTLING, UNREACHABLE, NO_BUDGET, CANNOT_MEASURE = (
    "WithinGoal", "Settling", "GoalUnreachable", "NoMemoryBudget", "CannotMeasure",
)  # fmt: skip
"""The states, as the GoalMet condition's reasons say them."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """What the autopilot has every process run."""

    thresholds: tuple[int, ...]
    """Published as given; the thresholds left out keep each process's own."""

    frozen: bool = False
    """The autopilot froze the heap (once: a freeze is an action)."""

    @property
    def threshold0(self) -> int:
        return self.thresholds[0]

    def to_json(self) -> dict[str, Any]:
        return {"thresholds": list(self.thresholds), "frozen": self.frozen}


@dataclasses.dataclass(frozen=True)
class Decision:
    choice: Choice
    state: str
    reason: str
    collect: bool = False
    """Collect now, in every process (memory near the budget)."""

    freeze: bool = False
    """Freeze now, in every process."""

    ceiling: int | None = None
    """A threshold0 found not worth exceeding (set when a raise is undone)."""

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason, "collect": self.collect, "freeze": self.freeze,
                **self.choice.to_json()}


@dataclasses.dataclass(frozen=True)
class Raise:
    """The last raise: from which threshold0, at what GC time."""

    threshold0: int
    gc_percent: float


def startup_choice(defaults: tuple[int, ...]) -> Choice:
    """Where the autopilot starts, and what it falls back to: the startup threshold0."""
    return Choice((defaults[0],))


def decide(
    observation: Observation | None,
    memory: MemoryReading,
    goal: Goal,
    current: Choice,
    flavour: Flavour,
    defaults: tuple[int, ...],
    since_change: float,
    *,
    last_raise: Raise | None = None,
    ceiling: int | None = None,
) -> Decision:
    """The next choice and why; ``since_change`` is the seconds since the last
    change, ``last_raise`` the raise that led to ``current`` (if it did)."""
    fallback = startup_choice(defaults)
    if observation is None:
        return Decision(_keep_freeze(fallback, current), CANNOT_MEASURE,
                        "no GC pause recording to measure (is GCTUNER_RECORD_PAUSES off?): holding the startup defaults")
    used = memory.used if memory.used is not None else observation.rss_bytes
    budget = goal.budget(memory.limit)
    if budget is None:
        return Decision(_keep_freeze(fallback, current), NO_BUDGET,
                        "the container has no memory limit and the goal no memoryBytes: "
                        "holding the startup defaults rather than guessing a budget")
    if used is None:
        return Decision(_keep_freeze(fallback, current), CANNOT_MEASURE,
                        f"cannot read the memory used ({memory.source}): holding the startup defaults")
    low, high = goal.threshold0_bounds(defaults[0])
    if ceiling is not None:
        high = max(low, min(high, ceiling))
    t0 = min(max(current.threshold0, low), high)
    measured = observation.gc_percent
    target = goal.gc_time_percent
    memory_share = used / budget
    figures = f"GC {measured:.1f}% of the time (goal {target:g}%), memory {_mib(used)} of {_mib(budget)}"

    if memory_share >= NEAR_BUDGET:
        if measured >= GC_CAP_PERCENT:
            return Decision(_pressure(flavour, t0, current), UNREACHABLE,
                            f"{figures}: the heap does not fit the budget and collecting more would stall the "
                            f"service; holding threshold0 at {t0} (raise the memory limit)")
        lower = max(low, int(t0 / STEP_DOWN))
        choice = _pressure(flavour, lower, current)
        if lower < t0:
            return Decision(choice, SETTLING, f"{figures}: near the budget, lowering threshold0 {t0} -> {lower} "
                            f"and collecting{_flavour_note(flavour)}", collect=True)
        return Decision(choice, UNREACHABLE, f"{figures}: near the budget at the lowest threshold0 allowed ({low}); "
                        "collecting, but the live heap itself is too large for the budget", collect=True)

    relaxed = _relaxed(flavour, t0, defaults, current)
    if measured > target * (1 + HYSTERESIS):
        if last_raise is not None and t0 > last_raise.threshold0 and measured > last_raise.gc_percent * (1 - MIN_GAIN):
            back = max(low, last_raise.threshold0)
            return Decision(_relaxed(flavour, back, defaults, current), UNREACHABLE,
                            f"{figures}: raising threshold0 {back} -> {t0} did not lower the GC time "
                            f"({last_raise.gc_percent:.1f}% -> {measured:.1f}%), so this workload's garbage costs the "
                            f"same at any rate; holding the cheaper {back}", ceiling=back)
        freed = observation.freed_per_full_ms
        if (not current.frozen and observation.youngest_seconds >= WARM_UP_SECONDS
                and observation.full_share >= FULL_SHARE_FOR_FREEZE
                and freed is not None and freed < LONG_LIVED_FREED_PER_MS):
            return Decision(dataclasses.replace(relaxed, frozen=True), SETTLING,
                            f"{figures}: full collections take {observation.full_share:.0%} of it and free only "
                            f"{freed:.0f} objects per ms (the heap mostly survives): freezing it", freeze=True)
        if memory_share >= HEADROOM:
            return Decision(relaxed, UNREACHABLE, f"{figures}: no memory headroom to raise threshold0 {t0}; "
                            "memory wins over GC time")
        if t0 >= high:
            return Decision(relaxed, UNREACHABLE, f"{figures}: already at the highest threshold0 worth choosing "
                            f"({high}); this workload's garbage costs more than the goal at any setting", ceiling=ceiling)
        if since_change < COOL_DOWN_SECONDS:
            return Decision(relaxed, SETTLING, f"{figures}: waiting {COOL_DOWN_SECONDS - since_change:.0f}s "
                            "after the last change before the next")
        factor = min(max(measured / target, STEP_UP[0]), STEP_UP[1])
        higher = min(high, int(t0 * factor))
        return Decision(_relaxed(flavour, higher, defaults, current), SETTLING,
                        f"{figures}: raising threshold0 {t0} -> {higher}")

    pause_goal = goal.max_pause_millis
    if pause_goal is not None and observation.full_pause_ms > pause_goal:
        pauses = f"full collections up to {observation.full_pause_ms:g} ms (goal {pause_goal} ms)"
        freed = observation.freed_per_full_ms
        if current.frozen:
            return Decision(relaxed, UNREACHABLE, f"{pauses} with the heap already frozen: the young heap "
                            "itself takes this long to scan")
        if observation.youngest_seconds < WARM_UP_SECONDS:
            return Decision(relaxed, SETTLING, f"{pauses}: waiting for the heap to warm up before freezing it")
        if freed is not None and freed < LONG_LIVED_FREED_PER_MS:
            return Decision(dataclasses.replace(relaxed, frozen=True), SETTLING,
                            f"{pauses}, and they free only {freed:.0f} objects per ms: the heap mostly survives, "
                            "freezing it", freeze=True)
        return Decision(relaxed, UNREACHABLE, f"{pauses}, but they free much of what they scan: "
                        "freezing would keep garbage alive")
    return Decision(relaxed, WITHIN_GOAL, f"{figures}: within the goal at threshold0 {t0}")


def _pressure(flavour: Flavour, threshold0: int, current: Choice) -> Choice:
    """Under memory pressure a free-threaded build must not scale threshold0
    up with the heap (threshold1 = 0 switches that off), or lowering it does nothing."""
    thresholds = (threshold0, 0) if flavour.heap_scaled else (threshold0,)
    return Choice(thresholds, current.frozen)


def _relaxed(flavour: Flavour, threshold0: int, defaults: tuple[int, ...], current: Choice) -> Choice:
    """Without pressure, a free-threaded build scales with the heap again (its own threshold1)."""
    thresholds = (threshold0, defaults[1]) if flavour.heap_scaled and len(defaults) > 1 else (threshold0,)
    return Choice(thresholds, current.frozen)


def _keep_freeze(choice: Choice, current: Choice) -> Choice:
    return dataclasses.replace(choice, frozen=current.frozen)


def _flavour_note(flavour: Flavour) -> str:
    if flavour.rss_gated:
        return " (heap scaling off, so threshold0 binds; collecting explicitly, as the RSS gate may skip due collections)"
    if flavour.heap_scaled:
        return " (heap scaling off, so threshold0 binds)"
    if flavour is INCREMENTAL:
        return " (incremental collector: threshold1, the old generation's scan rate, is left as it is)"
    return ""


def _mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"
