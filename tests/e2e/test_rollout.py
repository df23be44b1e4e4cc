"""A GCPolicy reaches real gunicorn processes running as pods, and only opted-in ones."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from conftest import EXAMPLES
from polling import wait_for

FLASK = EXAMPLES / "flask"


def pod(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)


def live(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """GET /tune_gc on the pod's own address: what its processes report."""
    ip = pod(cluster, namespace, name)["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:5000/tune_gc", timeout=5) as response:
        return json.load(response)


def all_processes_report(state: dict[str, Any], thresholds: list[int]) -> bool:
    processes = state["processes"]
    return state["in_sync"] and len(processes) >= 2 and all(p["thresholds"] == thresholds for p in processes)


def policy_status(cluster: LocalCluster, namespace: str, name: str = "web") -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", "gcpolicy", name, "-n", namespace, "-o", "json").stdout).get("status", {})


def test_pod_created_after_the_policy_gets_its_settings(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "policy.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")

    for name in ("web-1", "web-2"):
        wait_for(lambda: all_processes_report(live(cluster, namespace, name), [50000, 20, 100]),
                 timeout=20, what=f"{name}'s processes to report the policy's thresholds")
    defaults = live(cluster, namespace, "web-3")
    assert defaults["desired"] is None
    assert all(p["thresholds"] == defaults["defaults"] for p in defaults["processes"])

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("appliedPods") == 2 and s,
                      timeout=20, what="status.appliedPods == 2")
    assert status["matchedPods"] == 2 and status["failedPods"] == 0
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Applied")
    annotation = json.loads(pod(cluster, namespace, "web-1")["metadata"]["annotations"]["gctuner.dev/applied"])
    assert annotation["policy"] == "web" and annotation["settings"]["thresholds"] == [50000, 20, 100]
    assert "gctuner.dev/applied" not in pod(cluster, namespace, "web-3")["metadata"].get("annotations", {})

    table = cluster.kubectl("get", "gcpol", "-n", namespace).stdout.splitlines()[1].split()
    assert table[:6] == ["web", "[50000,20,100]", "2", "2", "0", "True"]


def test_changed_policy_reaches_running_pods(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "policy.yaml"))
    wait_for(lambda: policy_status(cluster, namespace).get("appliedPods") == 2, timeout=20, what="first rollout")

    cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"thresholds": [120000, 30]}}')
    for name in ("web-1", "web-2"):
        wait_for(lambda: all_processes_report(live(cluster, namespace, name), [120000, 30, 100]),
                 timeout=20, what=f"{name} to follow the changed policy")
    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("observedGeneration") == 2
                      and s.get("appliedPods") == 2 and s, timeout=20, what="status of generation 2")
    assert status["conditions"][0]["status"] == "True"
