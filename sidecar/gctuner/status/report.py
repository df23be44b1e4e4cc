"""``gctuner status``'s report: policies, pods and live reads joined. No I/O here.

In: the ``items`` of ``kubectl get gcpolicies -o json`` and of the opted-in
pods, and each pod's ``GET /tune_gc`` answer (or why there is none). Out:
per policy, what it asks and how its rollout went; per pod, which policy
governs it, what its processes run now, how many applied the policy, their
GC pauses, and in one word plus a reason, where it stands.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from gctuner.status.selection import APPLIED_ANNOTATION, Body, endpoint, winner

Key = tuple[str, str]  # (namespace, name)

APPLIED, PENDING, FAILED, UNREACHABLE, NOT_READY, NO_POLICY = (
    "Applied", "Pending", "Failed", "Unreachable", "NotReady", "NoPolicy",
)  # fmt: skip


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
    asked: dict[str, Any] | None  # the governing policy's settings
    live: list[dict[str, Any]]  # per process: pid, thresholds, frozen, pauses
    applied_processes: int
    collections: int | None
    pause_ns_total: int | None
    pause_ns_max: int | None
    python: str | None
    flavour: str | None
    annotation: dict[str, Any] | None  # gctuner.dev/applied: what the operator last wrote
    error: str | None  # why the live read failed
    state: str
    reason: str


@dataclasses.dataclass(frozen=True)
class PolicyReport:
    namespace: str
    name: str
    thresholds: list[int]
    freeze: bool
    priority: int
    generation: int
    status: dict[str, Any]  # as the operator wrote it
    pods: list[str]  # the listed pods it governs

    @property
    def ready(self) -> dict[str, Any]:
        conditions = self.status.get("conditions") or []
        return next((c for c in conditions if c.get("type") == "Ready"), {})


@dataclasses.dataclass(frozen=True)
class Report:
    policies: list[PolicyReport]
    pods: list[PodReport]

    def to_json(self) -> dict[str, Any]:
        return {"policies": [_policy_json(p) for p in self.policies], "pods": [dataclasses.asdict(p) for p in self.pods]}


def targets(policies: list[Body], pods: Iterable[Body]) -> list[Target]:
    """The pods worth reading live (running and ready, with an IP) and where."""
    found = []
    for pod in pods:
        if is_ready(pod):
            port, path = endpoint(pod, winner(policies, pod))
            meta = pod["metadata"]
            found.append(Target(meta["namespace"], meta["name"], pod["status"]["podIP"], port, path))
    return found


def build(policies: list[Body], pods: list[Body], reads: Mapping[Key, LiveRead]) -> Report:
    governed: dict[Key, list[str]] = {_key(p): [] for p in policies}
    pod_reports = []
    for pod in sorted(pods, key=_key):
        policy = winner(policies, pod)
        if policy is not None:
            governed[_key(policy)].append(pod["metadata"]["name"])
        pod_reports.append(_pod_report(pod, policy, reads.get(_key(pod))))
    policy_reports = [_policy_report(p, governed[_key(p)]) for p in sorted(policies, key=_key)]
    return Report(policy_reports, pod_reports)


def is_ready(pod: Body) -> bool:
    """Running, Ready, addressed and not being deleted: what the operator pushes to."""
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    return (
        status.get("phase") == "Running"
        and bool(status.get("podIP"))
        and not pod["metadata"].get("deletionTimestamp")
        and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    )


def _pod_report(pod: Body, policy: Body | None, read: LiveRead | None) -> PodReport:
    meta = pod["metadata"]
    asked = _settings(policy) if policy is not None else None
    answer = (read.answer if read is not None else None) or {}
    live = [p for p in answer.get("processes") or [] if isinstance(p, dict)]
    applied = sum(1 for p in live if asked is not None and _runs(p, asked))
    pauses = [p["pauses"] for p in live if isinstance(p.get("pauses"), dict)]
    state, reason = _state(pod, policy, asked, read, answer, live, applied)
    return PodReport(
        namespace=meta["namespace"],
        name=meta["name"],
        ip=(pod.get("status") or {}).get("podIP"),
        policy=None if policy is None else policy["metadata"]["name"],
        asked=asked,
        live=live,
        applied_processes=applied,
        collections=sum(p.get("collections", 0) for p in pauses) if pauses else None,
        pause_ns_total=sum(p.get("pause_ns_total", 0) for p in pauses) if pauses else None,
        pause_ns_max=max(p.get("pause_ns_max", 0) for p in pauses) if pauses else None,
        python=answer.get("python"),
        flavour=(answer.get("flavour") or {}).get("name"),
        annotation=_annotation(meta),
        error=None if read is None else read.error,
        state=state,
        reason=reason,
    )


def _state(
    pod: Body, policy: Body | None, asked: dict[str, Any] | None, read: LiveRead | None,
    answer: Mapping[str, Any], live: list[dict[str, Any]], applied: int,
) -> tuple[str, str]:  # fmt: skip
    """One word and why: the live processes first, then the operator's failures, then our own read."""
    if not is_ready(pod):
        return NOT_READY, _not_ready_reason(pod)
    if policy is not None and live and applied == len(live) and answer.get("in_sync") and answer.get("desired") == asked:
        return APPLIED, ""
    failure = None if policy is None else _failure(policy, pod["metadata"]["name"])
    if failure is not None:  # the operator's own words on why its push failed
        return FAILED, f"{failure.get('reason', '')}: {failure.get('message', '')}".strip(": ")
    if read is None or read.error is not None:
        return UNREACHABLE, (read.error if read is not None else "") or "not read"
    if policy is None:
        if answer.get("desired") is not None:
            return PENDING, "no policy selects it any more; startup defaults not restored yet"
        return NO_POLICY, "no GCPolicy selects it: Python's startup defaults"
    if not live:
        return PENDING, "no Python process follows the agent's state yet"
    return PENDING, f"{applied}/{len(live)} processes run {asked['thresholds']}"


def _runs(process: Mapping[str, Any], asked: Mapping[str, Any]) -> bool:
    """The process runs the asked thresholds (1 to 3 values: the ones given)."""
    want = list(asked["thresholds"])
    return list(process.get("thresholds") or [])[: len(want)] == want


def _failure(policy: Body, pod_name: str) -> Mapping[str, Any] | None:
    failures = (policy.get("status") or {}).get("failures") or []
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


def _settings(policy: Body) -> dict[str, Any]:
    """The settings as the agent reports them in ``desired``."""
    spec = policy.get("spec") or {}
    return {
        "thresholds": list(spec.get("thresholds") or []),
        "freeze": bool(spec.get("freeze", False)),
        "allow_disable": bool(spec.get("allowDisable", False)),
    }


def _annotation(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = (meta.get("annotations") or {}).get(APPLIED_ANNOTATION)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _policy_report(policy: Body, pods: list[str]) -> PolicyReport:
    meta, spec = policy["metadata"], policy.get("spec") or {}
    return PolicyReport(
        namespace=meta["namespace"],
        name=meta["name"],
        thresholds=list(spec.get("thresholds") or []),
        freeze=bool(spec.get("freeze", False)),
        priority=int(spec.get("priority", 0)),
        generation=int(meta.get("generation", 1)),
        status=dict(policy.get("status") or {}),
        pods=pods,
    )


def _policy_json(policy: PolicyReport) -> dict[str, Any]:
    data = dataclasses.asdict(policy)
    data["ready"] = policy.ready
    return data


def _key(body: Body) -> Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])
