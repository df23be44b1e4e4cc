"""``python -m gctuner_localcluster.realnode up|down|run|build``: the real-node
cluster from the shell (``make node-cluster``, ``make node-cluster-down``).

``up`` builds what is missing (with progress, in the foreground), starts a
supervisor in the background and returns once the node is Ready, printing the
``export`` line; ``down`` stops it and undoes every host change it recorded,
also after a supervisor that crashed.
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

from .. import binaries
from ..cluster import REPO_ROOT
from . import host
from .cluster import RealNodeCluster, cleanup, ensure_all

DEFAULT_DIR = REPO_ROOT / ".gctuner" / "node-cluster"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pid(workdir: Path) -> int | None:
    try:
        pid = int((workdir / "pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _exports(workdir: Path) -> str:
    tools = f"{binaries.cache_dir()}{os.pathsep}{Path(sys.executable).parent}"
    return f"export KUBECONFIG={workdir / 'kubeconfig'} PATH={tools}{os.pathsep}$PATH"


def run(workdir: Path) -> int:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    (workdir / "ready").unlink(missing_ok=True)
    (workdir / "pid").write_text(str(os.getpid()))
    try:
        with RealNodeCluster(workdir=workdir, log=_log) as cluster:
            (workdir / "ready").write_text(str(cluster.kubeconfig))
            _log("real-node cluster ready")
            stop.wait()
            _log("stopping the real-node cluster")
    finally:
        (workdir / "ready").unlink(missing_ok=True)
        (workdir / "pid").unlink(missing_ok=True)
    return 0


def up(workdir: Path, timeout: float = 600) -> int:
    if _pid(workdir):
        _log("the real-node cluster is already running (make cluster-down stops it)")
        print(_exports(workdir))
        return 0
    try:
        host.preflight()
        ensure_all(log=_log)  # builds show their progress here, not in a log file
    except Exception as exc:  # noqa: BLE001
        _log(f"error: {exc}")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    errors = cleanup(workdir, _log)  # a crashed run's leftovers first
    if errors:
        _log("could not undo a previous run's host changes: " + "; ".join(errors))
        return 1
    log_path = workdir / "supervisor.log"
    log_path.unlink(missing_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gctuner_localcluster.realnode", "run", "--dir", str(workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    shown = 0
    while not (workdir / "ready").exists():
        lines = log_path.read_text(errors="replace").splitlines()
        for line in lines[shown:]:
            _log(line)
        shown = len(lines)
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(60)
            lines = log_path.read_text(errors="replace").splitlines()
            for line in lines[shown:]:
                _log(line)
            _log(f"the real-node cluster did not start (supervisor log: {log_path})")
            return 1
        time.sleep(0.3)
    for line in log_path.read_text(errors="replace").splitlines()[shown:]:
        _log(line)
    _log(f"real-node cluster up (v{binaries.K8S_VERSION}; node 127.0.0.1, containerd); logs in {workdir / 'logs'}")
    print(_exports(workdir))
    return 0


def down(workdir: Path, timeout: float = 120) -> int:
    pid = _pid(workdir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid(workdir) and time.monotonic() < deadline:
            time.sleep(0.3)
        if _pid(workdir):
            os.killpg(pid, signal.SIGKILL)
    errors = cleanup(workdir, _log) if workdir.exists() else []
    if errors:
        _log("left behind: " + "; ".join(errors))
        return 1
    _log("real-node cluster stopped" if pid else "no real-node cluster is running")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m gctuner_localcluster.realnode", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "run", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    if args.command == "build":
        try:
            ensure_all(log=_log)
        except Exception as exc:  # noqa: BLE001
            _log(f"error: {exc}")
            return 1
        return 0
    return {"up": up, "down": down, "run": run}[args.command](args.dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
