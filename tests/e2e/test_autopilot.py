"""An Auto policy on real gunicorn pods: the goal reaches them, the fleet's
figures and a recommendation fill the status, GoalMet says the goal is met,
and the recommendation pinned as a Static policy reaches every pod.

The example Flask app allocates little, so the example's goal (5 % of the
time in the collector, 4 GiB) is one the idle app meets, on a loaded machine
too: no load, nothing timed.
"""

from __future__ import annotations

import json
from typing import Any

from podstate import EXAMPLES, agent, policy_status, reports

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

AUTO = EXAMPLES / "policies" / "auto.yaml"
PODS = ("web-1", "web-2")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def steers(cluster: LocalCluster, namespace: str, pod: str, goal: dict[str, Any]) -> bool:
    state = agent(cluster, namespace, pod)
    return bool(state["in_sync"]) and state.get("goal") == goal and len(state["processes"]) >= 2


def test_an_auto_policy_settles_recommends_and_its_recommendation_pins(
    cluster: LocalCluster, operator: OperatorProcess, namespace: str
) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
    cluster.kubectl("apply", "-n", namespace, "-f", str(AUTO))
    goal = {"gcTimePercent": 5.0, "memoryBytes": 4294967296}
    for name in PODS:
        wait_for(lambda name=name: steers(cluster, namespace, name, goal), timeout=30, what=f"{name} to steer to the goal")
    assert "goal" not in agent(cluster, namespace, "web-3")  # not opted in

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("appliedPods") == 2 and s,
                      timeout=30, what="both pods applied")
    assert condition(status, "Ready")["status"] == "True"  # type: ignore[index]

    def settled() -> dict[str, Any]:
        s = policy_status(cluster, namespace)
        met = condition(s, "GoalMet")
        assert met and met["status"] == "True" and s.get("recommendation"), f"{met and met['message']}"
        assert (s.get("telemetry") or {}).get("pods") == 2 and s["telemetry"].get("thresholds"), s
        return s

    status = wait_for(settled, timeout=120, what="GoalMet True with telemetry and a recommendation")
    assert condition(status, "GoalMet")["reason"] == "WithinGoal"  # type: ignore[index]
    telemetry, recommendation = status["telemetry"], status["recommendation"]
    assert set(telemetry["gcTimePercent"]) == {"p50", "p95"} and set(telemetry["longestPauseMillis"]) == {"p50", "p95"}
    assert telemetry["thresholds"]["min"][0] <= telemetry["thresholds"]["median"][0] <= telemetry["thresholds"]["max"][0]
    thresholds = recommendation["thresholds"]
    assert len(thresholds) == 3 and thresholds[0] >= 700  # never below Python 3.11's own threshold0
    assert recommendation["basis"].startswith("2 pods, ") and recommendation["confidence"] in ("Low", "Medium", "High")

    row = cluster.kubectl("get", "gcpol", "web", "-n", namespace, "--no-headers").stdout.split()
    assert row[:5] == ["web", "Auto", "2", "2", "0"] and float(row[5]) >= 0 and row[6] == "True"

    patch = {"spec": {"mode": "Static", "goal": None, "thresholds": thresholds, "freeze": recommendation["freeze"]}}
    cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", json.dumps(patch))
    for name in PODS:
        wait_for(lambda name=name: reports(cluster, namespace, name, thresholds)
                 and "goal" not in agent(cluster, namespace, name),
                 timeout=30, what=f"{name} to run the recommendation with no goal left")
    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("observedGeneration") == 2
                      and s.get("appliedPods") == 2 and condition(s, "GoalMet") is None and s,
                      timeout=30, what="the Static policy applied, GoalMet gone")
    assert "recommendation" not in status
