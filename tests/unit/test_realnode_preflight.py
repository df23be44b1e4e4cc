"""A machine that cannot run the real node is told what it lacks, before
anything is built or started (``make cluster`` as a normal user, say)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gctuner_localcluster.realnode import host


def test_each_missing_piece_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(host, "cgroup_hierarchies", lambda: [])
    with pytest.raises(host.HostError) as refused:
        host.preflight()
    message = str(refused.value)
    assert message.startswith("this machine cannot run the real node; it lacks: root")
    assert "cgroup hierarchies under /sys/fs/cgroup" in message


def test_make_cluster_as_a_normal_user_stops_with_the_reason(tmp_path: Path) -> None:
    """The command itself, run as a user that is not root (as root: dropped to nobody)."""
    command = [sys.executable, "-m", "gctuner_localcluster", "up", "--dir", str(tmp_path / "cluster")]
    if os.geteuid() == 0:
        tmp_path.chmod(0o777)
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 1, done.stderr
    assert "it lacks: root (containers, cgroups and the bridge need it)" in done.stderr
    assert not (tmp_path / "cluster" / "supervisor.log").exists()  # nothing was started
