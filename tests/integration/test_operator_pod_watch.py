"""The operator's own pod watch (a server-side label selector) against a mocked API server.

The whole operator runs (kopf and our handlers, see ``test_operator_api_faults.operator``);
kmock filters by the label selector as the API server does, so a pod that
loses the label arrives as DELETED with its new labels (``kmock_cluster``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest
from kmock_cluster import (
    NAMESPACE,
    PODS,
    POLICIES,
    STARTUP,
    TUNED,
    Agent,
    Emulator,
    agents,
    operator,
    pod_body,
    policy_body,
    status_body,
)

from gctuner.core.applied_by import AppliedBy
from gctuner.core.settings import Settings
from polling import until

pytestmark = [pytest.mark.kmock(cls=Emulator), pytest.mark.timeout(60)]

OPTED_OUT = {"app": "web", "gctuner.dev/enabled": "false"}
SELECTOR = "gctuner.dev/enabled=true"


@pytest.fixture
def api(kmock: Emulator) -> Emulator:
    return kmock


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[[str], Agent]]:
    with agents(tmp_path / "pods") as start:
        yield start


async def request(api: Emulator, method: str, path: str, body: Any = None) -> None:
    """A write through the emulator's HTTP API, so that its watches see it (as kubectl's would be)."""
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    url = str(api.url).rstrip("/") + path
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body, headers=headers) as response:
        assert response.status < 300, await response.text()


def restored(agent: Agent) -> bool:
    desired = agent.shared.desired()
    return tuple(agent.thresholds) == STARTUP and desired is not None and desired.settings is None


async def test_a_pod_that_loses_the_label_gets_its_defaults_and_a_deleted_pod_is_forgotten(
    api: Emulator, start_agent: Callable[[str], Agent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b, c = start_agent("a"), start_agent("b"), start_agent("c")
    api.objects[POLICIES, NAMESPACE, "web"] = policy_body()
    for name, agent in (("a", a), ("b", b), ("c", c)):
        api.objects[PODS, NAMESPACE, name] = pod_body(name, agent.port)
    bystander = pod_body("other", c.port)
    bystander["metadata"]["labels"] = {"app": "web"}  # matches the policy, never opted in
    api.objects[PODS, NAMESPACE, "other"] = bystander
    async with operator(api, tmp_path, monkeypatch):
        await until(lambda: api.status().get("appliedPods") == 3, what="the rollout to a, b and c")
        await request(api, "PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/a", {"metadata": {"labels": OPTED_OUT}})
        await until(lambda: restored(a), what="a's startup defaults back after it lost the label")
        await request(api, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/b")
        await until(lambda: api.status().get("matchedPods") == 1, what="the status to count c only")
    assert (a.pushes, b.pushes, c.pushes) == (2, 1, 1)  # a: tuned, then restored; b: nothing after its deletion
    assert a.applied_by is None and c.applied_by is not None  # a restore is nobody's record
    # Each DELETED came with the pod's last content, still labelled: a GET told an opt-out from a deletion.
    assert sorted(r.name for r in api["get v1/pods"] if r.name) == ["a", "b"]
    assert len(api["patch v1/pods"]) == 1  # the test's own label change: the operator never writes to pods
    # Only opted-in pods were ever asked for (kopf watched every pod of the cluster before).
    assert {r.params.get("labelSelector") for r in [*api["list v1/pods"], *api["watch v1/pods"]]} == {SELECTOR}


async def test_a_watch_error_backs_off_and_the_relist_finds_what_changed_meanwhile(
    api: Emulator, start_agent: Callable[[str], Agent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b, c = start_agent("a"), start_agent("b"), start_agent("c")
    api.objects[POLICIES, NAMESPACE, "web"] = policy_body()
    for name, agent in (("a", a), ("b", b), ("c", c)):
        api.objects[PODS, NAMESPACE, name] = pod_body(name, agent.port)
    released = asyncio.Event()

    async def when_released() -> None:
        await released.wait()

    broken = api["watch v1/pods"][:1] << (b"", when_released, {
        "type": "ERROR", "object": status_body(500, "InternalError", "etcd is away"),
    })  # fmt: skip
    try:
        async with operator(api, tmp_path, monkeypatch):
            await until(lambda: api.status().get("appliedPods") == 3, what="the rollout to a, b and c")
            # While the watch is broken (no event reaches the operator): b loses the label, c is deleted.
            opted_out = pod_body("b", b.port)
            opted_out["metadata"]["labels"] = OPTED_OUT
            api.objects[PODS, NAMESPACE, "b"] = opted_out
            del api.objects[PODS, NAMESPACE, "c"]
            released.set()
            await until(lambda: restored(b), what="b's defaults back, found by the relist's GET")
            await until(lambda: api.status().get("matchedPods") == 1, what="the status to count a only")
    finally:
        released.set()
    assert len(broken) == 1 and len(api["list v1/pods"]) == 2  # listed again after the error
    assert (a.pushes, b.pushes, c.pushes) == (1, 2, 1)  # the relist re-pushed nothing that had not changed
    assert any("pod list/watch /api/v1/pods failed (HTTP 500" in r.getMessage() for r in caplog.records)
    assert sorted(r.name for r in api["get v1/pods"] if r.name) == ["b", "c"]  # one GET per pod gone from the list


async def test_no_pod_is_judged_before_every_policy_is_known(
    api: Emulator, start_agent: Callable[[str], Agent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a restart: a pod that already runs its policy's settings is neither restored
    (judged with no policy known yet) nor pushed again."""
    a = start_agent("a")
    a.shared.publish(Settings(tuple(TUNED)), 1.0, applied_by=AppliedBy("shop/web", 1))  # as a first run left it
    api.objects[POLICIES, NAMESPACE, "web"] = policy_body()
    api.objects[PODS, NAMESPACE, "a"] = pod_body("a", a.port)

    async def slowly() -> Any:
        await asyncio.sleep(1.0)  # kopf's list of policies (and ours) comes late
        return NotImplemented  # then the emulator answers

    api["list", POLICIES][:3] << slowly
    async with operator(api, tmp_path, monkeypatch):
        await until(lambda: api.status().get("appliedPods") == 1, what="a counted as applied")
    assert a.pushes == 1  # only our own seed: never restored, never pushed again
    assert list(a.thresholds) == TUNED
