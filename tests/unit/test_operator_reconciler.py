"""The reconciler with fakes at its two boundaries (fault injection only).

The proof that rollouts work is end-to-end (tests/e2e); these pin down the
decisions that are hard to provoke there: one slow or failing pod never
delays the others, failures are retried, and nothing is pushed twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry
from test_operator_views import pod, policy

from gctuner.core.settings import Settings
from gctuner_operator.agent_client import AgentError
from gctuner_operator.config import OperatorConfig
from gctuner_operator.metrics import OperatorMetrics
from gctuner_operator.reconciler import Reconciler
from gctuner_operator.views import Endpoint, PodView, PolicyView


class FakeAgent:
    def __init__(self, failing: set[str] = frozenset(), slow: set[str] = frozenset()) -> None:
        self.failing, self.slow = set(failing), set(slow)
        self.pushes: list[str] = []
        self.live: dict[str, Settings | None] = {}

    async def push(self, ip: str, endpoint: Endpoint, settings: Settings, token: str | None) -> dict[str, Any]:
        if ip in self.slow:
            await asyncio.sleep(3600)
        if ip in self.failing:
            raise AgentError("Unreachable", "connection refused")
        self.pushes.append(ip)
        self.live[ip] = settings
        return {}

    async def restore(self, ip: str, endpoint: Endpoint, token: str | None) -> dict[str, Any]:
        self.pushes.append(ip)
        self.live[ip] = None
        return {}

    async def read(self, ip: str, endpoint: Endpoint) -> dict[str, Any]:
        want = self.live.get(ip)
        return {"in_sync": True, "desired": want.to_json() if want else None,
                "processes": [{"thresholds": list(want.thresholds) if want else [700, 10, 10]}]}

    async def close(self) -> None: ...


class FakeKube:
    def __init__(self) -> None:
        self.statuses: dict[str, dict[str, Any]] = {}
        self.annotations: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []

    async def annotate_pod(self, namespace: str, name: str, applied: Any) -> None:
        self.annotations[name] = applied

    async def patch_policy_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.statuses[name] = status

    async def post_event(self, involved: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((involved["name"], type_, reason))

    async def token(self, namespace: str, ref: Any) -> str:
        return "t"

    async def close(self) -> None: ...


def with_ip(p: PodView, ip: str) -> PodView:
    return PodView(p.namespace, p.name, p.labels, ip, p.ready, p.restarts, None, None)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def make(pods: list[PodView], policies: list[PolicyView], agent: FakeAgent, kube: FakeKube) -> Reconciler:
    config = OperatorConfig(status_interval=0.01, retry_base=0.05, retry_max=0.1, verify_interval=3600)
    metrics = OperatorMetrics(CollectorRegistry())
    rec = Reconciler({"shop": list(policies)}, {p.key: p for p in pods}, agent, kube, config, metrics)  # type: ignore[arg-type]
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
    await until(lambda: rec._queue.idle())
    assert agent.pushes == ["127.0.1.1"]
    assert kube.annotations["a"]["settings"]["thresholds"] == [50000, 20, 100]
    assert kube.events == [("web", "Normal", "Applied")]  # one Event per rollout
    assert rec._metrics.registry.get_sample_value("gctuner_operator_pushes_total", {"result": "applied"}) == 1
    assert rec._metrics.registry.get_sample_value("gctuner_operator_rollout_duration_seconds_count") == 1
    await rec.close()
