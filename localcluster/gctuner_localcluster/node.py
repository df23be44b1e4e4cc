"""The Node object our kubelet registers and keeps fresh.

It describes this machine as a kubelet would (capacity, node info,
addresses), so that ``kubectl get/describe node`` reads as on any cluster.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from .binaries import K8S_VERSION
from .kubeapi import STRATEGIC_PATCH, ApiError, KubeApi
from .podstatus import HOST_IP, IpAllocator, timestamp

log = logging.getLogger("kubelet")
Json = dict[str, Any]
HEARTBEAT_SECONDS = 10.0
_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _read(path: str, default: str = "") -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return default


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return "Linux"


def _memory_ki() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1])
    return 0


def node_object(name: str) -> Json:
    arch = _ARCH.get(platform.machine(), platform.machine())
    labels = {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch,
    }
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def conditions(ready: str, since: float, now: float) -> list[Json]:
    """The node's conditions; ``ready`` is "True" while we run, "Unknown" once we stop."""
    def condition(kind: str, status: str, reason: str, message: str) -> Json:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": timestamp(now), "lastTransitionTime": timestamp(since)}

    if ready == "True":
        readiness = condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    else:
        readiness = condition("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    return [
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        readiness,
    ]


def full_status(name: str, state_dir: Path, since: float, now: float) -> Json:
    """Everything a kubelet reports at registration."""
    machine_id = _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id") or "local"
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{_memory_ki()}Ki",
        "pods": str(IpAllocator.CAPACITY),  # one loopback address per pod is the real limit
        "ephemeral-storage": f"{shutil.disk_usage(state_dir).total // 1024}Ki",
    }
    return {
        "conditions": conditions("True", since, now),
        "addresses": [{"type": "InternalIP", "address": HOST_IP}, {"type": "Hostname", "address": name}],
        "capacity": capacity,
        "allocatable": capacity,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": machine_id, "systemUUID": machine_id,
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(), "osImage": _os_image(),
            "containerRuntimeVersion": "local://gctuner", "kubeletVersion": f"v{K8S_VERSION}",
            "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": _ARCH.get(platform.machine(), platform.machine()),
        },
    }


class NodeReporter:
    """Registers the Node, then refreshes its Ready condition every heartbeat."""

    def __init__(self, api: KubeApi, name: str, state_dir: Path) -> None:
        self._api, self.name, self._state_dir = api, name, state_dir
        self._path = f"/api/v1/nodes/{name}/status"
        self._since = time.time()

    async def run(self) -> None:
        registered = False
        while True:
            try:
                if registered:
                    status = {"conditions": conditions("True", self._since, time.time())}
                else:
                    await self._create()
                    status = full_status(self.name, self._state_dir, self._since, time.time())
                await self._api.request("PATCH", self._path, body={"status": status}, content_type=STRATEGIC_PATCH)
                if not registered:
                    log.info("node %s registered and ready", self.name)
                registered = True
            except ApiError as exc:
                log.warning("node %s: %s failed: %s", self.name, "heartbeat" if registered else "registration", exc)
            await asyncio.sleep(HEARTBEAT_SECONDS if registered else 1.0)

    async def _create(self) -> None:
        try:
            await self._api.request("POST", "/api/v1/nodes", body=node_object(self.name))
        except ApiError as exc:
            if exc.status != 409:  # 409: registered by an earlier run
                raise

    async def mark_stopped(self) -> None:
        """Say that nobody posts this node's status any more, as the node controller would."""
        now = time.time()
        body = {"status": {"conditions": conditions("Unknown", now, now)}}
        try:
            await self._api.request("PATCH", self._path, body=body, content_type=STRATEGIC_PATCH, timeout=2)
        except ApiError as exc:
            log.warning("could not mark node %s stopped: %s", self.name, exc)
