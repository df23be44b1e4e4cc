"""``gctuner-localcluster``: the local cluster from the shell.

  up         start the real-node cluster in the background (``make cluster``):
             containerd, runc and the real kubelet, pods are containers from
             the repository's own images; prints the ``export`` line
  up --process
             the process cluster instead: etcd, kube-apiserver and our small
             kubelet that runs each pod's command as a local process (what
             tests/e2e and the hollow-pod benchmarks run in-process; from the
             shell, to try a docs/ example fast, without containers)
  down       stop whichever runs (``make cluster-down``); nothing left
             running or mounted
  binaries   find or build kube-apiserver, etcd and kubectl (``make binaries``)
  build      every build the real node needs (``make node-binaries``)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import binaries, supervisor
from .cluster import REPO_ROOT, LocalCluster
from .realnode import host
from .realnode.cluster import RealNodeCluster, cleanup, ensure_all

STATE = REPO_ROOT / ".gctuner"


def _prepare_real_node(log: supervisor.Log) -> None:
    host.preflight()
    ensure_all(log=log)


def _prepare_process(log: supervisor.Log) -> None:
    binaries.ensure(log=log)


REAL_NODE = supervisor.Kind(
    name="real-node cluster",
    run_args=(),
    default_dir=STATE / "cluster",
    summary=f"v{binaries.K8S_VERSION}; node 127.0.0.1, containerd",
    start_timeout=600,
    prepare=_prepare_real_node,
    make=lambda workdir, log: RealNodeCluster(workdir=workdir, log=log),
    leftovers=cleanup,
)

PROCESS = supervisor.Kind(
    name="process cluster",
    run_args=("--process",),
    default_dir=STATE / "process-cluster",
    summary=f"etcd, kube-apiserver v{binaries.K8S_VERSION}, the process kubelet",
    start_timeout=120,
    prepare=_prepare_process,
    make=lambda workdir, log: LocalCluster(workdir=workdir, log=log),
    leftovers=lambda workdir, log: [],
)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="gctuner-localcluster", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["up", "down", "run", "binaries", "build"])
    parser.add_argument("--process", action="store_true", help="up/run: the process cluster, not the real node")
    parser.add_argument("--dir", type=Path, help="state folder (default .gctuner/cluster, .gctuner/process-cluster)")
    args = parser.parse_args()
    kind = PROCESS if args.process else REAL_NODE
    workdir = (args.dir or kind.default_dir).resolve()
    try:
        if args.command == "binaries":
            print(binaries.ensure(log=supervisor.log).folder)
            return 0
        if args.command == "build":
            ensure_all(log=supervisor.log)
            return 0
    except Exception as exc:  # noqa: BLE001  (a build failed: its message says where and what to do)
        supervisor.log(f"error: {exc}")
        return 1
    if args.command == "up":
        return supervisor.up(kind, workdir)
    if args.command == "run":
        return supervisor.run(kind, workdir)
    return _down([(kind, workdir)] if args.dir else [(k, k.default_dir.resolve()) for k in (REAL_NODE, PROCESS)])


def _down(targets: list[tuple[supervisor.Kind, Path]]) -> int:
    """Stop every cluster of ``targets`` (one ``make cluster-down`` for either kind)."""
    was_running = [kind for kind, workdir in targets if supervisor.running(workdir)]
    left_nothing = all([supervisor.down(kind, workdir) for kind, workdir in targets])
    if not was_running:
        supervisor.log("no local cluster is running")
    return 0 if left_nothing else 1


if __name__ == "__main__":
    sys.exit(main())
