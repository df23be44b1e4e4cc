"""The real node's processes: API server (Node authorization), controller-manager,
scheduler, containerd and the kubelet, each a :class:`ManagedProcess` with its
own log and credentials, configured entirely under the cluster's folder."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

from ..controlplane import APIServer, free_port
from ..process import ManagedProcess, http_ok
from . import host
from .binaries import CNI_PLUGIN_DIR
from .pki import NODE_NAME, NodePki, generate, kubeconfig

PROC_SYS_TUNABLES = (  # what the kubelet sets at start (setupKernelTunables); kept off the host
    "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
)


class NodeAPIServer(APIServer):
    """kube-apiserver for a cluster with a kubelet: client certificates, Node,RBAC,
    NodeRestriction, the ServiceAccount admission back on (the controller-manager
    creates each namespace's ``default`` account)."""

    node_pki: NodePki

    def _make_pki(self, folder: Path) -> NodePki:
        self.node_pki = generate(folder)
        return self.node_pki

    def _flags(self) -> list[str]:
        p = self.node_pki
        return [
            f"--client-ca-file={p.ca_cert}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={p.apiserver_kubelet_client.cert}",
            f"--kubelet-client-key={p.apiserver_kubelet_client.key}",
            f"--kubelet-certificate-authority={p.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]


def _https_ok(port: int) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # their own self-signed serving certificates; loopback only
    return http_ok(f"https://127.0.0.1:{port}/healthz", context)


class ControllerManager:
    def __init__(self, assets: Path, workdir: Path, api: NodeAPIServer) -> None:
        p = api.node_pki
        config = kubeconfig(workdir / "kubeconfig-controller-manager", api.url, p.ca_cert, p.controller_manager,
                            "system:kube-controller-manager")
        self.port = free_port()
        self.process = ManagedProcess(
            "kube-controller-manager",
            [
                str(assets / "kube-controller-manager"),
                f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={workdir / 'pki' / 'controller-manager'}",
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={p.sa_private}",
                f"--root-ca-file={p.ca_cert}",
                "--controllers=*,-nodeipam",  # nodelifecycle lifts the not-ready taint
                "--v=1",
            ],
            workdir / "logs" / "kube-controller-manager.log",
        )

    def start(self, timeout: float = 90) -> None:
        self.process.start()
        self.process.wait_until(lambda: _https_ok(self.port), timeout, "healthy")

    def stop(self) -> None:
        self.process.stop()


class Scheduler:
    def __init__(self, assets: Path, workdir: Path, api: NodeAPIServer) -> None:
        p = api.node_pki
        config = kubeconfig(workdir / "kubeconfig-scheduler", api.url, p.ca_cert, p.scheduler, "system:kube-scheduler")
        self.port = free_port()
        self.process = ManagedProcess(
            "kube-scheduler",
            [
                str(assets / "kube-scheduler"),
                f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--cert-dir={workdir / 'pki' / 'scheduler'}",
                "--leader-elect=false",
                "--v=1",
            ],
            workdir / "logs" / "kube-scheduler.log",
        )

    def start(self, timeout: float = 90) -> None:
        self.process.start()
        self.process.wait_until(lambda: _https_ok(self.port), timeout, "healthy")

    def stop(self) -> None:
        self.process.stop()


class Containerd:
    """containerd with its root, state, socket and CNI configuration under ``workdir/node``."""

    def __init__(self, tools: dict[str, Path], workdir: Path, sandbox_image: str) -> None:
        base = workdir / "node"
        self.socket = base / "containerd.sock"
        self.config = base / "containerd.toml"
        cni_conf = base / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-gctuner.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0",
            "name": "gctuner",
            "plugins": [{
                "type": "bridge",
                "bridge": host.BRIDGE,
                "isGateway": False,
                "isDefaultGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": host.POD_SUBNET}]],
                    "dataDir": str(base / "cni" / "ipam"),
                },
            }],
        }, indent=1))
        self.config.write_text(f"""version = 2
root = "{base / 'containerd' / 'root'}"
state = "{base / 'containerd' / 'state'}"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = ""

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base / 'containerd' / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  enable_unprivileged_ports = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{tools['runc']}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_PLUGIN_DIR}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
""")
        self.ctr = [str(tools["ctr"]), "--address", str(self.socket)]
        self.process = ManagedProcess(
            "containerd",
            [str(tools["containerd"]), "--config", str(self.config), "--log-level", "warn"],
            workdir / "logs" / "containerd.log",
        )

    def _ready(self) -> bool:
        import subprocess

        return subprocess.run([*self.ctr, "version"], capture_output=True).returncode == 0

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        self.process.wait_until(self._ready, timeout, "serving on its socket")

    def remove_all(self) -> None:
        """Kill and delete every container task so that no shim outlives containerd."""
        import subprocess

        listing = subprocess.run([*self.ctr, "-n", "k8s.io", "tasks", "ls", "-q"], capture_output=True, text=True)
        for task in listing.stdout.split():
            subprocess.run([*self.ctr, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", task], capture_output=True)
        for task in listing.stdout.split():
            subprocess.run([*self.ctr, "-n", "k8s.io", "tasks", "delete", "-f", task], capture_output=True)

    def stop(self) -> None:
        self.process.stop()
        self.kill_shims()

    def kill_shims(self) -> None:
        """A shim outlives containerd by design; ours (started for our socket) go too."""
        import os
        import signal

        needle = str(self.socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and needle in cmdline:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


class Kubelet:
    """The real kubelet, in a private mount namespace whose /proc/sys tunables are
    files of its own (the host's stay as they are), its root folder a shared bind
    so its volume mounts reach containerd."""

    def __init__(self, assets: Path, workdir: Path, api: NodeAPIServer, containerd: Containerd, cgroup_root: str) -> None:
        p = api.node_pki
        base = workdir / "node"
        self.root_dir = base / "kubelet"
        self.pod_logs = base / "pod-logs"
        self.pod_logs.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.healthz_port = free_port()
        config = kubeconfig(workdir / "kubeconfig-kubelet", api.url, p.ca_cert, p.kubelet_client, f"system:node:{NODE_NAME}")
        sysctl_dir = base / "sysctl"
        sysctl_dir.mkdir(parents=True, exist_ok=True)
        self.config = base / "kubelet.yaml"
        endpoint = f"unix://{containerd.socket}"
        self.config.write_text(f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
cgroupsPerQOS: true
containerRuntimeEndpoint: {endpoint}
imageServiceEndpoint: {endpoint}
address: 127.0.0.1
port: {self.port}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {self.healthz_port}
tlsCertFile: {p.kubelet_serving.cert}
tlsPrivateKeyFile: {p.kubelet_serving.key}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {p.ca_cert}}}
authorization:
  mode: Webhook
makeIPTablesUtilChains: false
protectKernelDefaults: false
failSwapOn: false
resolvConf: ""
podLogsDir: {self.pod_logs}
syncFrequency: 10s
fileCheckFrequency: 20s
nodeStatusUpdateFrequency: 5s
serializeImagePulls: false
maxPods: 60
evictionHard:
  memory.available: 256Mi
  nodefs.available: 2%
  nodefs.inodesFree: 2%
  imagefs.available: 2%
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
containerLogMaxSize: 5Mi
containerLogMaxFiles: 2
""")
        self.wrapper = base / "kubelet-namespace.sh"
        tunables = " ".join(PROC_SYS_TUNABLES)
        self.wrapper.write_text(f"""#!/bin/sh
# In the kubelet's own mount namespace: /proc private, each tunable the kubelet
# sets bound to a file of ours, so what it writes never reaches the host.
set -eu
mount --make-rprivate /proc
for t in {tunables}; do
  [ -e /proc/sys/$t ] || continue
  f="{sysctl_dir}/$(echo $t | tr / .)"
  cat /proc/sys/$t > "$f"
  mount --bind "$f" /proc/sys/$t
done
exec "$@"
""")
        self.wrapper.chmod(0o755)
        self.process = ManagedProcess(
            "kubelet",
            [
                "unshare", "--mount", "--propagation", "unchanged", "--", "/bin/sh", str(self.wrapper),
                str(assets / "kubelet"),
                f"--config={self.config}",
                f"--kubeconfig={config}",
                f"--root-dir={self.root_dir}",
                f"--hostname-override={NODE_NAME}",
                "--v=1",
            ],
            workdir / "logs" / "kubelet.log",
        )

    def start(self, ready, timeout: float = 90) -> None:
        self.process.start()
        self.process.wait_until(ready, timeout, "Ready (node registered)")

    def stop(self) -> None:
        self.process.stop(grace=20)
