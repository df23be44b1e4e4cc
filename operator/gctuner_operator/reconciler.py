"""The operator's moving parts, wired: what the kopf handlers call.

Inputs: kopf's in-memory index of policies (keyed by namespace; plain dicts
of lists in tests) and pod events, kept in our own ``PodIndex``. A work
queue runs ``PodReconciler.reconcile`` per pod key with bounded parallelism;
``StatusWriter`` turns the outcomes into policy statuses and Events; a
periodic loop queues every pod for a live check; ``TelemetryReader`` reads
what the pods measure, in a task and on connections of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gctuner.policy import Key, PodView

from .config import OperatorConfig
from .metrics import OperatorMetrics
from .pod_index import PodIndex
from .pod_reconciler import PodReconciler, Policies
from .protocols import AgentApi, KubeApi
from .status import Outcome
from .status_writer import StatusWriter
from .telemetry_reader import TelemetryReader
from .workqueue import WorkQueue


class Reconciler:
    def __init__(
        self, policies: Policies, pods: dict[Key, PodView], agent: AgentApi, kube: KubeApi,
        config: OperatorConfig, metrics: OperatorMetrics, telemetry_agent: AgentApi | None = None,
    ) -> None:  # fmt: skip
        self._policies = policies
        self._agent = agent
        self._telemetry_agent = telemetry_agent
        self._kube = kube
        self._config = config
        self.metrics = metrics
        self.queue: WorkQueue[Key] = WorkQueue(self._work, config.max_parallel)
        self.index = PodIndex(pods)
        self.telemetry = TelemetryReader(policies, self.index.pods, telemetry_agent or agent, config,
                                         refreshed=lambda namespace: self.status.mark(namespace))  # fmt: skip
        self.pods = PodReconciler(policies, self.index, agent, kube, config, metrics, self.queue.add_after,
                                  on_read=self.telemetry.offer)  # fmt: skip
        self.status = StatusWriter(policies, self.index.pods, self.pods.outcomes, kube, config, metrics,
                                   self.telemetry.samples)  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def outcomes(self) -> Mapping[Key, Outcome]:
        return self.pods.outcomes

    def start(self) -> None:
        self.queue.start()
        self._tasks = [asyncio.create_task(self.status.run()), asyncio.create_task(self._verify_loop()),
                       asyncio.create_task(self.telemetry.run())]  # fmt: skip

    async def pause(self) -> None:
        """Stand by (another replica acts): no push, no status; the pod index stays warm. ``start`` resumes."""
        await self.queue.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def resync(self) -> None:
        """Check every pod live (on taking over: the other replica may have changed them)."""
        for key in list(self.index.pods):
            self.queue.add(key, verify=True)

    def known_pods(self) -> list[Key]:
        """The opted-in pods known now: what the pod watch diffs a relist against."""
        return list(self.index.pods)

    async def close(self) -> None:
        """Stop the workers and loops, then the clients they use."""
        await self.queue.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._agent.close()
        if self._telemetry_agent is not None:
            await self._telemetry_agent.close()
        await self._kube.close()

    def policy_changed(self, namespace: str) -> None:
        """A policy of ``namespace`` changed: every opted-in pod there may have a new winner."""
        self.status.policies_changed(namespace)
        for key in list(self.index.pods):
            if key[0] == namespace:
                self.queue.add(key)

    def pod_changed(self, key: Key, body: Mapping[str, Any] | None) -> None:
        """A pod event (``body`` None: deleted); queued if something that matters to us changed."""
        change = self.index.observe(key, body, tracked=key in self.pods.outcomes)
        if change != "none":
            self.queue.add(key, verify=change == "verify")

    async def release(self, policy: Key) -> bool:
        """Wait until no pod holds ``policy``'s settings any more (finalizer)."""
        self.policy_changed(policy[0])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.release_timeout
        while loop.time() < deadline:
            if not any(o.policy == policy for o in self.outcomes.values()) and self.queue.idle():
                return True
            await asyncio.sleep(0.1)
        return False

    async def _work(self, key: Key, verify: bool) -> None:
        try:
            await self.pods.reconcile(key, verify)
        finally:
            self.status.mark(key[0])  # after the outcome is recorded: the status must count it

    async def _verify_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.verify_interval)
            for key in list(self.index.pods):
                self.queue.add(key, verify=True)
