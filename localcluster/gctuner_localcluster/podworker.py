"""One pod bound to this node: its address, its containers and its status."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from .podenv import ObjectReader, base_env, command_line, container_env
from .podprocess import ContainerRunner, Sandbox, Timing
from .podstatus import HOST_IP, gate_problems, pod_status, timestamp

Json = dict[str, Any]
DEFAULT_GRACE = 30
MIN_GRACE = 2


def _ran_before(status: Json | None) -> bool:
    """The previous kubelet ran this container (so starting it again is a restart)."""
    state = (status or {}).get("state", {})
    return "running" in state or "terminated" in state or bool((status or {}).get("lastState"))


class PodWorker:
    """Runs a pod's containers and turns their states into the pod's status."""

    def __init__(
        self, pod: Json, ip: str, *, state_dir: Path, repo_root: Path, venv_bin: str,
        timing: Timing, http: Any, read: ObjectReader, on_change: Callable[[], None],
    ) -> None:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.label = f"{self.namespace}/{self.name}"
        self.ip = ip
        self.pod = pod
        self.retiring = False
        self.last_sent: Json | None = None
        self.write_failures = 0  # consecutive failed status writes, for backoff
        self._venv_bin = venv_bin
        self._read = read
        self._start_time = status.get("startTime") or timestamp(time.time())
        # Conditions as last reported, so a kubelet restart keeps their transition times.
        self._conditions = {c["type"]: c for c in status.get("conditions", [])}
        sandbox = Sandbox(
            label=self.label, pod_ip=ip, restart_policy=spec.get("restartPolicy", "Always"),
            log_dir=state_dir / "pods" / f"{self.namespace}_{self.name}", cwd=repo_root,
            pid_dir=state_dir / "pids", timing=timing, http=http, on_change=on_change,
        )
        before = {s["name"]: s for s in status.get("containerStatuses", [])}
        self.containers = [
            ContainerRunner(
                c, sandbox, self._preparer(c),
                restarts=before[c["name"]].get("restartCount", 0) + 1 if _ran_before(before.get(c["name"])) else 0,
            )
            for c in spec.get("containers", [])
        ]

    def start(self) -> None:
        for container in self.containers:
            container.start()

    def update(self, pod: Json) -> bool:
        """Keep the newest pod object; True when its status must be recomputed."""
        changed = pod["metadata"].get("generation") != self.pod["metadata"].get("generation")
        self.pod = pod
        return changed or bool(pod["spec"].get("readinessGates"))  # a gate's condition may have changed

    def _preparer(self, container: Json):
        async def prepare() -> tuple[list[str], dict[str, str]]:
            # The downward API sees the address we gave the pod even before it is reported.
            ips = [{"ip": self.ip}]
            view = {**self.pod, "status": {**self.pod.get("status", {}), "podIP": self.ip, "podIPs": ips,
                                           "hostIP": HOST_IP, "hostIPs": [{"ip": HOST_IP}]}}
            env = await container_env(view, container, base_env(view, self.ip, self._venv_bin), self._read)
            return command_line(container, env), env
        return prepare

    def status(self, now: float) -> Json:
        """The pod's status now; remembered as the base of the next transition times."""
        status = pod_status(
            restart_policy=self.pod["spec"].get("restartPolicy", "Always"),
            containers=[c.status() for c in self.containers],
            pod_ip=self.ip, host_ip=HOST_IP, start_time=self._start_time,
            generation=self.pod["metadata"].get("generation", 1),
            gate_issues=gate_problems(self.pod["spec"].get("readinessGates", []),
                                      self.pod.get("status", {}).get("conditions", [])),
            previous=self._conditions, now=now,
        )
        self._conditions = {c["type"]: c for c in status["conditions"]}
        return status

    def grace(self, cap: float) -> float:
        """Seconds between SIGTERM and SIGKILL: what the deletion or the spec asks, within [2, ``cap``].

        Two seconds at least even for a forced deletion, as the kubelet's
        ``minimumGracePeriodInSeconds``: an app always gets to hear SIGTERM.
        """
        meta, spec = self.pod["metadata"], self.pod["spec"]
        asked = meta.get("deletionGracePeriodSeconds")
        if asked is None:
            asked = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        return float(min(max(asked, MIN_GRACE), cap))

    async def stop(self, grace: float) -> None:
        await asyncio.gather(*(c.stop(grace) for c in self.containers))
