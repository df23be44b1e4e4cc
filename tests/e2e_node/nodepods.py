"""What the real node's tests read of pods, policies and agents, in one place.

Pods are found by label (a Deployment names them), their agents are reached
at their pod addresses on the cluster's own bridge, and the token is the one
the examples' Secret carries.
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from typing import Any

from gctuner_localcluster.demo import EXAMPLES, OVERLAY, TOKEN, live_state
from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for

__all__ = ["BALANCED", "EXAMPLES", "OVERLAY", "TOKEN", "agent", "all_tuned", "apply_example", "deploy_flask",
           "kill_container", "pod", "pods", "policy_status", "post", "ready"]


def pods(cluster: RealNodeCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def pod(cluster: RealNodeCluster, namespace: str, name: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(cluster.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
    return got


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def agent(ip: str, token: str = TOKEN, port: int = 5000) -> dict[str, Any]:
    """``GET /tune_gc`` of one pod (an address on the cluster's bridge), as the demo reads it."""
    state: dict[str, Any] = live_state(ip, port, token)
    return state


def policy_status(cluster: RealNodeCluster, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "gcpolicy", name, "-n", namespace, "-o", "json").stdout
    status: dict[str, Any] = json.loads(out).get("status", {})
    return status


def apply_example(cluster: RealNodeCluster, namespace: str, example: str, *manifests: str) -> None:
    """``kubectl apply`` an example's manifests, as its README says."""
    for manifest in manifests:
        cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / example / manifest))


def all_tuned(state: dict[str, Any], thresholds: list[int]) -> bool:
    """Every process the agent knows runs ``thresholds`` at the pod's generation, and it says so."""
    processes = state.get("processes") or []
    return bool(state.get("in_sync")) and bool(processes) and all(
        list(p["thresholds"]) == thresholds and p["generation"] == state["generation"] for p in processes
    )


BALANCED = [50000, 20, 100]  # deploy/examples/flask/policy.yaml


def deploy_flask(cluster: RealNodeCluster, namespace: str) -> None:
    """The Flask example (Secret, Deployment of 2 pods, policy), rolled out and applied to both pods."""
    apply_example(cluster, namespace, "flask", "secret.yaml", "deployment.yaml", "policy.yaml")
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s")
    wait_for(lambda: policy_status(cluster, namespace, "web").get("appliedPods") == 2,
             timeout=90, what="the policy applied to both pods")


def post(ip: str, body: dict[str, Any], token: str = TOKEN, port: int = 5000) -> int:
    """``POST /tune_gc`` to one pod: the HTTP status (a refusal is an answer, not an error)."""
    request = urllib.request.Request(
        f"http://{ip}:{port}/tune_gc", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def kill_container(cluster: RealNodeCluster, pod: dict[str, Any], container: str = "app") -> None:
    """SIGKILL a container's processes from the node, as a crash would (a pid 1 cannot be killed from inside)."""
    status = next(s for s in pod["status"]["containerStatuses"] if s["name"] == container)
    container_id = status["containerID"].removeprefix("containerd://")
    assert cluster.containerd is not None
    subprocess.run([*cluster.containerd.ctr, "-n", "k8s.io", "tasks", "kill", "--all", "--signal", "SIGKILL",
                    container_id], check=True, capture_output=True, timeout=30)
