"""The reconciler with fakes at its two boundaries (fault injection only).

The proof that rollouts work is end-to-end (tests/e2e); these pin down the
decisions that are hard to provoke there: one slow or failing pod never
delays the others, failures are retried, and nothing is pushed twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from test_policy import auto_policy, pod, policy

from gctuner.autopilot.goal import Goal
from gctuner.core.settings import Settings
from gctuner.policy import Endpoint, PodView, PolicyView, SecretRef
from gctuner_operator.config import OperatorConfig
from gctuner_operator.errors import AgentError, KubeError
from gctuner_operator.metrics import OperatorMetrics
from gctuner_operator.protocols import AgentApi, KubeApi
from gctuner_operator.reconciler import Reconciler


class FakeAgent:
    def __init__(self, failing: AbstractSet[str] = frozenset(), slow: AbstractSet[str] = frozenset(),
                 refusing: AbstractSet[str] = frozenset()) -> None:
        self.failing, self.slow, self.refusing = set(failing), set(slow), set(refusing)
        self.pushes: list[str] = []
        self.live: dict[str, Settings | Goal | None] = {}
        self.applied_by: dict[str, Mapping[str, Any] | None] = {}  # what the agent keeps beside the settings
        self.reads = 0

    async def push(self, ip: str, endpoint: Endpoint, settings: Settings, token: str | None,
                   applied_by: Mapping[str, Any] | None = None) -> dict[str, Any]:
        if ip in self.slow:
            await asyncio.sleep(3600)
        if ip in self.failing:
            raise AgentError("Unreachable", "connection refused")
        if ip in self.refusing:
            raise AgentError("Rejected", "HTTP 400: thresholds[0] must be ...", retryable=False)
        self.pushes.append(ip)
        self.live[ip], self.applied_by[ip] = settings, applied_by
        return {}

    async def steer(self, ip: str, endpoint: Endpoint, goal: Goal, token: str | None,
                    applied_by: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.pushes.append(ip)
        self.live[ip], self.applied_by[ip] = goal, applied_by
        return {}

    async def restore(self, ip: str, endpoint: Endpoint, token: str | None) -> dict[str, Any]:
        self.pushes.append(ip)
        self.live[ip], self.applied_by[ip] = None, None
        return {}

    async def read(self, ip: str, endpoint: Endpoint) -> dict[str, Any]:
        self.reads += 1
        want = self.live.get(ip)
        if isinstance(want, Goal):  # the autopilot chose 9000 and is within the goal
            return {"in_sync": True, "desired": {"thresholds": [9000]}, "goal": want.to_json(), "defaults": [700, 10, 10],
                    "processes": [{"pid": 1, "thresholds": [9000, 10, 10], "pauses": {"pause_ns_total": 0, "pause_ns_max": 10**6}}],
                    "autopilot": {"goal": want.to_json(), "state": "WithinGoal", "reason": "GC 0.5% of the time",
                                  "measured": {"gcTimePercent": 0.5, "longestPauseMillis": 1.0},
                                  "choice": {"thresholds": [9000], "frozen": False}}}
        return {"in_sync": True, "desired": want.to_json() if want else None, "defaults": [700, 10, 10],
                **({"applied_by": self.applied_by[ip]} if self.applied_by.get(ip) else {}),
                "processes": [{"pid": 1, "thresholds": list(want.thresholds) if want else [700, 10, 10],
                               "pauses": {"pause_ns_total": 0, "pause_ns_max": 10**6}}]}

    async def close(self) -> None: ...


class FakeKube:
    def __init__(self) -> None:
        self.statuses: dict[str, Mapping[str, Any]] = {}
        self.gone: set[str] = set()  # pods deleted meanwhile
        self.events: list[tuple[str, str, str]] = []
        self.refused_events = 0  # how many Event posts to refuse first

    async def pod_exists(self, namespace: str, name: str) -> bool:
        return name not in self.gone

    async def patch_policy_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.statuses[name] = status

    async def post_event(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        if self.refused_events:
            self.refused_events -= 1
            raise KubeError("posting an Event: HTTP 503 Service Unavailable")
        self.events.append((involved["name"], type_, reason))

    async def token(self, namespace: str, ref: SecretRef) -> str:
        return "t"

    async def close(self) -> None: ...


def with_ip(p: PodView, ip: str) -> PodView:
    return PodView(p.namespace, p.name, p.labels, ip, p.ready, p.restarts, None, None)


def fakes_fit() -> tuple[AgentApi, KubeApi]:
    """The fakes are checked against the protocols the reconciler is typed with."""
    return FakeAgent(), FakeKube()


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def make(pods: list[PodView], policies: list[PolicyView], agent: FakeAgent, kube: FakeKube) -> Reconciler:
    config = OperatorConfig(status_interval=0.01, retry_base=0.05, retry_max=0.1, verify_interval=3600)
    metrics = OperatorMetrics(CollectorRegistry())
    rec = Reconciler({"shop": list(policies)}, {p.key: p for p in pods}, agent, kube, config, metrics)
    rec.start()
    return rec


async def test_a_hanging_pod_does_not_delay_the_others() -> None:
    pods = [with_ip(pod(f"p{i}"), f"127.0.1.{i}") for i in range(1, 6)]
    agent, kube = FakeAgent(slow={"127.0.1.1"}), FakeKube()
    rec = make(pods, [policy()], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("appliedPods") == 4)
    assert sorted(agent.pushes) == [f"127.0.1.{i}" for i in range(2, 6)]
    await rec.close()


async def test_a_failing_pod_is_retried_and_reported() -> None:
    pods = [with_ip(pod("a"), "127.0.1.1"), with_ip(pod("b"), "127.0.1.2")]
    agent, kube = FakeAgent(failing={"127.0.1.2"}), FakeKube()
    rec = make(pods, [policy()], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("failedPods") == 1)
    assert kube.statuses["web"]["failures"][0]["reason"] == "Unreachable"
    await until(lambda: rec.outcomes[("shop", "b")].attempts >= 2)  # retried with backoff
    agent.failing.clear()
    await until(lambda: kube.statuses["web"]["appliedPods"] == 2 and kube.statuses["web"]["failedPods"] == 0)
    await rec.close()


async def test_an_unchanged_pod_is_not_pushed_again() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(), FakeKube()
    rec = make([p], [policy()], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("appliedPods") == 1)
    rec.policy_changed("shop")
    rec.pod_changed(p.key, {"metadata": {"namespace": "shop", "name": "a", "labels": {"app": "web", "gctuner.dev/enabled": "true"}}, "status": {"phase": "Running", "podIP": "127.0.1.1", "conditions": [{"type": "Ready", "status": "True"}]}})
    await until(lambda: rec.queue.idle())
    assert agent.pushes == ["127.0.1.1"]
    assert agent.applied_by["127.0.1.1"] == {"policy": "shop/web", "generation": 1}  # travels with the push
    assert kube.events == [("web", "Normal", "Applied")]  # one Event per rollout
    assert rec.metrics.registry.get_sample_value("gctuner_operator_pushes_total", {"result": "applied"}) == 1
    assert rec.metrics.registry.get_sample_value("gctuner_operator_rollout_duration_seconds_count") == 1
    await rec.close()


async def test_a_refused_push_is_retried_only_at_the_longest_delay() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(refusing=frozenset({"127.0.1.1"})), FakeKube()
    config = OperatorConfig(status_interval=0.01, retry_base=0.01, retry_max=0.3, verify_interval=3600)
    rec = Reconciler({"shop": [policy()]}, {p.key: p}, agent, kube, config, OperatorMetrics(CollectorRegistry()))
    rec.start()
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("failedPods") == 1)
    failure = kube.statuses["web"]["failures"][0]
    assert failure["reason"] == "Rejected" and "retried in 0.3s or on the next change" in failure["message"]
    await asyncio.sleep(0.15)  # a timeout would have been retried several times by now
    assert rec.outcomes[p.key].attempts == 1
    agent.refusing.clear()
    rec.policy_changed("shop")  # a change retries at once
    await until(lambda: kube.statuses["web"]["appliedPods"] == 1)
    await rec.close()


async def test_a_spec_the_agents_would_refuse_is_pushed_nowhere() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(), FakeKube()
    rec = make([p], [policy(thresholds=(0,))], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("failedPods") == 1)
    failure = kube.statuses["web"]["failures"][0]
    assert failure["reason"] == "InvalidSpec" and "allow_disable" in failure["message"]
    assert agent.pushes == []
    await rec.close()


async def test_a_failed_event_is_posted_in_a_later_round(caplog: pytest.LogCaptureFixture) -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(), FakeKube()
    kube.refused_events = 2
    rec = make([p], [policy()], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.events == [("web", "Normal", "Applied")])
    assert kube.refused_events == 0
    await until(lambda: rec.queue.idle())
    await asyncio.sleep(0.05)  # further rounds post nothing more
    assert kube.events == [("web", "Normal", "Applied")]
    await rec.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all(w.startswith("posting the Applied Event of web failed") for w in warnings)


async def test_an_auto_policy_pushes_its_goal_and_switching_modes_converges() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(), FakeKube()
    auto = auto_policy()
    policies = {"shop": [auto]}
    config = OperatorConfig(status_interval=0.01, retry_base=0.05, retry_max=0.1, verify_interval=3600,
                            telemetry_interval=0.05)
    rec = Reconciler(policies, {p.key: p}, agent, kube, config, OperatorMetrics(CollectorRegistry()))
    rec.start()
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("appliedPods") == 1)
    assert agent.live["127.0.1.1"] == auto.goal and agent.applied_by["127.0.1.1"] == {"policy": "shop/web", "generation": 1}
    await until(lambda: len(kube.statuses["web"]["conditions"]) == 2 and kube.statuses["web"]["recommendation"])
    status = kube.statuses["web"]
    assert (status["conditions"][1]["type"], status["conditions"][1]["status"]) == ("GoalMet", "True")
    assert status["telemetry"]["thresholds"]["median"] == [9000]
    assert status["recommendation"]["thresholds"] == [9900, 10, 10]

    rec.queue.add(p.key, verify=True)  # a live check: the same goal is in place, nothing pushed
    await until(lambda: rec.queue.idle())
    assert agent.pushes == ["127.0.1.1"]

    policies["shop"] = [policy()]  # switched to Static: the thresholds end the goal
    rec.policy_changed("shop")
    await until(lambda: agent.live["127.0.1.1"] == Settings((50000, 20, 100)))
    await until(lambda: kube.statuses["web"]["appliedPods"] == 1 and len(kube.statuses["web"]["conditions"]) == 1)
    assert kube.statuses["web"]["recommendation"] is None  # null: the merge patch removes it
    await rec.close()


async def test_telemetry_is_read_on_connections_of_its_own_and_writes_only_changes() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, telemetry_agent, kube = FakeAgent(), FakeAgent(), FakeKube()
    config = OperatorConfig(status_interval=0.01, retry_base=0.05, retry_max=0.1, verify_interval=3600,
                            telemetry_interval=0.02)
    rec = Reconciler({"shop": [policy()]}, {p.key: p}, agent, kube, config, OperatorMetrics(CollectorRegistry()),
                     telemetry_agent=telemetry_agent)
    writes: list[Mapping[str, Any]] = []
    patch = kube.patch_policy_status

    async def counting(namespace: str, name: str, status: Mapping[str, Any]) -> None:
        writes.append(status)
        await patch(namespace, name, status)

    kube.patch_policy_status = counting  # type: ignore[method-assign]
    rec.start()
    rec.policy_changed("shop")
    await until(lambda: (kube.statuses.get("web", {}).get("telemetry") or {}).get("gcTimePercent") is not None)
    # The push's agent read the pod once, at first contact (what it runs: no pod annotation to go by),
    # and offered that read to the telemetry, which reads on its own connections: two reads give a GC time.
    assert agent.reads == 1 and telemetry_agent.reads >= 1 and agent.reads + telemetry_agent.reads >= 2
    assert kube.statuses["web"]["telemetry"]["gcTimePercent"] == {"p50": 0.0, "p95": 0.0}
    reads, count = telemetry_agent.reads, len(writes)
    await until(lambda: telemetry_agent.reads >= reads + 3)  # more refreshes, the same figures
    assert len(writes) == count
    await rec.close()


async def test_after_a_restart_only_pods_that_differ_are_pushed_and_only_ours_are_restored() -> None:
    """No annotation to go by: a live read tells what each pod runs, and ``applied_by`` whose it is."""
    tuned, stale, ours, theirs = (with_ip(pod(n), f"127.0.2.{i}") for i, n in enumerate(("a", "b", "c", "d"), 1))
    theirs = PodView(theirs.namespace, theirs.name, {"app": "other", "gctuner.dev/enabled": "true"}, theirs.ip,
                     True, 0, None, None)
    ours = PodView(ours.namespace, ours.name, {"app": "other", "gctuner.dev/enabled": "true"}, ours.ip, True, 0, None, None)
    agent, kube = FakeAgent(), FakeKube()
    web = policy(selector={"matchLabels": {"app": "web"}})
    agent.live = {"127.0.2.1": web.settings, "127.0.2.2": Settings((1, 2, 3)),
                  "127.0.2.3": Settings((9, 9, 9)), "127.0.2.4": Settings((8, 8, 8))}
    agent.applied_by = {"127.0.2.1": {"policy": "shop/web", "generation": 1},
                        "127.0.2.3": {"policy": "shop/gone", "generation": 4}}  # a policy deleted while we were away
    rec = make([tuned, stale, ours, theirs], [web], agent, kube)
    for p in (tuned, stale, ours, theirs):
        rec.queue.add(p.key)  # what the pod watch's first list does
    await until(lambda: rec.queue.idle() and kube.statuses.get("web", {}).get("appliedPods") == 2)
    assert sorted(agent.pushes) == ["127.0.2.2", "127.0.2.3"]  # the stale one, and ours back to its defaults
    assert agent.live["127.0.2.3"] is None and agent.live["127.0.2.4"] == Settings((8, 8, 8))  # theirs untouched
    reads = agent.reads
    rec.queue.add(theirs.key, verify=True)
    await until(lambda: rec.queue.idle())
    assert agent.reads == reads  # found not ours once: not read again
    await rec.close()


async def test_an_opted_out_pod_that_is_gone_is_forgotten_not_retried() -> None:
    p = with_ip(pod("a"), "127.0.1.1")
    agent, kube = FakeAgent(), FakeKube()
    rec = make([p], [policy()], agent, kube)
    rec.policy_changed("shop")
    await until(lambda: kube.statuses.get("web", {}).get("appliedPods") == 1)
    agent.failing.add("127.0.1.1")
    kube.gone.add("a")  # the label removed, then the pod deleted: our selector never tells the deletion
    rec.pod_changed(p.key, {"metadata": {"namespace": "shop", "name": "a", "labels": {"app": "web"}},
                            "status": {"phase": "Running", "podIP": "127.0.1.1", "conditions": [{"type": "Ready", "status": "True"}]}})
    await until(lambda: rec.queue.idle() and p.key not in rec.outcomes and p.key not in rec.index.leaving)
    await rec.close()
