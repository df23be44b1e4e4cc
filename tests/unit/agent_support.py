"""Shared helpers for the agent's unit tests: a fake gc module and follower
processes (polling is ``polling.wait_for``). Not a test module (no ``test_`` prefix)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from gctuner.core.runtime import GCRuntime
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from gctuner.testing import StandInGC as FakeGC

FOLLOWER_SCRIPT = Path(__file__).with_name("agent_follower.py")


def stand_in_follower(state_dir: Path) -> SharedState:
    """This process following ``state_dir`` with a stand-in collector: what the
    adapters' tests pass as ``shared=``, so they never change this process's gc.
    Started; the test stops it."""
    return SharedState(StateDir(state_dir), GCRuntime(FakeGC((700, 10, 10)))).start()


class Follower:
    """A real Python process following a state directory (see agent_follower.py).

    It prints one JSON line per process it runs (two with ``fork=True``), and
    exits when its stdin closes.
    """

    def __init__(self, state_dir: Path, *, fork: bool = False, step_aside: bool = False) -> None:
        command = [sys.executable, str(FOLLOWER_SCRIPT), str(state_dir)]
        if fork:
            command.append("--fork")
        if step_aside:
            command.append("--step-aside")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.reports = [self._read_report() for _ in range(2 if fork else 1)]

    def _read_report(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the script prints at once or dies
        if not line:
            raise AssertionError(f"follower exited with {self.process.wait(5)}")
        return json.loads(line)

    @property
    def pids(self) -> list[int]:
        return [report["pid"] for report in self.reports]

    def stop(self) -> None:
        """Close stdin (the script's signal to exit), wait, kill on timeout."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process.stdout.close()

    def kill(self) -> None:
        self.process.kill()
        self.stop()
