"""``gctuner-localcluster``: the local cluster from the shell (``make cluster``).

``up`` starts a supervisor (``run``) in the background and returns once the
cluster is ready, printing the ``export KUBECONFIG=... PATH=...`` line (kubectl
and the virtualenv's commands); ``down`` stops it.  The supervisor owns every process of the cluster, so one SIGTERM (or
Ctrl-C on ``run``) stops them all.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import binaries
from .cluster import REPO_ROOT, LocalCluster

DEFAULT_DIR = REPO_ROOT / ".gctuner" / "cluster"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pid(workdir: Path) -> int | None:
    try:
        pid = int((workdir / "pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def run(workdir: Path) -> int:
    """Run the cluster in the foreground until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    (workdir / "ready").unlink(missing_ok=True)
    with LocalCluster(workdir=workdir, log=_log) as cluster:
        (workdir / "pid").write_text(str(os.getpid()))
        (workdir / "ready").write_text(str(cluster.kubeconfig))
        _log(f"local cluster ready: export KUBECONFIG={cluster.kubeconfig}")
        stop.wait()
        _log("stopping the local cluster")
    (workdir / "ready").unlink(missing_ok=True)
    (workdir / "pid").unlink(missing_ok=True)
    return 0


def up(workdir: Path, timeout: float = 120) -> int:
    """Start ``run`` detached; wait until it is ready or has died."""
    if _pid(workdir):
        _log("the local cluster is already running (make cluster-down stops it)")
        print(_exports(workdir))
        return 0
    binaries.ensure(log=_log)  # a first build shows its progress here, not in a log file
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ready").unlink(missing_ok=True)
    log_path = workdir / "supervisor.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gctuner_localcluster", "run", "--dir", str(workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while not (workdir / "ready").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            _log(f"the local cluster did not start; {log_path} ends with:\n{tail}")
            return 1
        time.sleep(0.2)
    _log(f"local cluster up (etcd, kube-apiserver v{binaries.K8S_VERSION}, local kubelet); logs in {workdir / 'logs'}")
    print(_exports(workdir))
    return 0


def _exports(workdir: Path) -> str:
    """The line to paste: this cluster's kubeconfig, and kubectl and gctuner on PATH."""
    tools = f"{binaries.ensure(log=_log).folder}{os.pathsep}{Path(sys.executable).parent}"
    return f"export KUBECONFIG={workdir / 'kubeconfig'} PATH={tools}{os.pathsep}$PATH"


def down(workdir: Path, timeout: float = 60) -> int:
    pid = _pid(workdir)
    if pid is None:
        _log("no local cluster is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid(workdir) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid(workdir):
        os.killpg(pid, signal.SIGKILL)
    _log("local cluster stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="gctuner-localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "run", "binaries"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state folder (default {DEFAULT_DIR})")
    args = parser.parse_args()
    if args.command == "binaries":
        print(binaries.ensure(log=_log).folder)
        return 0
    return {"up": up, "down": down, "run": run}[args.command](args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
