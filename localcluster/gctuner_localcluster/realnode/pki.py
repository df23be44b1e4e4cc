"""Certificates for a control plane with a real node.

The local CA (``..pki.Authority``) signs, besides the API server's serving
certificate: client certificates for the kubelet (``system:node:127.0.0.1``
in ``system:nodes``, so the Node authorizer and NodeRestriction apply), for
the controller-manager and the scheduler (their own users, bound by the
default RBAC policy), and for the API server when it calls the kubelet (logs,
exec); and the kubelet's serving certificate for 127.0.0.1, which the API
server verifies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..pki import BRIDGE_HOST, LOOPBACK, Authority, Pair, Pki

NODE_NAME = "127.0.0.1"
__all__ = ["BRIDGE_HOST", "NODE_NAME", "NodePki", "Pair", "generate", "kubeconfig"]


@dataclasses.dataclass(frozen=True)
class NodePki(Pki):
    kubelet_client: Pair  # the kubelet -> API server
    kubelet_serving: Pair  # the kubelet's own port
    apiserver_kubelet_client: Pair  # API server -> kubelet
    controller_manager: Pair
    scheduler: Pair


def generate(folder: Path) -> NodePki:
    authority = Authority(folder)
    server = authority.api_server()
    return NodePki(
        **{f.name: getattr(server, f.name) for f in dataclasses.fields(Pki)},
        kubelet_client=authority.issue("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
        kubelet_serving=authority.issue("kubelet-serving", NODE_NAME, server=True, sans=LOOPBACK),
        apiserver_kubelet_client=authority.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                                 "system:masters"),
        controller_manager=authority.issue("controller-manager", "system:kube-controller-manager"),
        scheduler=authority.issue("scheduler", "system:kube-scheduler"),
    )


def kubeconfig(path: Path, server: str, ca: Path, pair: Pair, user: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {pair.cert}\n    client-key: {pair.key}\n"
        f"contexts:\n- name: {user}@local\n  context:\n    cluster: local\n    user: {user}\n"
        f"current-context: {user}@local\n"
    )
    path.chmod(0o600)
    return path
