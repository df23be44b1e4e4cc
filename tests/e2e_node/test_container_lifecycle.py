"""What happens to tuned pods on a real node over their life: the token
rotated through the kubelet's atomic update of a mounted Secret, a Deployment
rolled, a container OOM-killed under its memory limit, and the operator's
leader deleted with a standby running."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nodepods import (
    BALANCED,
    OVERLAY,
    agent,
    all_tuned,
    apply_example,
    deploy_flask,
    pod,
    pods,
    policy_status,
    post,
    ready,
)

from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for

RAISED = [60000, 25, 100]
SYSTEM = "gctuner-system"
OPERATOR = "app.kubernetes.io/name=gctuner-operator"


def _ips(cluster: RealNodeCluster, namespace: str, selector: str = "app=web") -> list[str]:
    return [p["status"]["podIP"] for p in pods(cluster, namespace, selector)]


def _change_policy(cluster: RealNodeCluster, namespace: str, thresholds: list[int], name: str = "web") -> None:
    cluster.kubectl("patch", "gcpolicy", name, "-n", namespace, "--type=merge",
                    "-p", json.dumps({"spec": {"thresholds": thresholds}}))


def _restarts(cluster: RealNodeCluster, namespace: str, selector: str) -> list[int]:
    return [s["restartCount"] for p in pods(cluster, namespace, selector) for s in p["status"]["containerStatuses"]]


def test_rotated_token_is_picked_up_without_a_restart(installed: RealNodeCluster, namespace: str) -> None:
    """The Secret changes; the kubelet swaps the mounted file; the agents refuse the old
    token and take the operator's pushes with the new one, and no container restarts."""
    deploy_flask(installed, namespace)
    ips = _ips(installed, namespace)
    rotated = "rotated-token-" + namespace
    installed.kubectl("patch", "secret", "gctuner-token", "-n", namespace, "--type=merge",
                      "-p", json.dumps({"stringData": {"token": rotated}}))
    # GET needs no token; a change does. A refused change changes nothing.
    for ip in ips:
        wait_for(lambda ip=ip: post(ip, {"thresholds": BALANCED}) == 401, timeout=120,
                 what=f"the agent at {ip} to refuse the old token (the kubelet updates the mounted Secret)")
    _change_policy(installed, namespace, RAISED)
    for ip in ips:
        wait_for(lambda ip=ip: all_tuned(agent(ip), RAISED), timeout=90,
                 what=f"the operator to push with the rotated token to {ip}")
    assert _restarts(installed, namespace, "app=web") == [0, 0]


def test_rolled_deployment_tunes_its_new_pods_and_forgets_the_old(installed: RealNodeCluster, namespace: str) -> None:
    deploy_flask(installed, namespace)
    old = {p["metadata"]["name"] for p in pods(installed, namespace, "app=web")}
    installed.kubectl("rollout", "restart", "deployment/web", "-n", namespace)
    installed.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=180s")

    def only_new_pods() -> set[str]:
        names = {p["metadata"]["name"] for p in pods(installed, namespace, "app=web")}
        return names if len(names) == 2 and not names & old else set()

    new = wait_for(only_new_pods, timeout=120, what="the old pods to be gone")
    wait_for(lambda: policy_status(installed, namespace, "web").get("appliedPods") == 2, timeout=90,
             what="the policy applied to the new pods")
    status = policy_status(installed, namespace, "web")
    assert status["matchedPods"] == 2 and status.get("failedPods", 0) == 0, status
    for ip in _ips(installed, namespace):
        assert all_tuned(agent(ip), BALANCED)
    report = subprocess.run(
        [str(Path(sys.executable).parent / "gctuner"), "status", "-n", namespace, "-o", "json"],
        env=installed.env(), capture_output=True, text=True, check=True,
    )
    assert {p["name"] for p in json.loads(report.stdout)["pods"]} == new, report.stdout


# The only process of this container: the Flask example's app and agent under
# wsgiref, which, on its first run only (a marker on the pod's emptyDir, which
# outlives the container), grows past the container's memory limit once the
# operator's settings arrived.
HOG = """
import gc, os, threading, time
from wsgiref.simple_server import make_server
from app import app

def grow_once_tuned():
    while gc.get_threshold()[0] != 50000:
        time.sleep(0.2)
    if os.path.exists("/state/grown"):
        return
    open("/state/grown", "w").close()
    held = []
    while True:
        held.append(bytearray(8 << 20))
        time.sleep(0.05)

threading.Thread(target=grow_once_tuned, daemon=True).start()
make_server("0.0.0.0", 5000, app).serve_forever()
"""


