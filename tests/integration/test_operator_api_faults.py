"""The operator against API errors that a real control plane will not produce on demand.

kmock stands in for the API server (see ``kmock_cluster``); everything else
is real: the operator's code, its HTTP clients, and an agent per fake pod.
The first test runs the whole kopf operator; the others drive the
``Reconciler`` directly, with plain dicts as kopf's indexes. The proof that
rollouts work on a real cluster is in tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Callable

import kmock
import pytest
from kmock_cluster import (
    NAMESPACE,
    PODS,
    POLICIES,
    TOKEN,
    TUNED,
    Agent,
    Emulator,
    agents,
    operator,
    pod_body,
    policy_body,
    status_body,
)  # fmt: skip
from kubernetes_asyncio import client
from prometheus_client import CollectorRegistry

from gctuner.policy import PodView, PolicyView
from gctuner_operator.agent_client import AgentClient
from gctuner_operator.backoff import JITTER
from gctuner_operator.config import OperatorConfig
from gctuner_operator.kube import Kube
from gctuner_operator.metrics import OperatorMetrics
from gctuner_operator.reconciler import Reconciler
from polling import until

pytestmark = [pytest.mark.kmock(cls=Emulator), pytest.mark.timeout(60)]

POLICY_STATUS = kmock.resource(POLICIES), kmock.subresource("status")


@pytest.fixture
def api(kmock: Emulator) -> Emulator:
    """The mocked API server (kmock's pytest fixture, made an ``Emulator`` by the mark above)."""
    return kmock


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[[str], Agent]]:
    with agents(tmp_path / "pods") as start:
        yield start


# --- 1. the whole operator: a watch that answers 410 Gone -----------------------------


async def test_a_pods_watch_gone_410_is_relisted_and_pods_converge(
    api: Emulator, start_agent: Callable[[str], Agent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = start_agent("a"), start_agent("b")
    api.objects[POLICIES, NAMESPACE, "web"] = policy_body()
    api.objects[PODS, NAMESPACE, "a"] = pod_body("a", a.port)
    released = asyncio.Event()

    async def when_released() -> None:
        await released.wait()

    # The first pods watch says nothing until released, then that its resource version is gone.
    gone = api["watch v1/pods"][:1] << (b"", when_released, {
        "type": "ERROR", "object": status_body(410, "Expired", "too old resource version: 1 (42)"),
    })  # fmt: skip
    try:
        async with operator(api, tmp_path, monkeypatch):
            await until(lambda: a.thresholds == TUNED and a.applied_by, what="pod a applied")
            # b appears while that watch is broken: only a new list can tell the operator.
            api.objects[PODS, NAMESPACE, "b"] = pod_body("b", b.port)
            released.set()
            await until(lambda: b.thresholds == TUNED and b.applied_by, what="pod b applied after the 410")
            await until(lambda: api.status().get("appliedPods") == 2, what="the status to count both pods")
    finally:
        released.set()  # never leave the mocked stream hanging

    assert len(gone) == 1
    lists = api["list v1/pods"]
    assert len(lists) == 2  # our pod watch listed the pods again after the 410
    assert {r.params.get("labelSelector") for r in [*lists, *api["watch v1/pods"]]} == {"gctuner.dev/enabled=true"}
    assert b.applied_by is not None and (b.applied_by["policy"], b.applied_by["generation"]) == ("shop/web", 1)
    assert not api["patch v1/pods"]  # the operator never writes to pods
    assert (a.pushes, b.pushes) == (1, 1)  # the re-list re-pushed nothing
    assert api.status()["conditions"][0]["reason"] == "Applied"
    assert not api.errors
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []  # no handler failed


# --- 2. the reconciler alone, with API faults on its writes ---------------------------


PodIndex = dict[tuple[str, str], PodView]


@contextlib.asynccontextmanager
async def reconciler(api: Emulator, pods: dict[str, Agent]) -> AsyncIterator[tuple[Reconciler, PodIndex]]:
    """A started ``Reconciler`` writing to ``api`` and pushing to ``pods``' agents, and its
    index of pods (what kopf's would hold; the test edits it as a watch would); closed after."""
    for name, agent in pods.items():
        api.objects[PODS, NAMESPACE, name] = pod_body(name, agent.port)
    api.objects[POLICIES, NAMESPACE, "web"] = policy_body()
    index: PodIndex = {(NAMESPACE, n): PodView.from_body(pod_body(n, agent.port)) for n, agent in pods.items()}
    config = OperatorConfig(status_interval=0.05, retry_base=0.2, retry_max=1.0, verify_interval=3600, token=TOKEN)
    rec = Reconciler(
        policies={NAMESPACE: [PolicyView.from_body(policy_body())]},
        pods=index,
        agent=AgentClient(config.push_timeout, config.max_parallel),
        kube=Kube(client.ApiClient(client.Configuration(host=str(api.url).rstrip("/")))),
        config=config,
        metrics=OperatorMetrics(CollectorRegistry()),
    )
    rec.start()
    try:
        yield rec, index
    finally:
        await rec.close()


async def test_5xx_on_the_status_backs_off_until_it_lands(
    api: Emulator, start_agent: Callable[[str], Agent], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = start_agent("a"), start_agent("b")
    writes = api["patch", POLICY_STATUS]
    refused = [api.refuse(writes[:2], 500, "InternalError"), api.refuse(writes[2:3], 503, "ServiceUnavailable")]
    async with reconciler(api, {"a": a, "b": b}) as (rec, index):
        rec.policy_changed(NAMESPACE)
        await until(lambda: api.status().get("appliedPods") == 2, what="the status to land")
        await until(lambda: len(api["create v1/events"]) == 1, what="the rollout's Event")
        landed = len(writes)
        del index[(NAMESPACE, "b")]  # then pod b is deleted: the status loop still writes
        rec.pod_changed((NAMESPACE, "b"), None)
        await until(lambda: api.status().get("matchedPods") == 1, what="the status after b was deleted")

    assert [len(r) for r in refused] == [2, 1] and landed >= 4 and len(writes) == landed + 1
    times = api.arrivals(writes)
    gaps = [later - earlier for earlier, later in zip(times, times[1:4])]
    low = 1 - JITTER  # each delay is shortened by up to this share, at random
    assert gaps[0] >= 0.1 * low and gaps[1] >= 0.2 * low and gaps[2] >= 0.4 * low  # the interval, doubled per failure
    assert api.status()["conditions"][0]["reason"] == "Applied"
    assert (a.pushes, b.pushes) == (1, 1)
    assert not api["patch v1/pods"]  # the operator never writes to pods
    assert len(api["create v1/events"]) == 1  # one Event for the rollout, posted once it was written
    failures = [r.getMessage() for r in caplog.records if "writing policy status failed" in r.getMessage()]
    assert len(failures) == 3 and "HTTP 503" in failures[-1]
    assert not api.errors
