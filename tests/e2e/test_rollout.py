"""A GCPolicy reaches real gunicorn processes running as pods, and only opted-in ones."""

from __future__ import annotations

import urllib.request

from podstate import DEFAULTS, EXAMPLES, agent, applied_by, policy_status, reports, table

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

FLASK = EXAMPLES / "flask"


def test_pod_created_after_the_policy_gets_its_settings(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "policy.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")

    for name in ("web-1", "web-2"):
        wait_for(lambda name=name: reports(cluster, namespace, name, [50000, 20, 100]),
                 timeout=20, what=f"{name}'s processes to report the policy's thresholds")
    untouched = agent(cluster, namespace, "web-3")
    assert untouched["desired"] is None and reports(cluster, namespace, "web-3", DEFAULTS)

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("appliedPods") == 2 and s,
                      timeout=20, what="status.appliedPods == 2")
    assert status["matchedPods"] == 2 and status["failedPods"] == 0
    ready = status["conditions"][0]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Applied")
    record = applied_by(cluster, namespace, "web-1")
    assert record is not None and record["policy"] == f"{namespace}/web" and record["time"]
    assert agent(cluster, namespace, "web-1")["desired"]["thresholds"] == [50000, 20, 100]
    assert applied_by(cluster, namespace, "web-3") is None

    (row,) = table(cluster, namespace, "gcpol")
    shown = {name: row.get(name) for name in ("NAME", "MODE", "THRESHOLDS", "MATCHED", "APPLIED", "FAILED", "READY")}
    assert shown == {"NAME": "web", "MODE": "Static", "THRESHOLDS": "[50000,20,100]",
                     "MATCHED": "2", "APPLIED": "2", "FAILED": "0", "READY": "True"}, row

    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
        metrics = response.read().decode()
    assert f'gctuner_operator_pods{{namespace="{namespace}",policy="web",state="applied"}} 2.0' in metrics
    assert "gctuner_operator_rollout_duration_seconds_count" in metrics


def test_changed_policy_reaches_running_pods(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
    cluster.kubectl("apply", "-n", namespace, "-f", str(FLASK / "policy.yaml"))
    wait_for(lambda: policy_status(cluster, namespace).get("appliedPods") == 2, timeout=20, what="first rollout")

    cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"thresholds": [120000, 30]}}')
    for name in ("web-1", "web-2"):
        wait_for(lambda name=name: reports(cluster, namespace, name, [120000, 30, 100]),
                 timeout=20, what=f"{name} to follow the changed policy")
    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("observedGeneration") == 2
                      and s.get("appliedPods") == 2 and s, timeout=20, what="status of generation 2")
    assert status["conditions"][0]["status"] == "True"
