"""Pod addresses, phase and conditions, computed as a real kubelet computes them."""

from __future__ import annotations

import pytest

from gctuner_localcluster.podstatus import (
    IpAllocator,
    conditions,
    gate_problems,
    pod_phase,
    pod_status,
    timestamp,
    with_transition_times,
)

T0 = 1_700_000_000.0


def running(name: str = "web", ready: bool = True) -> dict:
    return {"name": name, "ready": ready, "state": {"running": {"startedAt": timestamp(T0)}}, "lastState": {}}


def terminated(name: str = "web", code: int = 0) -> dict:
    return {"name": name, "ready": False, "state": {"terminated": {"exitCode": code}}, "lastState": {}}


def waiting(name: str = "web", restarting: bool = False) -> dict:
    last = {"terminated": {"exitCode": 1}} if restarting else {}
    return {"name": name, "ready": False, "state": {"waiting": {"reason": "X"}}, "lastState": last}


def test_addresses_start_at_127_0_1_1_and_skip_0_and_255() -> None:
    ips = IpAllocator()
    first = [ips.allocate() for _ in range(256)]
    assert first[:2] == ["127.0.1.1", "127.0.1.2"]
    assert first[253:256] == ["127.0.1.254", "127.0.2.1", "127.0.2.2"]
    assert not any(ip.endswith((".0", ".255")) for ip in first)
    assert len(set(first)) == len(first) == len(ips)


def test_a_freed_address_is_reused_only_after_all_others() -> None:
    ips = IpAllocator()
    a, b = ips.allocate(), ips.allocate()
    ips.release(a)
    assert ips.allocate() == "127.0.1.3"
    assert ips.reserve(a) and not ips.reserve(b)  # b is held


def test_reserve_refuses_addresses_outside_the_pod_range() -> None:
    ips = IpAllocator()
    for address in ("127.0.0.1", "127.0.1.0", "127.0.1.255", "10.0.0.1", "127.0.1", "127.0.x.1", ""):
        assert not ips.reserve(address)
    assert ips.reserve("127.0.255.254")


def test_exhaustion_is_an_error_and_a_release_makes_room() -> None:
    ips = IpAllocator()
    held = [ips.allocate() for _ in range(IpAllocator.CAPACITY)]
    assert held[-1] == "127.0.255.254"
    with pytest.raises(RuntimeError, match="in use"):
        ips.allocate()
    ips.release("127.0.7.7")
    assert ips.allocate() == "127.0.7.7"


@pytest.mark.parametrize("policy, statuses, phase", [
    ("Always", [waiting()], "Pending"),
    ("Always", [running(), waiting("b")], "Pending"),
    ("Always", [running()], "Running"),
    ("Always", [waiting(restarting=True)], "Running"),
    ("Always", [terminated(code=0)], "Running"),
    ("Never", [terminated(code=0)], "Succeeded"),
    ("Never", [terminated(code=0), terminated("b", code=2)], "Failed"),
    ("Never", [terminated(code=0), running("b")], "Running"),
    ("OnFailure", [terminated(code=0)], "Succeeded"),
    ("OnFailure", [waiting(restarting=True)], "Running"),
    ("Always", [], "Pending"),
])
def test_phase_follows_the_kubelets_rules(policy: str, statuses: list, phase: str) -> None:
    assert pod_phase(policy, statuses) == phase


def by_type(conds: list[dict]) -> dict[str, dict]:
    return {c["type"]: c for c in conds}


def test_unready_containers_are_named_and_a_ready_pod_clears_the_reason() -> None:
    unready = by_type(conditions("Running", [running("a"), running("b", ready=False)], []))
    assert unready["Ready"]["status"] == unready["ContainersReady"]["status"] == "False"
    assert unready["Ready"]["reason"] == "ContainersNotReady"
    assert unready["Ready"]["message"] == "containers with unready status: [b]"
    ready = by_type(conditions("Running", [running("a"), running("b")], []))
    assert ready["Ready"] == {"type": "Ready", "status": "True", "reason": None, "message": None,
                              "lastProbeTime": None}
    assert ready["Initialized"]["status"] == ready["PodReadyToStartContainers"]["status"] == "True"


def test_a_succeeded_pod_is_not_ready_because_it_completed() -> None:
    done = by_type(conditions("Succeeded", [terminated()], []))
    assert (done["Ready"]["status"], done["Ready"]["reason"]) == ("False", "PodCompleted")


def test_readiness_gates_hold_back_ready_but_not_containers_ready() -> None:
    gates = [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]
    issues = gate_problems(gates, [{"type": "example.com/dns", "status": "False"}])
    assert issues == ['corresponding condition of pod readiness gate "example.com/lb" does not exist.',
                      'the status of pod readiness gate "example.com/dns" is not "True", but False']
    conds = by_type(conditions("Running", [running()], issues))
    assert conds["ContainersReady"]["status"] == "True"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "ReadinessGatesNotReady")
    assert gate_problems(gates, [{"type": "example.com/lb", "status": "True"},
                                 {"type": "example.com/dns", "status": "True"}]) == []


def test_transition_time_changes_only_with_the_status() -> None:
    first = by_type(with_transition_times(conditions("Running", [running(ready=False)], []), {}, T0))
    same = by_type(with_transition_times(conditions("Running", [running(ready=False)], []), first, T0 + 5))
    flipped = by_type(with_transition_times(conditions("Running", [running()], []), same, T0 + 9))
    assert same["Ready"]["lastTransitionTime"] == timestamp(T0)
    assert flipped["Ready"]["lastTransitionTime"] == timestamp(T0 + 9)
    assert flipped["Initialized"]["lastTransitionTime"] == timestamp(T0)


def status(containers: list, previous: dict, now: float, generation: int = 1) -> dict:
    return pod_status(restart_policy="Always", containers=containers, pod_ip="127.0.1.9", host_ip="127.0.0.1",
                      start_time=timestamp(T0), generation=generation, gate_issues=[], previous=previous, now=now)


def test_the_same_state_later_gives_an_equal_status_so_nothing_is_written() -> None:
    first = status([running()], {}, T0)
    later = status([running()], by_type(first["conditions"]), T0 + 60)
    assert later == first
    assert status([running(ready=False)], by_type(first["conditions"]), T0 + 60) != first


def test_status_reports_addresses_times_and_generation() -> None:
    result = status([running()], {}, T0, generation=3)
    assert result["phase"] == "Running"
    assert (result["podIP"], result["podIPs"]) == ("127.0.1.9", [{"ip": "127.0.1.9"}])
    assert (result["hostIP"], result["hostIPs"]) == ("127.0.0.1", [{"ip": "127.0.0.1"}])
    assert result["startTime"] == "2023-11-14T22:13:20Z"
    assert result["observedGeneration"] == 3
    assert {c["observedGeneration"] for c in result["conditions"]} == {3}


def test_a_second_kubelet_on_the_machine_uses_its_own_block() -> None:
    ips = IpAllocator(block=3)
    assert ips.allocate() == "127.3.1.1"
    assert not ips.reserve("127.0.1.2") and ips.reserve("127.3.1.2")
