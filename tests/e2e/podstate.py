"""Reading what the cluster and the pods' agents say, and the manifests the e2e tests apply."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster

EXAMPLES = REPO_ROOT / "deploy" / "examples"
TOKEN = "demo-token-change-me"  # deploy/examples/flask/secret.yaml
DEFAULTS = [700, 10, 10]  # Python 3.11's startup thresholds, the pods' interpreter


def get(cluster: LocalCluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout)


def table(cluster: LocalCluster, namespace: str, *what: str) -> list[dict[str, str]]:
    """``kubectl get WHAT`` as users see it, each row by column name (an empty cell is "")."""
    header, *rows = cluster.kubectl("get", *what, "-n", namespace).stdout.splitlines()
    starts = [m.start() for m in re.finditer(r"\S+", header)]  # kubectl aligns every column on its header
    return [{header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, [*starts[1:], None])} for row in rows]


def policy_status(cluster: LocalCluster, namespace: str, name: str = "web") -> dict[str, Any]:
    return get(cluster, namespace, "gcpolicy", name).get("status", {})


def applied_by(cluster: LocalCluster, namespace: str, pod: str) -> dict[str, Any] | None:
    """Who asked for what the pod runs, as its agent keeps it (the operator never writes to pods)."""
    record = agent(cluster, namespace, pod).get("applied_by")
    assert "gctuner.dev/applied" not in (get(cluster, namespace, "pod", pod)["metadata"].get("annotations") or {})
    return record if isinstance(record, dict) else None


def agent(cluster: LocalCluster, namespace: str, pod: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    """Call the pod's /tune_gc at its own address, as the operator does."""
    return agent_at(get(cluster, namespace, "pod", pod)["status"]["podIP"], method, body)


def agent_at(ip: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    """The same, when the API server cannot be asked for the address."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{ip}:5000/tune_gc", data=data, method=method)
    if method != "GET":
        request.add_header("Authorization", f"Bearer {TOKEN}")
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def reports(cluster: LocalCluster, namespace: str, pod: str, thresholds: list[int]) -> bool:
    """Every live process of the pod runs ``thresholds``, and there are several."""
    return reports_at(get(cluster, namespace, "pod", pod)["status"]["podIP"], thresholds)


def reports_at(ip: str, thresholds: list[int]) -> bool:
    """The same, asking the agent at ``ip`` only (no API server round trip)."""
    state = agent_at(ip)
    processes = state["processes"]
    return bool(state["in_sync"]) and len(processes) >= 2 and all(p["thresholds"] == thresholds for p in processes)


def flask_pod(name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> str:
    """The example Flask app under gunicorn (2 workers), as a Pod manifest."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
        "spec": {"containers": [{
            "name": "app", "image": "gctuner-example-flask:0.1.0", "command": ["gunicorn"],
            "args": ["--workers=2", "--bind=$(POD_IP):5000", "--chdir=deploy/examples/flask", "app:app"],
            "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "GCTUNER_TOKEN", "valueFrom": {"secretKeyRef": {"name": "gctuner-token", "key": "token"}}}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 5000}, "periodSeconds": 1},
        }]},
    })


def faulty_pod(name: str, mode: str, annotations: dict[str, str] | None = None) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web", "gctuner.dev/enabled": "true"}, "annotations": annotations or {}},
        "spec": {"containers": [{
            "name": "app", "image": "faulty", "command": ["python", "tests/e2e/apps/faulty_agent.py", mode],
            "readinessProbe": {"httpGet": {"path": "/", "port": 5000}, "periodSeconds": 1},
        }]},
    })


def policy(name: str, thresholds: list[int], priority: int = 0, selector: dict[str, Any] | None = None,
           token_secret: str = "gctuner-token") -> str:
    return json.dumps({
        "apiVersion": "gctuner.dev/v1alpha1", "kind": "GCPolicy", "metadata": {"name": name},
        "spec": {"selector": selector if selector is not None else {"matchLabels": {"app": "web"}},
                 "thresholds": thresholds, "priority": priority,
                 "tokenSecretRef": {"name": token_secret, "key": "token"}},
    })
