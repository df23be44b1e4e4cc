"""Processes a previous kubelet started and could not stop (it was SIGKILLed).

Each container process is recorded as ``<pid_dir>/<pid>`` holding its start
time while it runs; the next kubelet on the same state directory kills what
is left of those sessions before it starts pods again, so a crash of the
kubelet leaves nothing running for longer than that.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/pid/stat field 22)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record(pid_dir: Path, pid: int) -> None:
    (pid_dir / str(pid)).write_text(_start_ticks(pid) or "")


def forget(pid_dir: Path, pid: int) -> None:
    (pid_dir / str(pid)).unlink(missing_ok=True)


def reap_orphans(pid_dir: Path) -> int:
    """Kill the process groups of recorded sessions; the number of groups killed.

    A session counts as ours when its leader is the recorded process (same
    start time) or is gone: a pid cannot be reused while it still names a
    live session, so the members left in that session are ours.
    """
    if not pid_dir.is_dir():
        return 0
    recorded: dict[int, str] = {}
    for entry in pid_dir.iterdir():
        if entry.name.isdigit():
            recorded[int(entry.name)] = entry.read_text().strip()
            entry.unlink()
    if not recorded:
        return 0
    killed = 0
    for sid, groups in _sessions().items():
        if sid not in recorded:
            continue
        ticks = _start_ticks(sid)
        if ticks is not None and ticks != recorded[sid]:
            continue  # the pid now belongs to an unrelated process
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                continue
            killed += 1
    return killed


def _sessions() -> dict[int, set[int]]:
    """Every session on the machine and the process groups in it, from one pass over /proc."""
    sessions: dict[int, set[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # state ppid pgrp session ...
        except OSError:
            continue
        sessions.setdefault(int(fields[3]), set()).add(int(fields[2]))
    return sessions
