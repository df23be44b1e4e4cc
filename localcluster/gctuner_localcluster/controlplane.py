"""etcd and kube-apiserver on loopback, with an admin kubeconfig.

Layered as envtest does it: a process (``process.py``) → components (etcd,
the API server) → an environment (``cluster.py``).  Everything listens on
127.0.0.1 at free ports chosen at start, so several clusters (a demo and a
test run) can share the machine.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import socket
import ssl
import struct
from pathlib import Path

from .binaries import Assets
from .pki import Pki, generate
from .process import ManagedProcess, http_ok

ADMIN_USER = "gctuner-admin"

# Documentation address (RFC 5737), used only when the machine has no
# non-loopback interface: the API server insists on a non-loopback
# --advertise-address but, with the endpoint reconciler off, never dials it.
_FALLBACK_ADVERTISE_ADDRESS = "192.0.2.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def advertise_address() -> str:
    """The first IPv4 address of a non-loopback interface (read locally, never dialled)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            except OSError:
                continue
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                return address
    return _FALLBACK_ADVERTISE_ADDRESS


class Etcd:
    """A single-member etcd with its data in ``workdir/etcd``, empty at every start.

    Every start makes a new CA and service-account key, and no pod of an
    earlier run is still running: an old store's tokens, Secrets, pods and
    node would only mislead (``make cluster`` reuses its folder).
    """

    def __init__(self, assets: Assets, workdir: Path) -> None:
        self.data_dir = workdir / "etcd"
        self.port = free_port()
        peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{peer_port}"
        self.process = ManagedProcess(
            "etcd",
            [
                str(assets.path("etcd")),
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={self.url}",
                f"--advertise-client-urls={self.url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync",  # a throwaway store: durability buys nothing here
                "--log-level=warn",
            ],
            workdir / "logs" / "etcd.log",
        )

    def start(self, timeout: float = 30) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.process.start()
        self.process.wait_until(lambda: http_ok(f"{self.url}/health"), timeout, "healthy")

    def stop(self) -> None:
        self.process.stop()


class APIServer:
    """kube-apiserver with RBAC on, TLS from our CA and a static admin token."""

    def __init__(self, assets: Assets, workdir: Path, etcd_url: str) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(32)
        self.pki: Pki = self._make_pki(workdir / "pki")
        tokens = workdir / "pki" / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)
        self.process = ManagedProcess(
            "kube-apiserver",
            [
                str(assets.path("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.port}",
                f"--advertise-address={advertise_address()}",
                "--endpoint-reconciler-type=none",  # no Service endpoints to keep: nothing dials us but loopback
                f"--tls-cert-file={self.pki.serving_cert}",
                f"--tls-private-key-file={self.pki.serving_key}",
                f"--token-auth-file={tokens}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={self.pki.sa_public}",
                f"--service-account-signing-key-file={self.pki.sa_private}",
                "--service-cluster-ip-range=10.96.0.0/16",
                *self._flags(),
                f"--cert-dir={workdir / 'pki'}",
                "--v=1",
            ],
            workdir / "logs" / "kube-apiserver.log",
        )

    def _make_pki(self, folder: Path) -> Pki:
        return generate(folder)

    def _flags(self) -> list[str]:
        """What differs with a real node (``realnode.components.NodeAPIServer``)."""
        return [
            "--authorization-mode=RBAC",
            # No kube-controller-manager creates the `default` ServiceAccount of
            # each namespace, so pods must not require one.
            "--disable-admission-plugins=ServiceAccount",
        ]

    def _ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.pki.ca_cert))

    def start(self, timeout: float = 60) -> None:
        self.process.start()
        context = self._ssl_context()
        self.process.wait_until(
            lambda: http_ok(f"{self.url}/readyz", context, self.admin_token), timeout, "ready"
        )

    def stop(self) -> None:
        self.process.stop()

    def write_kubeconfig(self, path: Path, user: str = ADMIN_USER, token: str | None = None) -> Path:
        """A kubeconfig for ``user`` (the admin unless a token is given)."""
        ca = self.pki.ca_cert
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: local\n  cluster:\n    server: {self.url}\n"
            f"    certificate-authority: {ca}\n"
            f"users:\n- name: {user}\n  user:\n    token: {token or self.admin_token}\n"
            f"contexts:\n- name: {user}@local\n  context:\n    cluster: local\n    user: {user}\n"
            f"current-context: {user}@local\n"
        )
        path.chmod(0o600)
        return path
