"""Write each policy's status and its rollout Events: once per change, not per pod.

Pods mark their namespace dirty; every ``status_interval`` the dirty
namespaces' statuses are computed (``status.compute``), written when they
changed, and each rollout outcome (per generation and state) is announced
with one Event. The telemetry's own timestamp is no change: a refresh that
found the same (rounded) figures writes nothing. Nothing is recorded as done before the API server took it:
a status or Event that failed stays due and is tried again in the next
round, which backs off while the API server refuses or is away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any

from gctuner.policy import Key, PodView, PolicyView

from . import status
from .backoff import backoff
from .config import OperatorConfig
from .errors import KubeError
from .metrics import OperatorMetrics
from .pod_reconciler import describe
from .protocols import KubeApi
from .telemetry import PodSample

logger = logging.getLogger(__name__)


class StatusWriter:
    def __init__(
        self, policies: Mapping[str, Collection[PolicyView]], pods: Mapping[Key, PodView],
        outcomes: Mapping[Key, status.Outcome], kube: KubeApi, config: OperatorConfig, metrics: OperatorMetrics,
        samples: Mapping[Key, PodSample] | None = None,
    ) -> None:  # fmt: skip
        self._policies = policies
        self._pods = pods
        self._outcomes = outcomes
        self._samples: Mapping[Key, PodSample] = samples if samples is not None else {}
        self._kube = kube
        self._config = config
        self._metrics = metrics
        self._dirty: set[str] = set()  # namespaces whose policy status may have changed
        self._written: dict[Key, Any] = {}  # the last status the API server took, without timestamps
        self._announced: dict[Key, tuple[Any, ...]] = {}  # the last rollout outcome posted as an Event
        self._rollouts: dict[Key, tuple[int, float | None]] = {}  # generation, first seen; None once done

    def mark(self, namespace: str) -> None:
        """A policy or pod of ``namespace`` changed: its statuses are due."""
        self._dirty.add(namespace)

    def policies_changed(self, namespace: str) -> None:
        """Statuses are due, and a new generation starts its rollout clock."""
        self.mark(namespace)
        now = asyncio.get_running_loop().time()
        for policy in self._policies.get(namespace) or ():
            if self._rollouts.get(policy.key, (None, None))[0] != policy.generation:
                self._rollouts[policy.key] = (policy.generation, now)

    async def run(self) -> None:
        """Write rounds forever, at most every ``status_interval``; back off after a failed round."""
        failed_rounds = 0
        while True:
            await asyncio.sleep(backoff(failed_rounds, self._config.status_interval * 2, self._config.retry_max)
                                if failed_rounds else self._config.status_interval)  # fmt: skip
            try:
                landed = await self.write_round()
            except Exception:  # a bug: never let status writing stop
                logger.exception("writing policy status failed unexpectedly")
                landed = False
            failed_rounds = 0 if landed else failed_rounds + 1

    async def write_round(self) -> bool:
        """Every dirty namespace once; False if anything is still due (it stays dirty)."""
        dirty, self._dirty = self._dirty, set()
        landed = True
        for namespace in sorted(dirty):
            try:
                await self._write_namespace(namespace)
            except _Failed as failure:
                self._dirty.add(namespace)
                landed = False
                logger.warning("%s failed: %s; retrying", failure.what, failure.error)
        return landed

    async def _write_namespace(self, namespace: str) -> None:
        policies = [p for p in self._policies.get(namespace) or () if not p.deleting]
        pods = [pod for key, pod in self._pods.items() if key[0] == namespace]
        for policy in policies:
            new = status.compute(policy, policies, pods, self._outcomes, self._samples)
            self._observe_rollout(policy, new)
            comparable = _comparable(new)
            if self._written.get(policy.key) != comparable:
                try:
                    await self._kube.patch_policy_status(namespace, policy.name, new)
                except KubeError as error:
                    raise _Failed("writing policy status", error) from None
                self._written[policy.key] = comparable
            await self._announce(policy, new["conditions"][0])

    def _observe_rollout(self, policy: PolicyView, new: Mapping[str, Any]) -> None:
        """Time each generation from its event to all its pods applied; count pod states."""
        generation, started = self._rollouts.get(policy.key, (None, None))
        if generation == policy.generation and started is not None and new["conditions"][0]["reason"] == "Applied":
            self._metrics.rollout_seconds.observe(asyncio.get_running_loop().time() - started)
            self._rollouts[policy.key] = (policy.generation, None)  # observed once
        pending = new["matchedPods"] - new["governedElsewherePods"] - new["appliedPods"] - new["failedPods"]
        for state, count in (("applied", new["appliedPods"]), ("failed", new["failedPods"]), ("pending", pending)):
            self._metrics.pods.labels(policy.namespace, policy.name, state).set(count)

    async def _announce(self, policy: PolicyView, ready: Mapping[str, Any]) -> None:
        """One Event per rollout outcome (per generation and state), never one per pod; marked once posted."""
        mark = (policy.generation, ready["status"], ready["reason"])
        if self._announced.get(policy.key) == mark or ready["reason"] == "Progressing":
            return
        kind = "Normal" if ready["status"] == "True" else "Warning"
        involved = {"name": policy.name, "namespace": policy.namespace, "uid": policy.uid}
        try:
            await self._kube.post_event(involved, kind, ready["reason"], f"{describe(policy)}: {ready['message']}")
        except KubeError as error:
            raise _Failed(f"posting the {ready['reason']} Event of {policy.name}", error) from None
        self._announced[policy.key] = mark


def _comparable(new: Mapping[str, Any]) -> Any:
    """The status without its timestamps: what makes a write worth it."""
    telemetry = new.get("telemetry")
    return (
        {k: v for k, v in new.items() if k not in ("conditions", "telemetry")},
        None if telemetry is None else {k: v for k, v in telemetry.items() if k != "time"},
        [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in new["conditions"]],
    )


class _Failed(Exception):
    """Which write of a round failed, for the log."""

    def __init__(self, what: str, error: KubeError) -> None:
        super().__init__(what)
        self.what = what
        self.error = error
