"""``gctuner status``'s report: policies, pods and live reads joined. No I/O here.

In: the ``items`` of ``kubectl get gcpolicies -o json`` and of the opted-in
pods, and each pod's ``GET /tune_gc`` answer (or why there is none). Out:
per policy, what it asks and how its rollout went; per pod, which policy
governs it, what its processes run now, how many applied the policy, their
GC pauses, and in one word plus a reason, where it stands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from gctuner.policy import Body, Key, PodView, PolicyView, winner

APPLIED, PENDING, FAILED, UNREACHABLE, NOT_READY, NO_POLICY = (
    "Applied", "Pending", "Failed", "Unreachable", "NotReady", "NoPolicy",
)  # fmt: skip
SETTLING = "Settling"
"""An Auto pod whose autopilot has not decided yet; its other states are the autopilot's own."""


@dataclasses.dataclass(frozen=True)
class LiveRead:
    """A pod's ``GET /tune_gc`` answer, or the reason there is none."""

    answer: Mapping[str, Any] | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """A pod to read live, and where its agent answers."""

    namespace: str
    name: str
    ip: str
    port: int
    path: str


@dataclasses.dataclass(frozen=True)
class PodReport:
    namespace: str
    name: str
    ip: str | None
    policy: str | None
    asked: dict[str, Any] | None  # the governing policy's settings, or {"goal": ...} in Auto
    live: list[dict[str, Any]]  # per process: pid, thresholds, frozen, pauses
    applied_processes: int
    collections: int | None
    pause_ns_total: int | None
    pause_ns_max: int | None
    python: str | None
    flavour: str | None
    applied_by: dict[str, Any] | None  # the agent's record of who asked: policy, generation, time
    error: str | None  # why the live read failed
    state: str
    reason: str
    mode: str | None = None  # the governing policy's: Static or Auto
    autopilot: dict[str, Any] | None = None  # what the pod's autopilot measured, chose and why


@dataclasses.dataclass(frozen=True)
class PolicyReport:
    namespace: str
    name: str
    mode: str
    goal: dict[str, Any] | None
    thresholds: list[int]
    freeze: bool
    priority: int
    generation: int
    status: dict[str, Any]  # as the operator wrote it
    pods: list[str]  # the listed pods it governs

    @property
    def ready(self) -> dict[str, Any]:
        return self.condition("Ready")

    def condition(self, kind: str) -> dict[str, Any]:
        conditions = self.status.get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), {})


@dataclasses.dataclass(frozen=True)
class Report:
    policies: list[PolicyReport]
    pods: list[PodReport]

    def to_json(self) -> dict[str, Any]:
        return {"policies": [_policy_json(p) for p in self.policies], "pods": [dataclasses.asdict(p) for p in self.pods]}


def targets(policies: Iterable[Body], pods: Iterable[Body]) -> list[Target]:
    """The pods worth reading live (running and ready, with an IP: what the operator pushes to) and where."""
    views = [PolicyView.from_body(p) for p in policies]
    found = []
    for pod in map(PodView.from_body, pods):
        if pod.reachable and pod.ip:
            endpoint = pod.endpoint(winner(views, pod))
            found.append(Target(pod.namespace, pod.name, pod.ip, endpoint.port, endpoint.path))
    return found


def build(policies: Iterable[Body], pods: Iterable[Body], reads: Mapping[Key, LiveRead]) -> Report:
    views = {_key(p): PolicyView.from_body(p) for p in policies}
    governed: dict[Key, list[str]] = {key: [] for key in views}
    pod_reports = []
    for body in sorted(pods, key=_key):
        pod = PodView.from_body(body)
        policy = winner(views.values(), pod)
        if policy is not None:
            governed[policy.key].append(pod.name)
        pod_reports.append(_pod_report(body, pod, policy, reads.get(pod.key)))
    policy_reports = [_policy_report(views[key], governed[key]) for key in sorted(views)]
    return Report(policy_reports, pod_reports)


