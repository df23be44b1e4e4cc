"""A policy's status, computed from what the reconciler knows. No I/O here.

Kubernetes API conventions: counts and a ``Ready`` condition with a reason,
``observedGeneration``, at most 10 failures; never one entry per pod (each
pod's agent reports its own state, read by ``gctuner status``).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from gctuner.core.settings import Settings
from gctuner.policy import Key, PodView, PolicyView, winner

MAX_FAILURES = 10


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The last thing that happened to one pod."""

    policy: Key | None  # whose settings; None: the startup defaults were restored
    generation: int
    settings: Settings | None
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
        and outcome.settings == policy.settings
    )


def compute(
    policy: PolicyView,
    policies: Iterable[PolicyView],
    pods: Iterable[PodView],
    outcomes: Mapping[Key, Outcome],
) -> dict[str, Any]:
    """The status block for ``policy`` given every opted-in pod of its namespace."""
    policies = list(policies)
    matched = applied = elsewhere = waiting = 0
    failures: list[dict[str, str]] = []
    for pod in pods:
        if not policy.matches(pod.labels):
            continue
        matched += 1
        if winner(policies, pod) is not policy:
            elsewhere += 1
            continue
        outcome = outcomes.get(pod.key)
        if applied_here(policy, outcome):
            applied += 1
        elif outcome is not None and not outcome.ok and outcome.policy == policy.key:
            failures.append({"pod": pod.name, "reason": outcome.reason, "message": outcome.message, "since": outcome.since})
        else:
            waiting += 1
    failures.sort(key=lambda f: (f["since"], f["pod"]))
    governed = matched - elsewhere
    return {
        "observedGeneration": policy.generation,
        "matchedPods": matched,
        "appliedPods": applied,
        "failedPods": len(failures),
        "governedElsewherePods": elsewhere,
        "failures": failures[:MAX_FAILURES],
        "conditions": [ready_condition(policy, governed, applied, failures, waiting, elsewhere)],
    }


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
    previous = next((c for c in policy.conditions if c.get("type") == "Ready"), None)
    since = previous.get("lastTransitionTime") if previous is not None and previous.get("status") == status else None
    return {
        "type": "Ready",
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": policy.generation,
        "lastTransitionTime": since or now_rfc3339(),
    }
