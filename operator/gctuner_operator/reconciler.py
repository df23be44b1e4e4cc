"""Converge every opted-in pod on its winning policy's settings.

Level-triggered: whatever happened (a policy changed, a pod became ready,
a container restarted, a periodic check), the pod's key is queued and one
``reconcile_pod`` compares what the pod should have with what it has, then
pushes only if they differ.  What it has is known from our own last outcome,
else (after an operator restart) from the pod's ``gctuner.dev/applied``
annotation confirmed by a live read: trusted when verified, never assumed.

Inputs: kopf's in-memory index of policies (keyed by namespace; plain dicts
of lists in tests) and our own map of opted-in pods, kept from pod events.
Not a kopf index for pods: kopf holds every handler back until each indexed
object has been seen, and its bookkeeping for that wakes every waiting
object on each one seen, O(n²) over all the pods of a cluster.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping
from typing import Any

from gctuner.core.settings import Settings

from . import status as status_mod
from .agent_client import AgentClient, AgentError
from .config import OperatorConfig
from .kube import Kube, KubeError
from .metrics import OperatorMetrics
from .status import Outcome, now_rfc3339
from .views import ENABLED_LABEL, Endpoint, Key, PodView, PolicyView, winner
from .workqueue import WorkQueue

logger = logging.getLogger(__name__)

class Reconciler:
    def __init__(
        self,
        policies: Mapping[str, Collection[PolicyView]],
        pods: dict[Key, PodView],
        agent: AgentClient,
        kube: Kube,
        config: OperatorConfig,
        metrics: OperatorMetrics,
    ) -> None:
        self._policies = policies
        self._pods = pods
        self._agent = agent
        self._kube = kube
        self._config = config
        self._metrics = metrics
        self._rollouts: dict[Key, tuple[int, float | None]] = {}  # policy -> (generation, first seen; None once done)
        self._queue = WorkQueue(self.reconcile_pod, config.max_parallel)
        self.outcomes: dict[Key, Outcome] = {}
        self._seen: dict[Key, tuple[Any, ...]] = {}
        self._governor: dict[Key, PolicyView] = {}  # who governed a pod last: its endpoint and token
        self._leaving: dict[Key, PodView] = {}  # opted out (label removed) but still running
        self._annotated: dict[Key, Mapping[str, Any] | None] = {}  # our last gctuner.dev/applied write
        self._dirty: set[str] = set()  # namespaces whose policy status may have changed
        self._written: dict[Key, Any] = {}
        self._announced: dict[Key, tuple[Any, ...]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self._queue.start()
        self._tasks = [
            asyncio.create_task(self._status_loop()),
            asyncio.create_task(self._verify_loop()),
        ]

    async def close(self) -> None:
        """Stop the workers and loops, then the clients they use."""
        await self._queue.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._agent.close()
        await self._kube.close()

    # --- what the kopf handlers call ---------------------------------------------

    def policy_changed(self, namespace: str) -> None:
        """A policy of ``namespace`` changed: every opted-in pod there may have a new winner."""
        self._dirty.add(namespace)
        now = asyncio.get_running_loop().time()
        for policy in self._in_namespace(namespace):
            if self._rollouts.get(policy.key, (None, None))[0] != policy.generation:
                self._rollouts[policy.key] = (policy.generation, now)  # the rollout clock starts
        for key in list(self._pods):
            if key[0] == namespace:
                self._queue.add(key)

    def pod_changed(self, key: Key, body: Mapping[str, Any] | None) -> None:
        """A pod event (``body`` None: deleted): keep the map of opted-in pods,
        and queue the pod if something that matters to us changed.

        Called for every pod event, opted in or not, so the common case (a pod
        that never opted in) must cost a label lookup and nothing more.
        """
        labels = (body.get("metadata", {}).get("labels") or {}) if body is not None else {}
        if labels.get(ENABLED_LABEL) != "true":
            if key not in self._pods and key not in self.outcomes:
                return  # never ours
            self._pods.pop(key, None)
            self._seen.pop(key, None)
            if body is None:  # deleted: nothing left to hand back
                self._leaving.pop(key, None)
            else:  # alive but opted out
                self._leaving[key] = PodView.from_body(body)
            self._queue.add(key)
            return
        pod = self._pods[key] = PodView.from_body(body)
        self._leaving.pop(key, None)
        previous = self._seen.get(key)
        fingerprint = (pod.ip, pod.ready, tuple(sorted(pod.labels.items())), pod.port, pod.path, pod.restarts)
        self._seen[key] = fingerprint
        if fingerprint != previous:
            restarted = previous is not None and previous[-1] != pod.restarts
            self._queue.add(key, verify=restarted)  # a restarted process is back on its defaults

    async def release(self, policy: Key) -> bool:
        """Wait until no pod holds ``policy``'s settings any more (finalizer)."""
        self.policy_changed(policy[0])
        deadline = asyncio.get_running_loop().time() + self._config.release_timeout
        while asyncio.get_running_loop().time() < deadline:
            if not any(o.policy == policy for o in self.outcomes.values()) and self._queue.idle():
                return True
            await asyncio.sleep(0.1)
        return False

    # --- one pod -----------------------------------------------------------------

    def _pod(self, key: Key) -> PodView | None:
        return self._pods.get(key)

    def _in_namespace(self, namespace: str) -> Collection[PolicyView]:
        return self._policies.get(namespace) or ()

    async def reconcile_pod(self, key: Key, verify: bool) -> None:
        try:
            await self._reconcile_pod(key, verify)
        finally:
            self._dirty.add(key[0])  # after the outcome is recorded: the status must count it

    async def _reconcile_pod(self, key: Key, verify: bool) -> None:
        pod = self._pod(key)
        if pod is None and key in self._leaving:
            await self._release_opted_out(self._leaving[key])
            return
        if pod is None:  # deleted
            for table in (self.outcomes, self._governor, self._annotated):
                table.pop(key, None)
            return
        policy = winner(self._in_namespace(key[0]), pod)
        if policy is not None:
            self._governor[key] = policy
        if not pod.reachable:
            return  # queued again by the event that makes it ready
        known = self.outcomes.get(key)
        want = policy.settings if policy else None
        if policy is None and known is None and pod.applied is None:
            return  # never governed by us: leave it alone
        try:
            if not await self._in_place(pod, policy, known, verify):
                await self._push(pod, policy)
            record = applied_record(policy)
            # What we wrote last is fresher than the index's copy, which lags our own patches.
            if not same_record(self._annotated.get(key, pod.applied), record):
                await self._kube.annotate_pod(pod.namespace, pod.name, record)
                self._annotated[key] = record
        except (AgentError, KubeError) as exc:
            self._failed(pod, policy, known, exc)
            return
        if known is None or not known.ok or known.settings != want:
            logger.info("pod %s/%s: %s", *key, describe(policy))
        self.outcomes[key] = Outcome(policy.key if policy else None, policy.generation if policy else 0, want, ok=True)

    async def _release_opted_out(self, pod: PodView) -> None:
        """The opt-in label is gone: startup defaults back, annotation removed, forgotten."""
        try:
            if pod.reachable:
                await self._push(pod, None)
            await self._kube.annotate_pod(pod.namespace, pod.name, None)
        except (AgentError, KubeError) as exc:
            self._failed(pod, None, self.outcomes.get(pod.key), exc)
            return
        logger.info("pod %s/%s opted out: startup defaults restored", pod.namespace, pod.name)
        for table in (self.outcomes, self._governor, self._leaving, self._annotated):
            table.pop(pod.key, None)

    async def _in_place(self, pod: PodView, policy: PolicyView | None, known: Outcome | None, verify: bool) -> bool:
        """Does the pod already run what it should? Read it live only when we
        do not know (after a restart) or a periodic check asks to."""
        want = policy.settings if policy else None
        if known is not None and not verify:
            return known.ok and known.settings == want
        if known is None and not verify and not same_settings(pod.applied, want):
            return False  # the annotation already says it differs: no need to read first
        try:
            live = await self._agent.read(pod.ip or "", pod.endpoint(self._endpoint(pod, policy)))
        except AgentError:
            self._metrics.verifications.labels("unreachable").inc()
            return False
        matches = live_matches(live, want)
        self._metrics.verifications.labels("in_place" if matches else "drifted").inc()
        return matches

    async def _push(self, pod: PodView, policy: PolicyView | None) -> None:
        governor = policy or self._governor.get(pod.key)
        token = self._config.token
        if governor is not None and governor.token_ref is not None:
            token = await self._kube.token(pod.namespace, governor.token_ref)
        endpoint = pod.endpoint(self._endpoint(pod, policy))
        with self._metrics.push_seconds.time():
            try:
                if policy is None:
                    await self._agent.restore(pod.ip or "", endpoint, token)
                else:
                    await self._agent.push(pod.ip or "", endpoint, policy.settings, token)
            except AgentError:
                self._metrics.pushes.labels("failed").inc()
                raise
        self._metrics.pushes.labels("restored" if policy is None else "applied").inc()

    def _endpoint(self, pod: PodView, policy: PolicyView | None) -> Endpoint:
        governor = policy or self._governor.get(pod.key)
        return governor.endpoint if governor else Endpoint()

    def _failed(self, pod: PodView, policy: PolicyView | None, known: Outcome | None, exc: Exception) -> None:
        reason, message = (exc.reason, exc.message) if isinstance(exc, AgentError) else ("APIError", str(exc))
        wanted = policy.key if policy else None
        continuing = known is not None and not known.ok and known.policy == wanted
        attempts = known.attempts + 1 if continuing else 1
        since = known.since if continuing and known else now_rfc3339()
        self.outcomes[pod.key] = Outcome(
            wanted, policy.generation if policy else 0, policy.settings if policy else None,
            ok=False, reason=reason, message=message, since=since, attempts=attempts,
        )
        delay = min(self._config.retry_max, self._config.retry_base * 2 ** (attempts - 1))
        logger.warning("pod %s/%s: %s failed (%s: %s); retry in %.0fs", pod.namespace, pod.name, describe(policy), reason, message, delay)
        self._queue.add_after(pod.key, delay)

    # --- periodic work -----------------------------------------------------------------

    async def _verify_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.verify_interval)
            for key in list(self._pods):
                self._queue.add(key, verify=True)

    async def _status_loop(self) -> None:
        """Write the status of changed policies, at most every ``status_interval``;
        back off while the API server refuses or is away."""
        delay = self._config.status_interval
        while True:
            await asyncio.sleep(delay)
            dirty, self._dirty = self._dirty, set()
            try:
                for namespace in dirty:
                    await self._write_statuses(namespace)
            except Exception as exc:  # KubeError, or a bug: never let status writing stop
                self._dirty |= dirty
                delay = min(self._config.retry_max, delay * 2)
                log = logger.warning if isinstance(exc, KubeError) else logger.exception
                log("writing policy status failed: %s; retrying in %.1fs", exc, delay)
            else:
                delay = self._config.status_interval

    async def _write_statuses(self, namespace: str) -> None:
        policies = [p for p in self._in_namespace(namespace) if not p.deleting]
        pods = [pod for key, pod in self._pods.items() if key[0] == namespace]
        for policy in policies:
            new = status_mod.compute(policy, policies, pods, self.outcomes)
            self._observe_rollout(policy, new)
            comparable = {k: v for k, v in new.items() if k != "conditions"}, [
                {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in new["conditions"]
            ]
            if self._written.get(policy.key) == comparable:
                continue
            await self._kube.patch_policy_status(namespace, policy.name, new)
            self._written[policy.key] = comparable
            await self._announce(policy, new["conditions"][0])

    def _observe_rollout(self, policy: PolicyView, status: Mapping[str, Any]) -> None:
        """Time each generation from its event to all its pods applied; count pod states."""
        generation, started = self._rollouts.get(policy.key, (None, None))
        if generation == policy.generation and started is not None and status["conditions"][0]["reason"] == "Applied":
            self._metrics.rollout_seconds.observe(asyncio.get_running_loop().time() - started)
            self._rollouts[policy.key] = (policy.generation, None)  # observed once
        pending = status["matchedPods"] - status["governedElsewherePods"] - status["appliedPods"] - status["failedPods"]
        for state, count in (("applied", status["appliedPods"]), ("failed", status["failedPods"]), ("pending", pending)):
            self._metrics.pods.labels(policy.namespace, policy.name, state).set(count)

    async def _announce(self, policy: PolicyView, ready: Mapping[str, Any]) -> None:
        """One Event per rollout outcome (per generation and state), never one per pod."""
        mark = (policy.generation, ready["status"], ready["reason"])
        if self._announced.get(policy.key) == mark or ready["reason"] == "Progressing":
            return
        self._announced[policy.key] = mark
        kind = "Normal" if ready["status"] == "True" else "Warning"
        involved = {"name": policy.name, "namespace": policy.namespace, "uid": policy.uid}
        await self._kube.post_event(involved, kind, ready["reason"], f"{describe(policy)}: {ready['message']}")


def describe(policy: PolicyView | None) -> str:
    if policy is None:
        return "startup defaults restored"
    freeze = " + freeze" if policy.settings.freeze else ""
    return f"thresholds {list(policy.settings.thresholds)}{freeze} from {policy.name} (generation {policy.generation})"


def applied_record(policy: PolicyView | None) -> dict[str, Any] | None:
    """The ``gctuner.dev/applied`` annotation: which policy, generation and settings."""
    if policy is None:
        return None
    return {"policy": policy.name, "generation": policy.generation, "settings": policy.settings.to_json(), "time": now_rfc3339()}


def same_record(current: Mapping[str, Any] | None, wanted: Mapping[str, Any] | None) -> bool:
    """Equal but for the time: a re-verified pod is not re-annotated."""
    if current is None or wanted is None:
        return current is wanted
    return all(current.get(k) == wanted[k] for k in ("policy", "generation", "settings"))


def same_settings(applied: Mapping[str, Any] | None, want: Settings | None) -> bool:
    if applied is None or want is None:
        return applied is None and want is None
    return applied.get("settings") == want.to_json()


def live_matches(live: Mapping[str, Any], want: Settings | None) -> bool:
    """Every live process of the pod follows ``want`` (None: its startup defaults)."""
    if not live.get("in_sync"):
        return False
    desired = live.get("desired")
    if want is None:
        return desired is None
    if desired != want.to_json():
        return False
    n = len(want.thresholds)
    return all(list(p.get("thresholds", []))[:n] == list(want.thresholds) for p in live.get("processes", []))