def _hog_pod(namespace: str) -> dict:
    restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "hog", "namespace": namespace, "labels": {"app": "hog", "gctuner.dev/enabled": "true"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app", "image": "gctuner-example-flask:0.1.0", "imagePullPolicy": "IfNotPresent",
                "command": ["python3", "-c", HOG],
                "env": [{"name": "GCTUNER_TOKEN_FILE", "value": "/var/run/secrets/gctuner/token"}],
                "ports": [{"name": "http", "containerPort": 5000}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
                "resources": {"requests": {"memory": "96Mi"}, "limits": {"memory": "96Mi"}},
                "securityContext": restricted,
                "volumeMounts": [
                    {"name": "token", "mountPath": "/var/run/secrets/gctuner", "readOnly": True},
                    {"name": "state", "mountPath": "/state"},
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }],
            "volumes": [
                {"name": "token", "secret": {"secretName": "gctuner-token"}},
                {"name": "state", "emptyDir": {}},
                {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            ],
        },
    }


def _hog_policy(namespace: str) -> dict:
    return {
        "apiVersion": "gctuner.dev/v1alpha1", "kind": "GCPolicy",
        "metadata": {"name": "hog", "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": "hog"}}, "thresholds": BALANCED,
                 "tokenSecretRef": {"name": "gctuner-token", "key": "token"}},
    }


def test_oom_killed_container_is_restarted_and_tuned_again(installed: RealNodeCluster, namespace: str) -> None:
    apply_example(installed, namespace, "flask", "secret.yaml")
    for manifest in (_hog_policy(namespace), _hog_pod(namespace)):
        installed.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def oom_killed_and_back() -> dict | None:
        got = pod(installed, namespace, "hog")
        statuses = got["status"].get("containerStatuses") or [{}]
        last = statuses[0].get("lastState", {}).get("terminated", {})
        return got if last.get("reason") == "OOMKilled" and ready(got) else None

    got = wait_for(oom_killed_and_back, timeout=180, what="the container OOM-killed (96Mi) and restarted by the kubelet")
    assert got["status"]["containerStatuses"][0]["restartCount"] >= 1
    ip = got["status"]["podIP"]
    state = wait_for(lambda: all_tuned(agent(ip), BALANCED) and agent(ip), timeout=90,
                     what="the restarted container tuned again")
    assert len(state["processes"]) == 1, state
    wait_for(lambda: policy_status(installed, namespace, "hog").get("appliedPods") == 1, timeout=90,
             what="the policy's status: applied again")


def _role(cluster: RealNodeCluster, name: str) -> str | None:
    """What the replica's log last said of its leadership: "active", "standby", or None."""
    log = cluster.kubectl("logs", "-n", SYSTEM, name, check=False).stdout
    roles = [("active" if "is the active one" in line else "standby")
             for line in log.splitlines() if "is the active one" in line or "another replica is active" in line]
    return roles[-1] if roles else None


def _live_operators(cluster: RealNodeCluster) -> list[str]:
    return [p["metadata"]["name"] for p in pods(cluster, SYSTEM, OPERATOR)
            if ready(p) and not p["metadata"].get("deletionTimestamp")]


def _the_leader(cluster: RealNodeCluster) -> tuple[str, str] | None:
    """(leader, standby) once two replicas run and exactly one acts."""
    names = _live_operators(cluster)
    roles = {name: _role(cluster, name) for name in names}
    active = [n for n, r in roles.items() if r == "active"]
    return (active[0], next(n for n in names if n != active[0])) if len(names) == 2 and len(active) == 1 else None


def test_standby_takes_over_when_the_leader_pod_is_deleted(installed: RealNodeCluster, namespace: str) -> None:
    deploy_flask(installed, namespace)
    try:
        installed.kubectl("apply", "-k", str(OVERLAY / "ha"))
        installed.kubectl("rollout", "status", "deployment/gctuner-operator", "-n", SYSTEM, "--timeout=180s")
        leader, standby = wait_for(lambda: _the_leader(installed), timeout=90, what="two replicas, one acting")
        installed.kubectl("delete", "pod", leader, "-n", SYSTEM, "--wait=false")
        wait_for(lambda: _role(installed, standby) == "active", timeout=60,
                 what=f"the standby {standby} to take over from {leader}")
        _change_policy(installed, namespace, RAISED)
        for ip in _ips(installed, namespace):
            wait_for(lambda ip=ip: all_tuned(agent(ip), RAISED), timeout=90,
                     what=f"the new leader to push the change to {ip}")
    finally:
        installed.kubectl("apply", "-k", str(OVERLAY))
        installed.kubectl("rollout", "status", "deployment/gctuner-operator", "-n", SYSTEM, "--timeout=180s")
