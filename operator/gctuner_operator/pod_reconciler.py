"""Converge one opted-in pod on its winning policy's settings, or its goal.

Level-triggered: whatever happened (a policy changed, a pod became ready,
a container restarted, a periodic check), one ``reconcile`` compares what the
pod should have with what it has, then pushes only if they differ. What it
has is known from our own last outcome, else (after an operator restart)
from a live read of its agent (``GET /tune_gc``: desired, generation,
in_sync): trusted when verified, never assumed. The operator never writes to
pods: what it applied (policy, generation) travels with the push as
``applied_by``, and the agent reports it back.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any, Callable

from gctuner.autopilot.goal import Goal
from gctuner.policy import Key, PodView, PolicyView, winner

from .backoff import backoff
from .config import OperatorConfig
from .errors import AgentError, InvalidSpec, OperatorError
from .metrics import OperatorMetrics
from .pod_index import PodIndex
from .protocols import AgentApi, KubeApi
from .status import Outcome, Wanted, now_rfc3339

logger = logging.getLogger(__name__)

Policies = Mapping[str, Collection[PolicyView]]  # kopf's index: namespace -> its policies


class PodReconciler:
    def __init__(
        self, policies: Policies, index: PodIndex, agent: AgentApi, kube: KubeApi,
        config: OperatorConfig, metrics: OperatorMetrics, retry_after: Callable[[Key, float], None],
        on_read: Callable[[Key, Mapping[str, Any]], None] = lambda key, live: None,
    ) -> None:  # fmt: skip
        self._policies = policies
        self._index = index
        self._agent = agent
        self._kube = kube
        self._config = config
        self._metrics = metrics
        self._retry_after = retry_after
        self._on_read = on_read  # a live read, offered to the telemetry
        self._untouched: set[Key] = set()  # read once after a restart: not ours (no applied_by), left alone
        self.outcomes: dict[Key, Outcome] = {}
        """The last thing that happened to each pod we act on."""
        self._governor: dict[Key, PolicyView] = {}  # who governed a pod last: its endpoint and token

    async def reconcile(self, key: Key, verify: bool) -> None:
        pod = self._index.pods.get(key)
        if pod is None and key in self._index.leaving:
            await self._release_opted_out(self._index.leaving[key])
            return
        if pod is None:  # deleted
            self._forget(key)
            return
        policy = winner(self._policies.get(key[0]) or (), pod)
        if policy is not None:
            self._governor[key] = policy
        if not pod.reachable:
            return  # queued again by the event that makes it ready
        known = self.outcomes.get(key)
        if policy is None and known is None and not await self._was_ours(pod):
            return  # never governed by us: leave it alone
        try:
            want = _wanted(policy)
            if not await self._in_place(pod, policy, want, known, verify):
                await self._push(pod, policy, want)
        except OperatorError as exc:
            self._failed(pod, policy, known, exc)
            return
        if known is None or not known.ok or known.wanted != want:
            logger.info("pod %s/%s: %s", *key, describe(policy))
        self.outcomes[key] = Outcome(policy.key if policy else None, policy.generation if policy else 0, want, ok=True)

    async def _release_opted_out(self, pod: PodView) -> None:
        """The opt-in label is gone: startup defaults back, forgotten. Once
        outside our watch's selector, its deletion would never reach us: a
        failed restore asks the API server whether the pod still exists."""
        try:
            if pod.reachable:
                await self._push(pod, None, None)
        except OperatorError as exc:
            if not await self._kube.pod_exists(pod.namespace, pod.name):
                logger.info("pod %s/%s opted out and is gone", pod.namespace, pod.name)
                self._index.leaving.pop(pod.key, None)
                self._forget(pod.key)
                return
            self._failed(pod, None, self.outcomes.get(pod.key), exc)
            return
        logger.info("pod %s/%s opted out: startup defaults restored", pod.namespace, pod.name)
        self._index.leaving.pop(pod.key, None)
        self._forget(pod.key)

    def _forget(self, key: Key) -> None:
        self.outcomes.pop(key, None)
        self._governor.pop(key, None)
        self._untouched.discard(key)

    async def _was_ours(self, pod: PodView) -> bool:
        """After a restart, a pod no policy governs: did the operator give it what it runs
        (the agent reports ``applied_by``)? Then its defaults are due; else it is left alone."""
        if pod.key in self._untouched:
            return False
        try:
            live = await self._agent.read(pod.ip or "", pod.endpoint(self._governor.get(pod.key)))
        except AgentError:
            return False  # asked again at the next event or periodic check
        if live.get("applied_by") is not None and (live.get("desired") is not None or live.get("goal") is not None):
            return True
        self._untouched.add(pod.key)
        return False

    async def _in_place(
        self, pod: PodView, policy: PolicyView | None, want: Wanted, known: Outcome | None, verify: bool
    ) -> bool:
        """Does the pod already run what it should? Read it live only when we
        do not know (after a restart) or a periodic check asks to."""
        if known is not None and not verify:
            return known.ok and known.wanted == want
        try:
            live = await self._agent.read(pod.ip or "", pod.endpoint(policy or self._governor.get(pod.key)))
        except AgentError:
            self._metrics.verifications.labels("unreachable").inc()
            return False
        self._on_read(pod.key, live)
        matches = live_matches(live, want)
        self._metrics.verifications.labels("in_place" if matches else "drifted").inc()
        return matches

    async def _push(self, pod: PodView, policy: PolicyView | None, want: Wanted) -> None:
        """``want`` to the pod (settings, or a goal for its autopilot), or (None) its startup defaults back."""
        governor = policy or self._governor.get(pod.key)
        token = self._config.token
        if governor is not None and governor.token_ref is not None:
            token = await self._kube.token(pod.namespace, governor.token_ref)
        endpoint = pod.endpoint(governor)
        by = {"policy": f"{policy.namespace}/{policy.name}", "generation": policy.generation} if policy else None
        with self._metrics.push_seconds.time():
            try:
                if want is None:
                    await self._agent.restore(pod.ip or "", endpoint, token)
                elif isinstance(want, Goal):
                    await self._agent.steer(pod.ip or "", endpoint, want, token, applied_by=by)
                else:
                    await self._agent.push(pod.ip or "", endpoint, want, token, applied_by=by)
            except AgentError:
                self._metrics.pushes.labels("failed").inc()
                raise
        self._metrics.pushes.labels("restored" if want is None else "applied").inc()

    def _failed(self, pod: PodView, policy: PolicyView | None, known: Outcome | None, exc: OperatorError) -> None:
        """Record the failure and schedule the retry: with backoff when it may pass, else at the longest delay."""
        wanted = policy.key if policy else None
        continuing = known is not None and not known.ok and known.policy == wanted
        attempts = known.attempts + 1 if known is not None and continuing else 1
        since = known.since if known is not None and continuing else now_rfc3339()
        if exc.retryable:
            delay, message = backoff(attempts, self._config.retry_base, self._config.retry_max), exc.message
        else:
            delay = self._config.retry_max
            message = f"{exc.message} (refused: retried in {delay:g}s or on the next change)"
        self.outcomes[pod.key] = Outcome(
            wanted, policy.generation if policy else 0, policy.wanted if policy else None,
            ok=False, reason=exc.reason, message=message, since=since, attempts=attempts,
        )  # fmt: skip
        logger.warning("pod %s/%s: %s failed (%s: %s); retry in %.1fs",
                       pod.namespace, pod.name, describe(policy), exc.reason, message, delay)  # fmt: skip
        self._retry_after(pod.key, delay)


def _wanted(policy: PolicyView | None) -> Wanted:
    """What the pod should run (None: its startup defaults); a refused spec is pushed nowhere."""
    if policy is None:
        return None
    if policy.refused is not None or policy.wanted is None:
        raise InvalidSpec(f"{policy.name}: {policy.refused}")
    return policy.wanted


def describe(policy: PolicyView | None) -> str:
    if policy is None:
        return "startup defaults restored"
    if policy.goal is not None:
        goal = ", ".join(f"{k}={v:g}" for k, v in policy.goal.to_json().items())
        return f"goal {goal} from {policy.name} (generation {policy.generation})"
    if policy.settings is None:
        return f"invalid spec of {policy.name} (generation {policy.generation})"
    freeze = " + freeze" if policy.settings.freeze else ""
    return f"thresholds {list(policy.settings.thresholds)}{freeze} from {policy.name} (generation {policy.generation})"


def live_matches(live: Mapping[str, Any], want: Wanted) -> bool:
    """Every live process of the pod follows ``want`` (None: its startup defaults).

    A goal is followed when the agent steers to that very goal and every
    process runs what its autopilot published (the thresholds are the
    autopilot's to choose); settings or the defaults, when no goal is left.
    """
    if not live.get("in_sync"):
        return False
    if isinstance(want, Goal):
        return live.get("goal") == want.to_json()
    if live.get("goal") is not None:
        return False
    desired = live.get("desired")
    if want is None:
        return desired is None
    if desired != want.to_json():
        return False
    n = len(want.thresholds)
    return all(list(p.get("thresholds", []))[:n] == list(want.thresholds) for p in live.get("processes", []))
