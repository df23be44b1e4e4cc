"""The ``gctuner.dev/applied`` pod annotation: the operator's one write to pods.

It records which policy, generation and settings a pod was last given, so
that after an operator restart a pod that already runs its settings is
recognised (confirmed by a live read) instead of pushed again. It is going
away (the operator will never write to pods; the agent's ``GET /tune_gc``
reports what was applied): everything about it lives here and in
``gctuner.policy.APPLIED_ANNOTATION``, so removing it is removing this module
and its three calls in ``pod_reconciler``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gctuner.autopilot.goal import Goal
from gctuner.policy import Key, PodView, PolicyView

from .protocols import KubeApi
from .status import Wanted, now_rfc3339


class AppliedAnnotations:
    """Writes the annotation when what a pod was given changed, and only then."""

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube
        self._written: dict[Key, Mapping[str, Any] | None] = {}  # ours: fresher than the pod index's copy

    @staticmethod
    def says_differs(pod: PodView, want: Wanted) -> bool:
        """The annotation already tells that the pod runs something else: no need to read it first."""
        if pod.applied is None or want is None:
            return not (pod.applied is None and want is None)
        return pod.applied.get("goal" if isinstance(want, Goal) else "settings") != want.to_json()

    async def record(self, pod: PodView, policy: PolicyView | None) -> None:
        wanted = applied_record(policy)
        if not same_record(self._written.get(pod.key, pod.applied), wanted):
            await self._kube.annotate_pod(pod.namespace, pod.name, wanted)
            self._written[pod.key] = wanted

    async def remove(self, pod: PodView) -> None:
        await self._kube.annotate_pod(pod.namespace, pod.name, None)
        self.forget(pod.key)

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)


def applied_record(policy: PolicyView | None) -> dict[str, Any] | None:
    """The annotation's value: which policy, generation and settings (or goal, in Auto)."""
    if policy is None or policy.wanted is None:
        return None
    what = "goal" if policy.goal is not None else "settings"
    return {"policy": policy.name, "generation": policy.generation, what: policy.wanted.to_json(),
            "time": now_rfc3339()}  # fmt: skip


def same_record(current: Mapping[str, Any] | None, wanted: Mapping[str, Any] | None) -> bool:
    """Equal but for the time: a re-verified pod is not re-annotated."""
    if current is None or wanted is None:
        return current is wanted
    return all(current.get(k) == wanted.get(k) for k in ("policy", "generation", "settings", "goal"))
