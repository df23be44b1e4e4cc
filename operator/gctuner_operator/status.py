"""A policy's status, computed from what the reconciler knows. No I/O here.

Kubernetes API conventions: counts and a ``Ready`` condition with a reason,
``observedGeneration``, at most 10 failures; never one entry per pod (each
pod's agent reports its own state, read by ``gctuner status``). From the
pods' telemetry: ``telemetry`` (every policy), and for Auto a
``recommendation`` and the ``GoalMet`` condition. A block with nothing to say
is written as null, which a merge patch removes: a policy switched from Auto
to Static loses its recommendation and its GoalMet.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from gctuner.autopilot.goal import Goal
from gctuner.core.settings import Settings
from gctuner.policy import Key, PodView, PolicyView, winner

from . import goal_met
from .recommend import recommend
from .telemetry import PodSample, fleet

Wanted = Settings | Goal | None
"""What a pod is given: Static settings, an Auto goal, or (None) its startup defaults."""

MAX_FAILURES = 10


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The last thing that happened to one pod."""

    policy: Key | None  # whose settings; None: the startup defaults were restored
    generation: int
    wanted: Wanted
    ok: bool
    reason: str = ""
    message: str = ""
    since: str = ""  # when it started failing
    attempts: int = 0


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def applied_here(policy: PolicyView, outcome: Outcome | None) -> bool:
    return (
        outcome is not None
        and outcome.ok
        and outcome.policy == policy.key
        and outcome.wanted == policy.wanted
    )


def compute(
    policy: PolicyView,
    policies: Iterable[PolicyView],
    pods: Iterable[PodView],
    outcomes: Mapping[Key, Outcome],
    samples: Mapping[Key, PodSample] | None = None,
) -> dict[str, Any]:
    """The status block for ``policy`` given every opted-in pod of its namespace
    and the last telemetry read of each (``samples``)."""
    policies = list(policies)
    matched = applied = elsewhere = waiting = 0
    failures: list[dict[str, str]] = []
    measured: list[tuple[str, PodSample]] = []
    for pod in pods:
        if not policy.matches(pod.labels):
            continue
        matched += 1
        if winner(policies, pod) is not policy:
            elsewhere += 1
            continue
        if samples and pod.key in samples:
            measured.append((pod.name, samples[pod.key]))
        outcome = outcomes.get(pod.key)
        if applied_here(policy, outcome):
            applied += 1
        elif outcome is not None and not outcome.ok and outcome.policy == policy.key:
            failures.append({"pod": pod.name, "reason": outcome.reason, "message": outcome.message, "since": outcome.since})
        else:
            waiting += 1
    failures.sort(key=lambda f: (f["since"], f["pod"]))
    governed = matched - elsewhere
    goal = policy.goal.to_json() if policy.goal is not None else None
    result: dict[str, Any] = {
        "observedGeneration": policy.generation,
        "matchedPods": matched,
        "appliedPods": applied,
        "failedPods": len(failures),
        "governedElsewherePods": elsewhere,
        "failures": failures[:MAX_FAILURES],
        "telemetry": fleet([sample for _, sample in measured], goal),
        "recommendation": None,
        "conditions": [ready_condition(policy, governed, applied, failures, waiting, elsewhere)],
    }
    if goal is not None:
        reports = [(name, sample.autopilot if sample.goal == goal else None) for name, sample in measured]
        met = goal_met.condition(*goal_met.goal_met(reports), policy.generation, _condition(policy, "GoalMet"),
                                 now_rfc3339())  # fmt: skip
        settled = _seconds_since(met["lastTransitionTime"]) if met["status"] == "True" else None
        decided = [(report, sample.defaults) for (_, report), (_, sample) in zip(reports, measured) if report]
        result["recommendation"] = recommend(decided, settled, policy.goal.max_threshold0 if policy.goal else None)
        result["conditions"].append(met)
    return result


def _condition(policy: PolicyView, kind: str) -> Mapping[str, Any] | None:
    return next((c for c in policy.conditions if c.get("type") == kind), None)


def _seconds_since(rfc3339: str) -> float:
    try:
        then = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return 0.0
    return max(0.0, (datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())


def ready_condition(
    policy: PolicyView, governed: int, applied: int, failures: list[dict[str, str]], waiting: int, elsewhere: int
) -> dict[str, Any]:
    if failures:
        names = ", ".join(f"{f['pod']} ({f['reason']})" for f in failures[:3])
        more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
        status, reason = "False", "PartiallyApplied" if applied else "Failed"
        message = f"{applied}/{governed} pods applied; failing: {names}{more}"
    elif waiting:
        status, reason = "False", "Progressing"
        message = f"{applied}/{governed} pods applied, {waiting} pending (not ready yet or in flight)"
    elif governed == 0:
        status, reason = "True", "NoPods"
        message = "no opted-in pod is governed by this policy" + (
            f" ({elsewhere} matched pods follow a policy of higher precedence)" if elsewhere else ""
        )
    else:
        status, reason = "True", "Applied"
        message = f"{applied}/{governed} pods applied"
    previous = _condition(policy, "Ready")
    since = previous.get("lastTransitionTime") if previous is not None and previous.get("status") == status else None
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": policy.generation,
        "lastTransitionTime": since or now_rfc3339(),
    }
