"""Many pods at once on the local cluster, for the operator benchmarks.

``kubectl apply`` of 10,000 pods takes minutes (one request at a time);
these helpers talk to the API server directly, concurrently, as the admin.
Pods that should not run are bound to a node that does not exist, so they
cost the API server and the operator's watch what they would in a real
cluster, and our local kubelet nothing.

Hollow pods (as Kubernetes' kubemark has them) are for the scale 2 cores
cannot run as processes: bound to the node ``hollow``, whose pod status this
module writes (Running, Ready, an address of their own on loopback), every
one served by the real agent core in ``bench/agentfarm.py``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp

from gctuner_localcluster.cluster import LocalCluster

ENABLED = {"gctuner.dev/enabled": "true"}


def pod(name: str, labels: dict[str, str], node: str | None = None) -> dict[str, Any]:
    """A pod whose container only sleeps: its agent is served by the farm."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "none", "command": ["sleep", "7200"]}],
                            "terminationGracePeriodSeconds": 0}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


async def _send(cluster: LocalCluster, method: str, paths_and_bodies: list[tuple[str, Any]], parallel: int,
                content_type: str = "application/json") -> None:  # fmt: skip
    assert cluster.apiserver is not None
    context = ssl.create_default_context(cafile=str(cluster.apiserver.pki.ca_cert))
    headers = {"Authorization": f"Bearer {cluster.apiserver.admin_token}", "Content-Type": content_type}
    limit = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(ssl=context, limit=parallel)) as session:
        async def one(path: str, body: Any) -> None:
            data = json.dumps(body, separators=(",", ":"))
            async with limit, session.request(method, cluster.apiserver.url + path, data=data) as response:
                if response.status >= 400 and response.status != 404:
                    raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
        await asyncio.gather(*(one(path, body) for path, body in paths_and_bodies))


def create(cluster: LocalCluster, namespace: str, pods: list[dict[str, Any]], parallel: int = 32) -> None:
    cluster.kubectl("create", "namespace", namespace, check=False)
    path = f"/api/v1/namespaces/{namespace}/pods"
    asyncio.run(_send(cluster, "POST", [(path, p) for p in pods], parallel))


HOLLOW_NODE = "hollow"


def hollow_ip(index: int) -> str:
    """Loopback addresses from 127.100.1.1 on: never those of the local kubelet's pods (127.0.x.y)."""
    block, rest = divmod(index, 255 * 254)
    return f"127.{100 + block}.{1 + rest // 254}.{1 + rest % 254}"


def create_hollow(cluster: LocalCluster, namespace: str, count: int, first_ip: int,
                  labels: dict[str, str] = ENABLED, parallel: int = 32) -> dict[str, str]:  # fmt: skip
    """``count`` running, ready pods on the hollow node; their name -> IP."""
    ips = {f"app-{i}": hollow_ip(first_ip + i) for i in range(count)}
    create(cluster, namespace, [pod(name, labels, node=HOLLOW_NODE) for name in ips], parallel)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def status(ip: str) -> dict[str, Any]:
        return {"status": {
            "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "127.0.0.1", "startTime": now,
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": [{"name": "app", "image": "none", "imageID": "", "ready": True, "started": True,
                                   "restartCount": 0, "state": {"running": {"startedAt": now}}}],
        }}  # fmt: skip

    path = f"/api/v1/namespaces/{namespace}/pods/{{}}/status"
    asyncio.run(_send(cluster, "PATCH", [(path.format(name), status(ip)) for name, ip in ips.items()], parallel,
                      content_type="application/merge-patch+json"))  # fmt: skip
    return ips


def delete_all(cluster: LocalCluster, namespace: str) -> None:
    """Delete every pod of ``namespace`` at once and wait until they are gone."""
    cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--grace-period=0", "--force", "--wait=false", check=False)
    deadline = time.monotonic() + 300
    while cluster.api_get(f"/api/v1/namespaces/{namespace}/pods?limit=1")["items"] and time.monotonic() < deadline:
        time.sleep(1)


def running_ips(cluster: LocalCluster, namespace: str, want: int, timeout: float = 300) -> dict[str, str]:
    """Wait until ``want`` pods of the namespace are Ready; their name -> IP."""
    deadline = time.monotonic() + timeout
    while True:
        items = cluster.api_get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        ready = {
            p["metadata"]["name"]: p["status"]["podIP"]
            for p in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
        }
        if len(ready) >= want:
            return ready
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)} of {want} pods became Ready in {timeout:.0f}s")
        time.sleep(0.5)


def policy_status(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    path = f"/apis/gctuner.dev/v1alpha1/namespaces/{namespace}/gcpolicies/{name}"
    return cluster.api_get(path).get("status", {})


def apply_policy(cluster: LocalCluster, namespace: str, name: str, thresholds: list[int]) -> None:
    manifest = {"apiVersion": "gctuner.dev/v1alpha1", "kind": "GCPolicy", "metadata": {"name": name},
                "spec": {"selector": {}, "thresholds": thresholds}}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
