"""The Flask example as users run it: its Deployment from its own image, the
token a mounted Secret, a read-only root file system, every gunicorn worker
tuned by the operator running from its own image."""

from __future__ import annotations

import json
import urllib.request

from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for

from .conftest import EXAMPLES

TOKEN = "demo-token-change-me"  # deploy/examples/flask/secret.yaml


def _pods(cluster: RealNodeCluster, namespace: str, selector: str) -> list[dict]:
    out = cluster.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    return json.loads(out)["items"]


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _agent(ip: str, token: str = TOKEN) -> dict:
    request = urllib.request.Request(f"http://{ip}:5000/tune_gc", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # a pod address on our own bridge
        return json.load(response)


def _policy_status(cluster: RealNodeCluster, namespace: str, name: str) -> dict:
    out = cluster.kubectl("get", "gcpolicy", name, "-n", namespace, "-o", "json").stdout
    return json.loads(out).get("status", {})


def test_flask_deployment_is_tuned_in_every_worker(installed: RealNodeCluster, namespace: str) -> None:
    for manifest in ("secret.yaml", "deployment.yaml", "policy.yaml"):
        installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / manifest))
    installed.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s")
    wait_for(lambda: _policy_status(installed, namespace, "web").get("appliedPods") == 2,
             timeout=60, what="the policy applied to both pods")
    pods = _pods(installed, namespace, "app=web")
    assert len(pods) == 2 and all(_ready(p) for p in pods)
    for pod in pods:
        spec = pod["spec"]["containers"][0]
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        state = _agent(pod["status"]["podIP"])
        assert state["in_sync"] is True, state
        assert list(state["desired"]["thresholds"]) == [50000, 20, 100], state
        processes = state["processes"]
        assert len(processes) >= 4, processes  # four gunicorn workers, each applied
        assert all(list(p["thresholds"]) == [50000, 20, 100] for p in processes if "thresholds" in p), processes
