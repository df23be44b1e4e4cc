"""Reading every governed pod's measurements, about every ``telemetry_interval``.

A task of its own, with an agent client of its own (its own connection
pool, ``telemetry_parallel`` wide), so that it never holds up a push: a
rollout's pushes and checks run in the work queue as if it were not there.
A pod is read at most once per half interval, whichever read it is: a live
check by the reconciler meanwhile is taken as this pod's read (``offer``),
so the pods are not read twice for nothing. Each read keeps the previous
one's pause totals as the baseline of the next (the GC time share of a pod
without autopilot is their growth over the time between); a pod that does
not answer, or is gone or not ready, has no sample. After each round, the
namespaces whose figures were read are marked for a status write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any, Callable

from gctuner.policy import Key, PodView, PolicyView, winner

from .config import OperatorConfig
from .errors import AgentError
from .protocols import AgentApi
from .status import now_rfc3339
from .telemetry import PodSample, sample

logger = logging.getLogger(__name__)

MIN_AGE = 0.5
"""A pod's sample is replaced once it is older than this share of the interval."""


class TelemetryReader:
    def __init__(
        self, policies: Mapping[str, Collection[PolicyView]], pods: Mapping[Key, PodView], agent: AgentApi,
        config: OperatorConfig, refreshed: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._policies = policies
        self._pods = pods
        self._agent = agent
        self._config = config
        self._refreshed = refreshed
        self._clock = clock
        self._parallel = asyncio.Semaphore(config.telemetry_parallel)
        self.samples: dict[Key, PodSample] = {}
        """The last read of each governed, ready pod that answered."""

    def offer(self, key: Key, live: Mapping[str, Any]) -> None:
        """A live read made for another reason; taken if this pod's sample is due."""
        if self._due(key):
            self._take(key, live)
            self._refreshed(key[0])

    async def run(self) -> None:
        """Rounds forever, one every ``telemetry_interval``."""
        while True:
            try:
                await self.read_round()
            except Exception:  # a bug: never let telemetry stop
                logger.exception("reading telemetry failed unexpectedly")
            await asyncio.sleep(self._config.telemetry_interval)

    async def read_round(self) -> None:
        """Every governed, ready pod whose sample is due, ``telemetry_parallel`` at a time."""
        due: list[tuple[PodView, PolicyView]] = []
        for key in [k for k in self.samples if k not in self._pods]:
            del self.samples[key]  # deleted or opted out
        for key, pod in list(self._pods.items()):
            policy = winner(self._policies.get(key[0]) or (), pod)
            if policy is None or not pod.reachable:
                self.samples.pop(key, None)
            elif self._due(key):
                due.append((pod, policy))
        await asyncio.gather(*(self._read(pod, policy) for pod, policy in due))
        for namespace in sorted({pod.namespace for pod, _ in due}):
            self._refreshed(namespace)

    async def _read(self, pod: PodView, policy: PolicyView) -> None:
        async with self._parallel:
            try:
                live = await self._agent.read(pod.ip or "", pod.endpoint(policy))
            except AgentError as error:
                logger.debug("telemetry of %s/%s: %s", pod.namespace, pod.name, error)
                self.samples.pop(pod.key, None)
                return
        self._take(pod.key, live)

    def _due(self, key: Key) -> bool:
        previous = self.samples.get(key)
        return previous is None or self._clock() - previous.at >= MIN_AGE * self._config.telemetry_interval

    def _take(self, key: Key, live: Mapping[str, Any]) -> None:
        self.samples[key] = sample(live, self.samples.get(key), self._clock(), now_rfc3339())
