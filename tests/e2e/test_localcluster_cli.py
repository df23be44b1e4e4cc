"""``gctuner-localcluster up --process`` / ``down``: the supervisor flow that
``make cluster`` runs for the real node (supervisor.py is shared by both
kinds), on the process cluster, which needs no machine-wide lock (the real
node's session fixture holds that one for its whole run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polling import wait_for

CLI = [sys.executable, "-m", "gctuner_localcluster"]


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(300)
def test_up_prints_the_export_line_and_down_stops_everything(tmp_path: Path) -> None:
    workdir = tmp_path / "cluster"
    started = _cli("up", "--process", "--dir", str(workdir))
    assert started.returncode == 0, started.stderr
    assert "process cluster up" in started.stderr, started.stderr  # progress on stderr, the export line on stdout
    export = started.stdout.strip()
    assert export.startswith(f"export KUBECONFIG={workdir / 'kubeconfig'} PATH="), export
    pid = int((workdir / "pid").read_text())
    try:
        nodes = subprocess.run(["bash", "-c", f"{export}\nkubectl get nodes -o name"],
                               capture_output=True, text=True, timeout=60)
        assert nodes.stdout.split() == ["node/local"], nodes.stdout + nodes.stderr
        again = _cli("up", "--process", "--dir", str(workdir))
        assert again.returncode == 0 and "already running" in again.stderr and again.stdout.strip() == export
    finally:
        stopped = _cli("down", "--process", "--dir", str(workdir))
    assert stopped.returncode == 0, stopped.stderr
    assert "process cluster stopped" in stopped.stderr
    wait_for(lambda: not _alive(pid), timeout=10, what="the supervisor to exit")
    assert not (workdir / "pid").exists()
    assert "no local cluster is running" in _cli("down", "--process", "--dir", str(workdir)).stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
