"""A local cluster in the background: one ``up`` / ``run`` / ``down`` flow for
every kind of cluster (the real node, the process cluster).

``up`` does the builds in the foreground (their progress is the user's to
see), undoes what a crashed run left behind, starts ``run`` detached in a
session of its own, echoes that supervisor's log until the cluster is ready
or the supervisor died, and prints the ``export`` line.  The supervisor owns
every process of the cluster, so one SIGTERM stops them all; ``down`` sends
it, waits, and then undoes any host change still recorded (also after a
supervisor that was killed).  What differs between the kinds is a
:class:`Kind`; the flow is written once.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from . import binaries
from .cluster import LocalCluster

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Kind:
    """What one kind of local cluster needs from the shared flow."""

    name: str  # in messages: "real-node cluster"
    run_args: tuple[str, ...]  # how ``run`` is told this kind: () or ("--process",)
    default_dir: Path
    summary: str  # said once it is up: what runs
    start_timeout: float
    prepare: Callable[[Log], None]  # the builds and checks, in the foreground
    make: Callable[[Path, Log], LocalCluster]
    leftovers: Callable[[Path, Log], list[str]]  # undo a dead run's host changes; what could not be


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def running(workdir: Path) -> int | None:
    """The supervisor's pid, if one runs for this folder."""
    try:
        pid = int((workdir / "pid").read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def exports(workdir: Path) -> str:
    """The line to paste: this cluster's kubeconfig, kubectl and the virtualenv's commands on PATH."""
    tools = f"{binaries.ensure(log=log).folder}{os.pathsep}{Path(sys.executable).parent}"
    return f"export KUBECONFIG={workdir / 'kubeconfig'} PATH={tools}{os.pathsep}$PATH"


def run(kind: Kind, workdir: Path) -> int:
    """The supervisor: the cluster in the foreground until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "ready").unlink(missing_ok=True)
    (workdir / "pid").write_text(str(os.getpid()))
    try:
        with kind.make(workdir, log) as cluster:
            (workdir / "ready").write_text(str(cluster.kubeconfig))
            log(f"{kind.name} ready")
            stop.wait()
            log(f"stopping the {kind.name}")
    except Exception as exc:  # noqa: BLE001  (the start already stopped what it started; one line says why)
        log(f"error: {exc}")
        return 1
    finally:
        (workdir / "ready").unlink(missing_ok=True)
        (workdir / "pid").unlink(missing_ok=True)
    return 0


def up(kind: Kind, workdir: Path) -> int:
    """Start the supervisor detached; return once the cluster is ready (0) or failed (1)."""
    if running(workdir):
        log(f"the {kind.name} is already running (make cluster-down stops it)")
        print(exports(workdir))
        return 0
    try:
        kind.prepare(log)
    except Exception as exc:  # noqa: BLE001  (a build or a missing package: the message says what to do)
        log(f"error: {exc}")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    errors = kind.leftovers(workdir, log)
    if errors:
        log("could not undo a previous run's host changes: " + "; ".join(errors))
        return 1
    log_path = workdir / "supervisor.log"
    log_path.unlink(missing_ok=True)
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gctuner_localcluster", "run", *kind.run_args, "--dir", str(workdir)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    echo = _Echo(log_path)
    deadline = time.monotonic() + kind.start_timeout
    while not (workdir / "ready").exists():
        echo()
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:  # too slow: its own teardown runs on SIGTERM
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(120)
            echo()
            log(f"the {kind.name} did not start (supervisor log: {log_path})")
            return 1
        time.sleep(0.3)
    echo()
    log(f"{kind.name} up ({kind.summary}); logs in {workdir / 'logs'}")
    print(exports(workdir))
    return 0


class _Echo:
    """Shows the lines a log file gained since the last call (the supervisor's progress)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = 0

    def __call__(self) -> None:
        lines = self.path.read_text(errors="replace").splitlines()
        for line in lines[self.shown:]:
            log(line)
        self.shown = len(lines)


def down(kind: Kind, workdir: Path, timeout: float = 120) -> bool:
    """Stop this kind's supervisor and undo its host changes; False if something is left behind."""
    pid = running(workdir)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(workdir) and time.monotonic() < deadline:
            time.sleep(0.3)
        if running(workdir):
            os.killpg(pid, signal.SIGKILL)
    errors = kind.leftovers(workdir, log) if workdir.exists() else []
    if errors:
        log(f"the {kind.name} left behind: " + "; ".join(errors))
        return False
    if pid is not None:
        log(f"{kind.name} stopped")
    return True
