"""Pod addresses and pod status, computed as the kubelet computes them.

Pure (time comes in as an argument), so the rules that the operator and
kubectl depend on are unit-tested without a cluster: the phase follows the
kubelet's ``getPhase``, conditions keep their ``lastTransitionTime`` until
their status really changes, and the same inputs give an equal dict, which
is how the caller knows that nothing needs writing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

Json = dict[str, Any]
HOST_IP = "127.0.0.1"  # the node's address, as pods and clients see it


def timestamp(at: float) -> str:
    """RFC 3339 in UTC with second precision, as ``metav1.Time`` serialises."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


class IpAllocator:
    """Loopback addresses 127.B.1.1 to 127.B.255.254, one per pod (B is 0 for the first kubelet).

    Linux routes all of 127/8 to ``lo``, so a pod can bind its own address
    and two pods can both listen on port 8080.  Allocation is next-fit, not
    lowest-free: an address freed by a deleted pod is handed out again only
    after all others, so a client still holding the old pod's IP does not
    reach a new pod by accident.  ``block`` (B) keeps two clusters on one
    machine (a demo and a test run) from giving two pods the same address.
    """

    CAPACITY = 255 * 254

    def __init__(self, block: int = 0) -> None:
        self._prefix = f"127.{block}."
        self._held: set[int] = set()
        self._cursor = 0

    def _address(self, index: int) -> str:
        return f"{self._prefix}{1 + index // 254}.{1 + index % 254}"

    def _index(self, address: str) -> int | None:
        parts = address.removeprefix(self._prefix).split(".")
        if not address.startswith(self._prefix) or len(parts) != 2 or not all(p.isdigit() for p in parts):
            return None
        third, fourth = int(parts[0]), int(parts[1])
        if not (1 <= third <= 255 and 1 <= fourth <= 254):
            return None
        return (third - 1) * 254 + fourth - 1

    def allocate(self) -> str:
        for step in range(self.CAPACITY):
            index = (self._cursor + step) % self.CAPACITY
            if index not in self._held:
                self._held.add(index)
                self._cursor = index + 1
                return self._address(index)
        raise RuntimeError(f"all {self.CAPACITY} pod addresses are in use")

    def reserve(self, address: str) -> bool:
        """Take a given address (a pod that had it before a kubelet restart); False if unusable."""
        index = self._index(address)
        if index is None or index in self._held:
            return False
        self._held.add(index)
        return True

    def release(self, address: str) -> None:
        index = self._index(address)
        if index is not None:
            self._held.discard(index)

    def __len__(self) -> int:
        return len(self._held)


def pod_phase(restart_policy: str, statuses: Sequence[Mapping]) -> str:
    """The kubelet's ``getPhase`` for pods without init containers."""
    waiting = running = stopped = succeeded = 0
    for status in statuses:
        state = status.get("state", {})
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"].get("exitCode") == 0
        elif "terminated" in status.get("lastState", {}):
            stopped += 1  # waiting to restart after having run
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if restart_policy == "Never" else "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str | None = None, message: str | None = None) -> Json:
    # reason/message are sent as null when absent so that a strategic merge
    # patch removes a stale "ContainersNotReady" once the pod is ready.
    return {"type": kind, "status": "True" if ok else "False", "reason": None if ok else reason,
            "message": None if ok else message, "lastProbeTime": None}


def gate_problems(readiness_gates: Sequence[Mapping], current: Sequence[Mapping]) -> list[str]:
    """Why the pod's readiness gates (conditions others set) keep it unready, as the kubelet words it."""
    by_type = {c.get("type"): c.get("status") for c in current}
    problems = []
    for gate in readiness_gates:
        kind = gate.get("conditionType", "")
        if kind not in by_type:
            problems.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif by_type[kind] != "True":
            problems.append(f'the status of pod readiness gate "{kind}" is not "True", but {by_type[kind]}')
    return problems


def conditions(phase: str, statuses: Sequence[Mapping], gate_issues: Sequence[str]) -> list[Json]:
    """The conditions a kubelet owns (PodScheduled belongs to the binding), without times."""
    unready = [s["name"] for s in statuses if not s.get("ready")]
    if phase == "Succeeded":
        containers_ready = _condition("ContainersReady", False, "PodCompleted")
        pod_ready = {**containers_ready, "type": "Ready"}
    else:
        containers_ready = _condition(
            "ContainersReady", not unready, "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
        if unready:
            pod_ready = {**containers_ready, "type": "Ready"}
        else:
            pod_ready = _condition("Ready", not gate_issues, "ReadinessGatesNotReady", "; ".join(gate_issues))
    return [_condition("PodReadyToStartContainers", True), _condition("Initialized", True),
            containers_ready, pod_ready]


def with_transition_times(new: Sequence[Json], previous: Mapping[str, Mapping], now: float) -> list[Json]:
    """Stamp each condition; a condition whose status did not change keeps its old time."""
    stamped = []
    for condition in new:
        before = previous.get(condition["type"])
        same = before is not None and before.get("status") == condition["status"]
        stamped.append({**condition, "lastTransitionTime": before["lastTransitionTime"] if same else timestamp(now)})
    return stamped


def pod_status(
    *, restart_policy: str, containers: Sequence[Json], pod_ip: str, host_ip: str, start_time: str,
    generation: int, gate_issues: Sequence[str], previous: Mapping[str, Mapping], now: float,
) -> Json:
    """The ``status`` a kubelet reports for a pod whose containers look like ``containers``.

    ``generation`` is the pod's ``metadata.generation`` this status answers
    (``observedGeneration``, which a 1.37 kubelet reports on the pod and on each condition).
    """
    phase = pod_phase(restart_policy, containers)
    owned = [{**c, "observedGeneration": generation} for c in conditions(phase, containers, gate_issues)]
    return {
        "observedGeneration": generation,
        "phase": phase,
        "conditions": with_transition_times(owned, previous, now),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "containerStatuses": list(containers),
    }
