"""A local cluster with a real node: pods are containers.

etcd, kube-apiserver (Node,RBAC), kube-controller-manager, kube-scheduler,
containerd (runc, a CNI bridge) and the real kubelet, all v1.37 binaries on
loopback, everything under the cluster's folder except what the runtime
insists on (``host.py`` records and removes each such change).

``RealNodeCluster`` has the interface of :class:`..cluster.LocalCluster`
(``kubeconfig``, ``kubectl``, ``api_get``, ``env``, ``with``), so a test or
the demo takes either.  Start prints progress; a start that fails stops what
it started and names the component and its log.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from .. import binaries
from ..cluster import REPO_ROOT, LocalCluster
from ..controlplane import Etcd
from ..process import ManagedProcess, ProcessError
from . import binaries as node_binaries
from . import host, images
from .components import Containerd, ControllerManager, Kubelet, NodeAPIServer, Scheduler
from .pki import BRIDGE_HOST, NODE_NAME


class StartError(RuntimeError):
    """A component did not start; the message names it and its log."""


class RealNodeCluster(LocalCluster):
    def __init__(
        self,
        workdir: Path | None = None,
        repo_root: Path = REPO_ROOT,
        log: Callable[[str], None] = print,
        lock_timeout: float = 0,
    ) -> None:
        host.preflight()
        self.tools = node_binaries.host_tools()
        super().__init__(workdir=workdir, kubelet=False, repo_root=repo_root, log=log)
        self.node_folder = node_binaries.ensure(log=log)
        self.node_name = NODE_NAME
        self._lock = host.Lock()
        self._lock_timeout = lock_timeout
        self.ledger = host.Ledger(self.workdir)
        self.containerd: Containerd | None = None
        self.controller_manager: ControllerManager | None = None
        self.scheduler: Scheduler | None = None
        self.real_kubelet: Kubelet | None = None
        self.forwarder: ManagedProcess | None = None
        self.timings: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------

    def _step(self, label: str, action: Callable[[], None]) -> None:
        self._log(f"  starting {label} ...")
        started = time.monotonic()
        try:
            action()
        except ProcessError as exc:
            raise StartError(f"{label} failed to start: {exc}") from exc
        except Exception as exc:
            raise StartError(f"{label} failed to start: {exc} (logs in {self.workdir / 'logs'})") from exc
        self.timings[label] = time.monotonic() - started
        self._log(f"  {label} ready ({self.timings[label]:.1f}s)")

    def start(self) -> RealNodeCluster:
        try:
            self._lock.acquire(self._lock_timeout)
            archives: list[Path] = []
            self._step("images", lambda: archives.extend(images.Builder(self.repo_root, self._log).all()))
            self._start_control_plane()
            self._step("host (cgroups, bridge, shared kubelet folder)", self._prepare_host)
            self.containerd = Containerd(self.tools, self.workdir, images.PAUSE_IMAGE)
            self._step("containerd", self.containerd.start)
            self._step("images into containerd", lambda: images.import_into(archives, self.containerd.ctr, self._log))
            self.real_kubelet = Kubelet(self.node_folder, self.workdir, self.apiserver, self.containerd, self._cgroup_root)
            self._step("kubelet", lambda: self.real_kubelet.start(self._node_ready))
            self.forwarder = ManagedProcess(
                "api-forwarder",
                [sys.executable, "-m", "gctuner_localcluster.realnode.forward", BRIDGE_HOST, "443", str(self.apiserver.port)],
                self.workdir / "logs" / "api-forwarder.log",
            )
            self._step("API forwarder (pods' side of the bridge)", self._start_forwarder)
        except BaseException:
            try:
                self.stop()
            except Exception as exc:  # noqa: BLE001  (the start's error is the one to show)
                self._log(f"  (tearing down after the failed start: {exc})")
            raise
        return self

    def _start_control_plane(self) -> None:
        self.etcd = Etcd(self.assets, self.workdir)
        self._step("etcd", self.etcd.start)
        self.apiserver = NodeAPIServer(self.assets, self.workdir, self.etcd.url)
        self._step("kube-apiserver", self.apiserver.start)
        self.apiserver.write_kubeconfig(self.kubeconfig)
        self.controller_manager = ControllerManager(self.node_folder, self.workdir, self.apiserver)
        self._step("kube-controller-manager", self.controller_manager.start)
        self.scheduler = Scheduler(self.node_folder, self.workdir, self.apiserver)
        self._step("kube-scheduler", self.scheduler.start)

    def _start_forwarder(self) -> None:
        assert self.forwarder is not None
        self.forwarder.start()
        self.forwarder.wait_until(lambda: "forwarding" in self.forwarder.log_tail(), 20, "listening")

    def _prepare_host(self) -> None:
        host.note_fixed_dirs(self.ledger)
        host.note_log_links(self.ledger, self.workdir / "node" / "pod-logs")
        self._cgroup_root = host.make_cgroups(self.ledger)
        host.make_bridge(self.ledger)
        host.make_shared_mount(self.ledger, self.workdir / "node" / "kubelet")

    def _drain(self, timeout: float = 60) -> None:
        """Delete every pod so the kubelet stops each sandbox through the runtime
        (network namespace, IP, mounts released as a real node does)."""
        if self.apiserver is None or self.real_kubelet is None or self.containerd is None:
            return
        import subprocess

        for component in (self.controller_manager, self.scheduler):
            if component is not None:
                component.stop()  # nothing recreates what we delete
        self.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false", check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = subprocess.run([*self.containerd.ctr, "-n", "k8s.io", "tasks", "ls", "-q"],
                                   capture_output=True, text=True).stdout.split()
            if not tasks:
                return
            time.sleep(0.5)

    def stop(self) -> None:
        errors = []
        try:
            self._drain()
        except Exception as exc:  # noqa: BLE001
            errors.append(f"draining the node: {exc}")
        for name in ("forwarder", "real_kubelet", "containerd_tasks", "containerd", "scheduler", "controller_manager", "apiserver", "etcd"):
            try:
                if name == "containerd_tasks":
                    if self.containerd is not None:
                        self.containerd.remove_all()
                    continue
                component = getattr(self, name)
                if component is not None:
                    component.stop()
                setattr(self, name, None)
            except Exception as exc:  # noqa: BLE001  (keep stopping the rest; all are reported)
                errors.append(f"{name}: {exc}")
        errors += host.undo(self.ledger, self._log)
        self._lock.release()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise RuntimeError("stopping the real-node cluster failed: " + "; ".join(errors))

    def kubelet_log(self) -> Path:
        return self.workdir / "logs" / "kubelet.log"


def cleanup(workdir: Path, log: Callable[[str], None] = print) -> list[str]:
    """After a supervisor that died: undo what its record lists."""
    ledger = host.Ledger(workdir)
    if not ledger.entries:
        return []
    log(f"undoing the host changes recorded in {ledger.path}")
    return host.undo(ledger, log)


def ensure_all(log: Callable[[str], None] = print) -> None:
    """Every build the real node needs, with progress (``make node-binaries``)."""
    binaries.ensure(log=log)
    node_binaries.host_tools()
    node_binaries.ensure(log=log)
    images.Builder(REPO_ROOT, log).all()
