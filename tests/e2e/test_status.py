"""``gctuner status`` as a user runs it: the real kubectl, the real cluster, real pods.

The example Flask pods under the two policies of priorities.yaml, plus a pod
whose agent answers 500: the command must name each pod's policy, what its
processes run, and the operator's reason for the failure. It also runs with
nothing but the ``gctuner-status`` ClusterRole (deploy/base/status-reader.yaml).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from podstate import EXAMPLES, faulty_pod, policy_status

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

GCTUNER = str(Path(sys.executable).with_name("gctuner"))


def gctuner_status(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GCTUNER, "status", *args], env=cluster.env(), capture_output=True, text=True, timeout=60)


def settled(cluster: LocalCluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / "pods.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=faulty_pod("api-broken", "500"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "policies" / "priorities.yaml"))
    wait_for(lambda: policy_status(cluster, namespace, "web-tuned").get("appliedPods") == 2
             and policy_status(cluster, namespace, "web-tuned").get("failedPods") == 1,
             timeout=30, what="web-tuned: 2 pods applied, 1 failing")


def test_status_tells_each_pods_policy_state_and_why(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    settled(cluster, namespace)
    table = gctuner_status(cluster, "-n", namespace)
    assert table.returncode == 0, table.stderr
    policies, pods = table.stdout.split("\n\n")
    assert [line.split()[:6] for line in policies.splitlines()] == [
        ["POLICY", "MODE", "THRESHOLDS", "FREEZE", "PRIORITY", "PODS"],
        ["baseline", "Static", "[10000,10,10]", "false", "0", "0"],  # every pod here matches web-tuned, which wins
        ["web-tuned", "Static", "[100000,50,100]", "false", "10", "3"],
    ]
    rows = {line.split()[0]: line.split() for line in pods.splitlines()[1:]}
    assert set(rows) == {"api-broken", "web-1", "web-2"}  # web-3 did not opt in
    for name in ("web-1", "web-2"):
        assert rows[name][1:5] == ["web-tuned", "[100000,50,100]", "[100000,50,100]", "2/2"]
        assert rows[name][8] == "Applied"
    assert rows["api-broken"][8] == "Failed" and "500" in " ".join(rows["api-broken"][9:])

    data = json.loads(gctuner_status(cluster, "-n", namespace, "-o", "json").stdout)
    web = next(p for p in data["pods"] if p["name"] == "web-1")
    assert web["applied_by"]["policy"] == f"{namespace}/web-tuned" and web["collections"] is not None
    assert all(p["thresholds"] == [100000, 50, 100] for p in web["live"])


def test_status_through_the_pod_proxy(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    """The API server refuses to proxy to a loopback pod IP, as every API server
    does: the refusal proves the request went, as the user, to the right pod proxy."""
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / "pods.yaml"))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "web-1", "--timeout=90s")
    data: dict[str, Any] = json.loads(gctuner_status(cluster, "-n", namespace, "--via", "proxy", "-o", "json").stdout)
    web = next(p for p in data["pods"] if p["name"] == "web-1")
    assert web["state"] == "Unreachable" and web["error"].endswith("address not allowed")


def test_status_with_only_the_status_role(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / "base" / "status-reader.yaml"))
    cluster.kubectl("create", "serviceaccount", "reader", "-n", namespace)
    cluster.kubectl("create", "rolebinding", "reader", "--clusterrole=gctuner-status",
                    f"--serviceaccount={namespace}:reader", "-n", namespace)
    account = f"system:serviceaccount:{namespace}:reader"
    wait_for(lambda: cluster.kubectl("auth", "can-i", "get", "pods", "--subresource=proxy", "-n", namespace, f"--as={account}",
                                     check=False).returncode == 0, timeout=10, what="the RoleBinding to take effect")
    token = cluster.kubectl("create", "token", "reader", "-n", namespace).stdout.strip()
    kubeconfig = cluster.kubeconfig_for(f"reader-{namespace}", token)
    settled(cluster, namespace)

    table = gctuner_status(cluster, "--kubeconfig", str(kubeconfig), "-n", namespace)
    assert table.returncode == 0, table.stderr
    assert "Applied" in table.stdout
    proxied = json.loads(gctuner_status(cluster, "--kubeconfig", str(kubeconfig), "-n", namespace,
                                        "--via", "proxy", "-o", "json").stdout)
    assert all("address not allowed" in p["error"] for p in proxied["pods"])  # allowed through RBAC; refused by address
    denied = gctuner_status(cluster, "--kubeconfig", str(kubeconfig), "-n", "default")
    assert denied.returncode == 2 and "forbidden" in denied.stderr
