"""The local kubelet against the real control plane: what kubectl and clients see of pods."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gctuner_localcluster.cluster import LocalCluster
from polling import wait_for

SERVER = ["python", "-m", "http.server", "--bind", "$(POD_IP)", "8080"]


def create(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def pod_manifest(name: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "main", "image": "python:3.11", **container}], **spec}}


def get_pod(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.api_get(f"/api/v1/namespaces/{namespace}/pods/{name}")


def condition(pod: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == kind), None)


def wait_ready(cluster: LocalCluster, namespace: str, name: str, timeout: int = 30) -> dict[str, Any]:
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", f"--timeout={timeout}s")
    return get_pod(cluster, namespace, name)


def http_get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def pid_of(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("local://"))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_node_is_registered_and_ready(cluster: LocalCluster) -> None:
    node = cluster.api_get("/api/v1/nodes/local")
    assert {"type": "InternalIP", "address": "127.0.0.1"} in node["status"]["addresses"]
    assert condition(node, "Ready") == "True"
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")


def test_a_pod_runs_at_its_own_loopback_address_and_becomes_ready(cluster: LocalCluster, namespace: str) -> None:
    probe = {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 1}
    create(cluster, namespace, pod_manifest(
        "web", {"command": SERVER, "ports": [{"name": "http", "containerPort": 8080}], "readinessProbe": probe}))
    pod = wait_ready(cluster, namespace, "web")

    status = pod["status"]
    assert pod["spec"]["nodeName"] == "local"
    assert status["phase"] == "Running"
    ip = status["podIP"]
    # 127.0.x.y; 127.B.x.y when another local cluster's kubelet on this machine holds 127.0/16
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("127.0.0.0/8") and ip != "127.0.0.1"
    assert status["podIPs"] == [{"ip": ip}]
    assert status["hostIP"] == "127.0.0.1"
    assert all(condition(pod, kind) == "True"
               for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"))
    container = status["containerStatuses"][0]
    assert (container["name"], container["ready"], container["started"], container["restartCount"]) == (
        "main", True, True, 0)
    assert "running" in container["state"]
    assert http_get(f"http://{ip}:8080/") == 200

    table = cluster.kubectl("get", "pod", "web", "-n", namespace, "-o", "wide").stdout.splitlines()[1].split()
    assert table[1:3] == ["1/1", "Running"] and ip in table and "local" in table


def test_env_and_variable_references_are_expanded_as_on_a_real_kubelet(
    cluster: LocalCluster, namespace: str, tmp_path: Path,
) -> None:
    out = tmp_path / "seen.json"
    dump = ("import json, os, sys; tmp = sys.argv[1] + '.tmp'; "
            "json.dump({'env': dict(os.environ), 'argv': sys.argv[2:], 'cwd': os.getcwd()}, open(tmp, 'w')); "
            "os.replace(tmp, sys.argv[1])")
    create(
        cluster, namespace,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"}, "stringData": {"token": "s3cret"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "fast"}},
        pod_manifest("env", {
            "command": ["python", "-c", dump],
            "args": [str(out), "--bind=$(POD_IP):$(PORT)", "$$(PORT)", "$(UNDEFINED)", "$(GREETING)"],
            "env": [
                {"name": "PORT", "value": "5000"},
                {"name": "GREETING", "value": "hello $(MY_NAME) from $(MY_NAMESPACE) port $(PORT)"},
                {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "MY_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            ],
        }, restartPolicy="Never"),
    )
    pod = wait_for(lambda: (p := get_pod(cluster, namespace, "env"))["status"].get("phase") == "Succeeded" and p,
                   timeout=30, what="the env pod to succeed")
    seen = json.loads(out.read_text())
    env, ip = seen["env"], pod["status"]["podIP"]
    assert env["POD_IP"] == env["MY_IP"] == ip
    assert (env["POD_NAME"], env["POD_NAMESPACE"]) == ("env", namespace)
    assert env["GREETING"] == "hello $(MY_NAME) from $(MY_NAMESPACE) port 5000"  # defined later: left as is
    assert (env["APP"], env["NODE"], env["TOKEN"], env["MODE"]) == ("env", "local", "s3cret", "fast")
    assert seen["argv"] == [f"--bind={ip}:5000", "$(PORT)", "$(UNDEFINED)", env["GREETING"]]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert "KUBECONFIG" not in env
    assert seen["cwd"] == str(cluster.repo_root)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")


def test_an_exited_process_is_restarted_and_counted(cluster: LocalCluster, namespace: str) -> None:
    unbuffered = [{"name": "PYTHONUNBUFFERED", "value": "1"}]  # so a SIGKILL loses no log line
    create(cluster, namespace, pod_manifest("crash", {"command": SERVER, "env": unbuffered}))
    first = wait_ready(cluster, namespace, "crash")
    os.kill(pid_of(first), signal.SIGKILL)

    def restarted() -> dict[str, Any] | None:
        pod = get_pod(cluster, namespace, "crash")
        container = pod["status"]["containerStatuses"][0]
        return pod if container["restartCount"] == 1 and container["ready"] else None

    pod = wait_for(restarted, timeout=30, what="restartCount 1 and ready again")
    container = pod["status"]["containerStatuses"][0]
    assert container["lastState"]["terminated"]["exitCode"] == 137
    assert container["containerID"] != first["status"]["containerStatuses"][0]["containerID"]
    assert pod["status"]["podIP"] == first["status"]["podIP"]
    wait_for(lambda: http_get(f"http://{pod['status']['podIP']}:8080/") == 200, timeout=10,
             what="the restarted server to answer")
    log = cluster.workdir / "kubelet" / "pods" / f"{namespace}_crash" / "main.log"
    assert log.read_text().count("Serving HTTP") == 2  # appended across restarts


def test_readiness_follows_the_probe_both_ways(cluster: LocalCluster, namespace: str, tmp_path: Path) -> None:
    (tmp_path / "ready").write_text("ok")
    probe = {"httpGet": {"port": 8080, "path": "/ready"}, "periodSeconds": 1, "failureThreshold": 2}
    create(cluster, namespace, pod_manifest(
        "probed", {"command": [*SERVER, "--directory", str(tmp_path)], "readinessProbe": probe}))
    wait_ready(cluster, namespace, "probed")

    (tmp_path / "ready").unlink()
    pod = wait_for(lambda: (p := get_pod(cluster, namespace, "probed")) and condition(p, "Ready") == "False" and p,
                   timeout=20, what="the pod to become unready")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "ContainersReady")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "ContainersNotReady", "containers with unready status: [main]")
    assert pod["status"]["phase"] == "Running"

    (tmp_path / "ready").write_text("ok")
    wait_ready(cluster, namespace, "probed", timeout=20)


def test_kubectl_delete_stops_the_process_and_removes_the_pod(cluster: LocalCluster, namespace: str) -> None:
    create(cluster, namespace, pod_manifest("doomed", {"command": SERVER}))
    pod = wait_ready(cluster, namespace, "doomed")
    pid = pid_of(pod)
    assert alive(pid)

    cluster.kubectl("delete", "pod", "doomed", "-n", namespace, "--timeout=30s")  # waits until it is gone
    gone = cluster.kubectl("get", "pod", "doomed", "-n", namespace, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    wait_for(lambda: not alive(pid), timeout=10, what=f"pid {pid} to be gone")