def _pod_report(body: Body, pod: PodView, policy: PolicyView | None, read: LiveRead | None) -> PodReport:
    asked = policy.payload() if policy is not None else None
    answer = (read.answer if read is not None else None) or {}
    live = [p for p in answer.get("processes") or [] if isinstance(p, dict)]
    applied = sum(1 for p in live if asked is not None and _runs(p, asked, answer))
    autopilot = answer.get("autopilot") if isinstance(answer.get("autopilot"), dict) else None
    pauses = [p["pauses"] for p in live if isinstance(p.get("pauses"), dict)]
    state, reason = _state(body, pod, policy, asked, read, answer, live, applied)
    return PodReport(
        namespace=pod.namespace,
        name=pod.name,
        ip=pod.ip,
        policy=None if policy is None else policy.name,
        asked=asked,
        live=live,
        applied_processes=applied,
        collections=sum(p.get("collections", 0) for p in pauses) if pauses else None,
        pause_ns_total=sum(p.get("pause_ns_total", 0) for p in pauses) if pauses else None,
        pause_ns_max=max(p.get("pause_ns_max", 0) for p in pauses) if pauses else None,
        python=answer.get("python"),
        flavour=(answer.get("flavour") or {}).get("name"),
        applied_by=dict(answer["applied_by"]) if isinstance(answer.get("applied_by"), dict) else None,
        error=None if read is None else read.error,
        state=state,
        reason=reason,
        mode=None if policy is None else policy.mode,
        autopilot=autopilot,
    )


def _state(
    body: Body, pod: PodView, policy: PolicyView | None, asked: dict[str, Any] | None, read: LiveRead | None,
    answer: Mapping[str, Any], live: list[dict[str, Any]], applied: int,
) -> tuple[str, str]:  # fmt: skip
    """One word and why: the live processes first, then the operator's failures, then our own read."""
    if not pod.reachable:
        return NOT_READY, _not_ready_reason(body)
    if policy is not None and policy.refused is not None:
        return FAILED, f"InvalidSpec: {policy.refused}"
    if asked is not None and live and applied == len(live) and answer.get("in_sync"):
        if "goal" in asked and answer.get("goal") == asked["goal"]:
            return _autopilot_state(answer)
        if "goal" not in asked and answer.get("goal") is None and answer.get("desired") == asked:
            return APPLIED, ""
    failure = None if policy is None else _failure(policy, pod.name)
    if failure is not None:  # the operator's own words on why its push failed
        return FAILED, f"{failure.get('reason', '')}: {failure.get('message', '')}".strip(": ")
    if read is None or read.error is not None:
        return UNREACHABLE, (read.error if read is not None else "") or "not read"
    if asked is None:
        if answer.get("desired") is not None:
            return PENDING, "no policy selects it any more; startup defaults not restored yet"
        return NO_POLICY, "no GCPolicy selects it: Python's startup defaults"
    if not live:
        return PENDING, "no Python process follows the agent's state yet"
    if "goal" in asked:
        if answer.get("goal") != asked["goal"]:
            return PENDING, "the agent does not steer to the policy's goal yet"
        return PENDING, f"{applied}/{len(live)} processes follow the autopilot"
    return PENDING, f"{applied}/{len(live)} processes run {asked['thresholds']}"


def _autopilot_state(answer: Mapping[str, Any]) -> tuple[str, str]:
    """An Auto pod that applied its goal: where its autopilot stands, and why."""
    autopilot = answer.get("autopilot")
    if not isinstance(autopilot, dict) or autopilot.get("goal") != answer.get("goal") or not autopilot.get("state"):
        return SETTLING, "no autopilot decision on this goal yet"
    return str(autopilot["state"]), str(autopilot.get("reason") or "")


def _runs(process: Mapping[str, Any], asked: Mapping[str, Any], answer: Mapping[str, Any]) -> bool:
    """The process runs the asked thresholds (1 to 3 values: the ones given);
    for a goal, the autopilot's latest choice (the agent's generation)."""
    if "goal" in asked:
        return process.get("generation") == answer.get("generation")
    want = list(asked["thresholds"])
    return list(process.get("thresholds") or [])[: len(want)] == want


def _failure(policy: PolicyView, pod_name: str) -> Mapping[str, Any] | None:
    failures = policy.status.get("failures") or []
    return next((f for f in failures if f.get("pod") == pod_name), None)


def _not_ready_reason(pod: Body) -> str:
    status = pod.get("status") or {}
    if pod["metadata"].get("deletionTimestamp"):
        return "being deleted"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"{container.get('name')}: {waiting.get('reason', 'waiting')}"
    return f"phase {status.get('phase', 'unknown')}, not Ready"


def _policy_report(policy: PolicyView, pods: list[str]) -> PolicyReport:
    return PolicyReport(
        namespace=policy.namespace,
        name=policy.name,
        mode=policy.mode,
        goal=policy.goal.to_json() if policy.goal is not None else None,
        thresholds=list(policy.settings.thresholds) if policy.settings is not None else [],
        freeze=policy.settings is not None and policy.settings.freeze,
        priority=policy.priority,
        generation=policy.generation,
        status=dict(policy.status),
        pods=pods,
    )


def _policy_json(policy: PolicyReport) -> dict[str, Any]:
    data = dataclasses.asdict(policy)
    data["ready"] = policy.ready
    return data


def _key(body: Body) -> Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])
