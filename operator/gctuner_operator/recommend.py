"""An Auto policy's recommendation: a Static policy to pin once the fleet settled. No I/O here.

Built as VPA's recommender builds its own (``estimator.go``): a percentile
of what the pods' autopilots chose (:func:`estimate`), widened by a margin
(:func:`with_margin`), rounded to a number a person writes
(:func:`rounded`), held above a floor (:func:`with_floor`: never below the
interpreter's own startup threshold0) and below the highest threshold; and a
confidence that grows with how long the whole fleet has been within its goal
and how many pods say so (:func:`confidence`, VPA's ``getConfidence``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gctuner.core.settings import MAX_THRESHOLD

from .telemetry import AutopilotReport, percentile

PERCENTILE = 0.9
"""Cover what nine pods in ten needed: the rest were the exceptions."""

MARGIN = 0.10
"""Added on top: a higher threshold0 costs a little memory, a lower one GC time over the goal."""

FREEZE_SHARE = 0.5
"""Recommend a freeze when more than this share of the autopilots froze their heap."""

SETTLED_FOR_HIGH = 3600.0
PODS_FOR_HIGH = 3
"""High confidence: the fleet within its goal for an hour, on at least three pods."""

MEDIUM_SCORE = 1 / 6
"""Medium from a sixth of that (ten minutes on three pods, or an hour on one pod gives Medium at most)."""


def estimate(values: Sequence[int], q: float = PERCENTILE) -> int:
    """The base: the ``q`` percentile (nearest rank) of the pods' threshold0."""
    return int(percentile(values, q))


def with_margin(value: int, margin: float = MARGIN) -> int:
    return int(value * (1 + margin))


def rounded(value: int) -> int:
    """Two significant digits, upwards: 46,200 -> 47,000."""
    if value < 100:
        return value
    unit = int(10 ** (int(math.log10(value)) - 1))
    return math.ceil(value / unit) * unit


def with_floor(value: int, floor: int) -> int:
    return max(value, floor)


def with_cap(value: int, cap: int = MAX_THRESHOLD) -> int:
    return min(value, cap)


def confidence(pods: int, settled_seconds: float) -> str:
    """Low, Medium or High: the shorter of how long the fleet has been within its goal
    (in units of :data:`SETTLED_FOR_HIGH`) and how many pods say so (of :data:`PODS_FOR_HIGH`)."""
    score = min(settled_seconds / SETTLED_FOR_HIGH, pods / PODS_FOR_HIGH)
    return "High" if score >= 1 else "Medium" if score >= MEDIUM_SCORE else "Low"


def duration(seconds: float) -> str:
    """Coarse, so that the basis changes rarely: <1m, 12m, 2h, 3d."""
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def recommend(
    pods: Sequence[tuple[AutopilotReport, tuple[int, ...]]], settled_seconds: float | None,
    max_threshold0: int | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """The ``status.recommendation`` block from each pod's autopilot decision on the
    policy's goal and its interpreter's startup thresholds; ``settled_seconds``: how long
    every reporting pod has been within the goal (None: not all are). None without decisions."""
    if not pods:
        return None
    floor = max((defaults[0] for _, defaults in pods if defaults), default=1)
    threshold0 = estimate([report.thresholds[0] for report, _ in pods])
    threshold0 = with_cap(with_floor(rounded(with_margin(threshold0)), floor), max_threshold0 or MAX_THRESHOLD)
    # The other thresholds: what the autopilots set, else the interpreter's own (the most common).
    rest = Counter(report.thresholds[1:] + defaults[len(report.thresholds):] for report, defaults in pods)
    frozen = sum(report.frozen for report, _ in pods)
    when = f"{duration(settled_seconds)} within the goal" if settled_seconds is not None else "not all within the goal yet"
    return {
        "thresholds": [threshold0, *rest.most_common(1)[0][0]][:3],
        "freeze": frozen > FREEZE_SHARE * len(pods),
        "basis": f"{len(pods)} pods, {when}",
        "confidence": confidence(len(pods), settled_seconds or 0.0),
    }
