"""The Flask example as users run it: its Deployment from its own image, the
token a mounted Secret, a read-only root file system, every gunicorn worker
tuned by the operator running from its own image."""

from __future__ import annotations

import json
import urllib.request

from gctuner_localcluster.cluster import REPO_ROOT
from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for

EXAMPLES = REPO_ROOT / "deploy" / "examples"

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
        assert all(list(p["thresholds"]) == [50000, 20, 100] and p["generation"] == state["generation"]
                   for p in processes), processes


def test_killed_container_is_restarted_and_re_applied(installed: RealNodeCluster, namespace: str) -> None:
    """The kubelet restarts a killed container; its new processes run the policy's settings again."""
    for manifest in ("secret.yaml", "deployment.yaml", "policy.yaml"):
        installed.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / manifest))
    installed.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s")
    wait_for(lambda: _policy_status(installed, namespace, "web").get("appliedPods") == 2,
             timeout=60, what="the policy applied to both pods")
    pod = _pods(installed, namespace, "app=web")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    # gunicorn's master is PID 1 of the container: killing it ends the container.
    installed.kubectl("exec", "-n", namespace, name, "-c", "app", "--", "python3", "-c",
                      "import os, signal; os.kill(1, signal.SIGKILL)", check=False)

    def restarted() -> bool:
        got = json.loads(installed.kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
        statuses = got["status"].get("containerStatuses", [])
        return bool(statuses) and statuses[0]["restartCount"] >= 1 and _ready(got)

    wait_for(restarted, timeout=120, what="the kubelet to restart the killed container")

    def re_applied() -> dict | None:
        try:
            state = _agent(ip)
        except OSError:
            return None
        return state if state["in_sync"] and state["desired"] else None

    state = wait_for(re_applied, timeout=90, what="the operator to re-apply the restarted container")
    assert all(list(p["thresholds"]) == [50000, 20, 100] for p in state["processes"]), state
