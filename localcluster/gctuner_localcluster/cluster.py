"""The whole local cluster: etcd, kube-apiserver and our local kubelet.

``with LocalCluster() as cluster:`` gives a kubeconfig that kubectl, kopf and
the Kubernetes clients use as they would a real cluster's.  A start that fails
half-way tears down what it started; ``stop()`` is safe to call twice and
collects every error instead of stopping at the first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from . import binaries
from .controlplane import APIServer, Etcd
from .process import ManagedProcess

NODE_NAME = "local"
REPO_ROOT = Path(__file__).resolve().parents[2]


class KubectlError(subprocess.CalledProcessError):
    """kubectl failed; the message carries what kubectl said."""

    def __str__(self) -> str:
        return f"kubectl {' '.join(self.cmd[2:])} failed (exit {self.returncode}): {self.stderr.strip()}"


class LocalCluster:
    """A real control plane plus a local kubelet, on loopback."""

    def __init__(
        self,
        workdir: Path | None = None,
        assets: Path | None = None,
        kubelet: bool = True,
        repo_root: Path = REPO_ROOT,
        log: Callable[[str], None] = print,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="gctuner-cluster-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.assets = binaries.ensure(assets, log=log)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.repo_root = repo_root
        self._with_kubelet = kubelet
        self.node_name = NODE_NAME
        self._log = log
        self.etcd: Etcd | None = None
        self.apiserver: APIServer | None = None
        self.kubelet: ManagedProcess | None = None

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> LocalCluster:
        try:
            self.etcd = Etcd(self.assets, self.workdir)
            self.etcd.start()
            self.apiserver = APIServer(self.assets, self.workdir, self.etcd.url)
            self.apiserver.start()
            self.apiserver.write_kubeconfig(self.kubeconfig)
            if self._with_kubelet:
                self._start_kubelet()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_kubelet(self) -> None:
        self.kubelet = ManagedProcess(
            "kubelet",
            [
                sys.executable, "-m", "gctuner_localcluster.kubelet",
                "--kubeconfig", str(self.kubeconfig),
                "--state-dir", str(self.workdir / "kubelet"),
                "--node-name", NODE_NAME,
                "--repo-root", str(self.repo_root),
            ],
            self.workdir / "logs" / "kubelet.log",
        )
        self.kubelet.start()
        self.kubelet.wait_until(self._node_ready, 30, "Ready (node registered)")

    def _node_ready(self) -> bool:
        try:
            node = self.api_get(f"/api/v1/nodes/{self.node_name}")
        except OSError:
            return False
        conditions = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def stop(self) -> None:
        """Stop everything that runs, newest first; raise one error naming all failures."""
        errors = []
        for component in (self.kubelet, self.apiserver, self.etcd):
            if component is None:
                continue
            try:
                component.stop()
            except Exception as exc:  # noqa: BLE001  (whatever failed, keep stopping the rest; all are reported)
                errors.append(f"{type(component).__name__}: {exc}")
        self.kubelet = self.apiserver = self.etcd = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if errors:
            raise RuntimeError("stopping the local cluster failed: " + "; ".join(errors))

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- clients -------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against this cluster; raise with its stderr on failure."""
        proc = subprocess.run(
            [str(self.assets.path("kubectl")), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input, capture_output=True, text=True, timeout=120,
        )
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc

    def api_get(self, path: str) -> dict:
        """GET a path of the API server as the admin (no kubectl process per poll)."""
        assert self.apiserver is not None, "the cluster is not started"
        request = urllib.request.Request(self.apiserver.url + path)
        request.add_header("Authorization", f"Bearer {self.apiserver.admin_token}")
        context = self.apiserver._ssl_context()
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.load(response)

    def kubeconfig_for(self, user: str, token: str) -> Path:
        """A kubeconfig that authenticates with ``token`` (e.g. a ServiceAccount's)."""
        assert self.apiserver is not None, "the cluster is not started"
        return self.apiserver.write_kubeconfig(self.workdir / f"kubeconfig-{user}", user, token)

    def env(self) -> dict[str, str]:
        """The environment for a child process that talks to this cluster."""
        path = f"{self.assets.folder}{os.pathsep}{os.environ.get('PATH', '')}"
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}
