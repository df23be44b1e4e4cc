"""``gctuner status``'s join and tables, on JSON recorded from the local cluster.

``status_data/`` holds what ``kubectl get gcpolicies,pods -o json`` and each
pod's ``GET /tune_gc`` answered in a namespace running the examples: Flask,
Starlette, Django (a freeze policy) and the sidecar under the two policies of
``deploy/examples/policies/priorities.yaml``, a pod whose agent answers 500
and one that never becomes ready.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from gctuner.status.report import LiveRead, Report, build, targets
from gctuner.status.table import render

pytestmark = pytest.mark.timeout(30)

DATA = Path(__file__).with_name("status_data")


def load(name: str) -> Any:
    return json.loads((DATA / f"{name}.json").read_text())


def recorded() -> tuple[list[Any], list[Any], dict[tuple[str, str], LiveRead]]:
    policies, pods = load("policies")["items"], load("pods")["items"]
    live = load("live")
    reads = {("shop", t.name): LiveRead(live[t.name].get("answer"), live[t.name].get("error"))
             for t in targets(policies, pods)}
    return policies, pods, reads


def by_name(report: Report) -> dict[str, Any]:
    return {pod.name: pod for pod in report.pods}


def test_only_ready_pods_are_read_where_their_agent_answers() -> None:
    policies, pods, _ = recorded()
    found = {t.name: (t.ip.startswith("127."), t.port, t.path) for t in targets(policies, pods)}
    assert "api-starting" not in found  # not ready: the operator does not push to it either
    assert set(found.values()) == {(True, 5000, "/tune_gc")}
    assert len(found) == 6


def test_each_pod_gets_its_winner_state_and_reason() -> None:
    report = build(*recorded())
    pods = by_name(report)
    assert {name: (p.policy, p.state) for name, p in pods.items()} == {
        "api-broken": ("baseline", "Failed"),
        "api-starting": ("baseline", "NotReady"),
        "django-1": ("django-frozen", "Applied"),
        "plain-1": ("baseline", "Applied"),
        "starlette-1": ("baseline", "Applied"),
        "web-1": ("web-tuned", "Applied"),
        "web-2": ("web-tuned", "Applied"),
    }
    assert pods["api-broken"].reason == "AgentError: HTTP 500: injected failure"  # the operator's words
    assert pods["api-broken"].error == "HTTP Error 500: Internal Server Error"  # and our own read's
    assert pods["api-starting"].reason == "phase Running, not Ready"
    web = pods["web-1"]
    assert web.asked == {"thresholds": [100000, 50, 100], "freeze": False, "allow_disable": False}
    assert (web.applied_processes, len(web.live)) == (2, 2)
    assert web.applied_by is not None and web.applied_by["policy"] == "shop/web-tuned"  # the agent's record
    assert web.python and web.flavour == "generational"
    sidecar = pods["plain-1"]  # the sidecar answers for the app's processes, not for itself
    assert (sidecar.applied_processes, len(sidecar.live), sidecar.python) == (2, 2, None)
    assert sidecar.collections == sum(p["pauses"]["collections"] for p in sidecar.live)
    assert sidecar.pause_ns_max == max(p["pauses"]["pause_ns_max"] for p in sidecar.live)


def test_policies_list_the_pods_they_govern() -> None:
    report = build(*recorded())
    governs = {p.name: p.pods for p in report.policies}
    assert governs == {
        "baseline": ["api-broken", "api-starting", "plain-1", "starlette-1"],
        "django-frozen": ["django-1"],  # priority 5 beats the baseline
        "web-tuned": ["web-1", "web-2"],  # priority 10
    }
    baseline = next(p for p in report.policies if p.name == "baseline")
    assert baseline.ready["reason"] == "PartiallyApplied"


def test_a_pod_half_way_is_pending_and_shows_both_thresholds() -> None:
    policies, pods, reads = recorded()
    answer = copy.deepcopy(reads[("shop", "web-1")].answer)
    answer["processes"][1]["thresholds"] = [700, 10, 10]
    answer["in_sync"] = False
    reads[("shop", "web-1")] = LiveRead(answer)
    web = by_name(build(policies, pods, reads))["web-1"]
    assert (web.state, web.reason) == ("Pending", "1/2 processes run [100000, 50, 100]")
    assert "1x[100000,50,100],1x[700,10,10]   1/2" in render(build(policies, pods, reads), False)


def test_a_pod_no_policy_selects_keeps_its_defaults() -> None:
    policies, pods, reads = recorded()
    policies = [p for p in policies if p["metadata"]["name"] == "web-tuned"]
    starlette = by_name(build(policies, pods, reads))["starlette-1"]
    assert (starlette.policy, starlette.state) == (None, "Pending")  # the baseline is still applied: not yet restored
    answer = copy.deepcopy(reads[("shop", "starlette-1")].answer)
    answer["desired"] = None
    reads[("shop", "starlette-1")] = LiveRead(answer)
    starlette = by_name(build(policies, pods, reads))["starlette-1"]
    assert (starlette.state, starlette.asked) == ("NoPolicy", None)


def test_a_pod_that_does_not_answer_says_why() -> None:
    policies, pods, reads = recorded()
    reads[("shop", "web-1")] = LiveRead(error="no answer within 5s")
    web = by_name(build(policies, pods, reads))["web-1"]
    assert (web.state, web.reason, web.live) == ("Unreachable", "no answer within 5s", [])


def test_the_tables() -> None:
    text = render(build(*recorded()), all_namespaces=False)
    policies, pods = text.split("\n\n")
    assert policies.splitlines()[0].split() == [
        "POLICY", "MODE", "THRESHOLDS", "FREEZE", "PRIORITY", "PODS", "APPLIED", "FAILED", "GC%", "READY", "REASON"]
    assert policies.splitlines()[2].split() == [
        "django-frozen", "Static", "[50000,20,100]", "true", "5", "1", "1", "0", "-", "True", "Applied"]
    lines = pods.splitlines()
    assert lines[0].split() == [
        "POD", "POLICY", "ASKED", "LIVE", "PROCESSES", "COLLECTIONS", "PAUSED", "LONGEST", "STATE", "REASON"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["django-1"][:5] == ["django-1", "django-frozen", "[50000,20,100]+freeze", "[50000,20,100]+frozen", "2/2"]
    assert rows["django-1"][6].endswith("ms") and rows["django-1"][8:] == ["Applied", "-"]
    assert rows["api-starting"][3:8] == ["-"] * 5
    assert " ".join(rows["api-broken"][8:]) == "Failed AgentError: HTTP 500: injected failure"
    assert all(line == line.rstrip() for line in lines)
    width = lines[0].index("POLICY")  # aligned columns
    assert all(line[width - 3:width] == "   " for line in lines[1:])


def test_all_namespaces_adds_the_column() -> None:
    text = render(build(*recorded()), all_namespaces=True)
    assert all(line.startswith(("NAMESPACE ", "shop ")) for line in text.splitlines() if line)


def test_nothing_found_says_so() -> None:
    assert render(Report([], []), False) == "No GCPolicies and no opted-in pods found."


def test_json_holds_everything() -> None:
    data = build(*recorded()).to_json()
    json.dumps(data)  # serialisable as it is
    web = next(p for p in data["pods"] if p["name"] == "web-1")
    assert set(web) >= {"namespace", "policy", "asked", "live", "applied_processes", "collections",
                        "pause_ns_total", "pause_ns_max", "applied_by", "error", "state", "reason"}
    baseline = next(p for p in data["policies"] if p["name"] == "baseline")
    assert baseline["status"]["failures"][0]["pod"] == "api-broken"
    assert baseline["ready"]["reason"] == "PartiallyApplied"


def as_auto(policies: list[Any], reads: dict[tuple[str, str], LiveRead], state: str = "WithinGoal") -> None:
    """web-tuned becomes an Auto policy, and web-1's agent steers to its goal."""
    goal = {"gcTimePercent": 2.0, "memoryPercent": 80.0}
    web_tuned = next(p for p in policies if p["metadata"]["name"] == "web-tuned")
    web_tuned["spec"] = {**web_tuned["spec"], "mode": "Auto", "goal": goal}
    del web_tuned["spec"]["thresholds"]
    web_tuned["status"]["conditions"].append({"type": "GoalMet", "status": "True", "reason": "WithinGoal"})
    web_tuned["status"]["telemetry"] = {"pods": 2, "gcTimePercent": {"p50": 0.5, "p95": 1.2}}
    answer = copy.deepcopy(reads[("shop", "web-1")].answer)
    assert answer is not None
    for process in answer["processes"]:
        process["thresholds"], process["generation"] = [42000, 50, 100], answer["generation"]
    answer.update(goal=goal, autopilot={"goal": goal, "state": state, "reason": "GC 0.4% of the time (goal 2%)",
                                        "choice": {"thresholds": [42000], "frozen": False}})
    reads[("shop", "web-1")] = LiveRead(answer)


