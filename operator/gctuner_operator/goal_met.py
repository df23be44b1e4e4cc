"""An Auto policy's ``GoalMet`` condition, from its pods' autopilots. No I/O here.

True (``WithinGoal``) when every pod that reported is within the goal;
otherwise False with the worst pod's state as the reason (see
:data:`SEVERITY`) and, in the message, how many pods stand where and the
worst pod's own reason, figures included. A pod that answered but whose
autopilot has not decided on this goal yet counts as ``Settling``. Static
policies have no GoalMet.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .telemetry import AutopilotReport

WITHIN_GOAL = "WithinGoal"
SETTLING = "Settling"
SEVERITY = ("GoalUnreachable", "NoMemoryBudget", "CannotMeasure", SETTLING)
"""The autopilot's states other than WithinGoal, the worst first: a goal the
workload cannot reach, then no budget to steer within, then no measurement,
then not there yet."""

NOT_DECIDED = "no autopilot decision on this goal yet"


def goal_met(reports: Sequence[tuple[str, AutopilotReport | None]]) -> tuple[str, str, str]:
    """(status, reason, message) from each answering pod's name and its autopilot's decision."""
    if not reports:
        return "Unknown", "NoReports", "no pod governed by this policy has reported yet"
    states = [(name, report.state if report is not None else SETTLING, report.reason if report else NOT_DECIDED)
              for name, report in reports]  # fmt: skip
    counts = Counter(state for _, state, _ in states)
    within = counts.get(WITHIN_GOAL, 0)
    if within == len(states):
        return "True", WITHIN_GOAL, f"{within}/{len(states)} pods within the goal"
    worst = min(
        (entry for entry in states if entry[1] != WITHIN_GOAL),
        key=lambda entry: (_rank(entry[1]), entry[0]),
    )
    others = ", ".join(f"{n} {state}" for state, n in sorted(counts.items(), key=lambda c: _rank(c[0])))
    return "False", worst[1], f"{within}/{len(states)} pods within the goal ({others}); {worst[0]}: {worst[2]}"


def condition(
    status: str, reason: str, message: str, generation: int, previous: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    """The condition, its lastTransitionTime kept while its status stays."""
    since = previous.get("lastTransitionTime") if previous is not None and previous.get("status") == status else None
    return {"type": "GoalMet", "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": since or now}  # fmt: skip


def _rank(state: str) -> int:
    """Unknown states sort with the worst: they are not within the goal, and nobody knows why."""
    return SEVERITY.index(state) if state in SEVERITY else (-1 if state != WITHIN_GOAL else len(SEVERITY))
