"""Real servers for the agent's integration tests: start, wait, check, stop.

Not a test module. Every server binds 127.0.0.1 on a free port, is waited
for by polling (with early-exit detection) and is stopped with SIGTERM, then
SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from gctuner_localcluster.controlplane import free_port  # noqa: F401  (the tests import it from here)
from gctuner_localcluster.process import ManagedProcess
from polling import wait_for

APPS = Path(__file__).with_name("apps")
BIN = Path(sys.executable).parent
TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TUNED = [50000, 20, 100]


def agent_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a pod's app container: token, shared state, our apps importable."""
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "GCTUNER_TOKEN": TOKEN, "GCTUNER_STATE_DIR": str(state_dir),
            "PYTHONPATH": path, **extra}  # fmt: skip


@contextlib.contextmanager
def serving(command: Sequence[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[str]:
    """Run ``command`` (in its own process group, as each pod has) until
    ``ready_url`` answers; stop it, workers and all, when the test is done."""
    server = ManagedProcess(Path(command[0]).name, command, log, env=env, cwd=APPS)
    server.start()
    try:
        server.wait_until(lambda: _answers(ready_url), 60, f"answering {ready_url}")
        yield ready_url
    finally:
        server.stop(grace=15)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def tune_and_converge(tune_url: str, app_url: str, workers: int) -> dict[int, dict[str, Any]]:
    """Wait for ``workers`` followers, POST once, expect all of them to apply it,
    then GET ``app_url`` until every worker answered; return the answers by pid."""
    wait_for(lambda: len(requests.get(tune_url, timeout=5).json()["processes"]) == workers,
             60, f"{workers} processes to follow")  # fmt: skip
    response = requests.post(tune_url, json={"thresholds": TUNED}, headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["processes"] == {"applied": workers, "total": workers}
    assert response.json()["new_thresholds"] == TUNED
    return reach_every_worker(app_url, workers)


def reach_every_worker(app_url: str, workers: int) -> dict[int, dict[str, Any]]:
    """GET ``app_url`` concurrently (a new connection each) until ``workers`` pids answered."""
    seen: dict[int, dict[str, Any]] = {}

    def every_worker_seen() -> bool:
        with ThreadPoolExecutor(8) as pool:
            for answer in pool.map(lambda _: requests.get(app_url, timeout=5).json(), range(16)):
                seen[answer["pid"]] = answer
        return len(seen) >= workers

    wait_for(every_worker_seen, 60, f"GETs answered by {workers} workers", interval=0.05)
    return seen


def restore(tune_url: str, workers: int) -> dict[str, Any]:
    response = requests.delete(tune_url, headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["processes"] == {"applied": workers, "total": workers}
    return response.json()