def test_an_auto_pod_shows_what_its_autopilot_chose_and_why() -> None:
    policies, pods, reads = recorded()
    as_auto(policies, reads, state="Settling")
    report = build(policies, pods, reads)
    web = by_name(report)["web-1"]
    assert (web.mode, web.state, web.reason) == ("Auto", "Settling", "GC 0.4% of the time (goal 2%)")
    assert web.asked == {"goal": {"gcTimePercent": 2.0, "memoryPercent": 80.0}} and web.applied_processes == 2
    assert web.autopilot is not None and web.autopilot["choice"]["thresholds"] == [42000]
    assert by_name(report)["web-2"].state == "Pending"  # still on the Static thresholds: not the goal yet
    policies_table, pods_table = render(report, False).split("\n\n")
    rows = {line.split()[0]: line.split() for line in pods_table.splitlines()[1:]}
    assert rows["web-1"][2:5] == ["gc<=2%,mem<=80%", "[42000,50,100]", "2/2"]
    assert rows["web-1"][8] == "Settling"
    auto = next(line.split() for line in policies_table.splitlines() if line.startswith("web-tuned"))
    assert auto[1:3] == ["Auto", "-"] and auto[8] == "1.2" and auto[-1] == "WithinGoal"
    data = report.to_json()
    assert next(p for p in data["policies"] if p["name"] == "web-tuned")["goal"] == {"gcTimePercent": 2.0, "memoryPercent": 80.0}
    assert next(p for p in data["pods"] if p["name"] == "web-1")["autopilot"]["state"] == "Settling"
