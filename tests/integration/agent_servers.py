"""Real servers for the agent's integration tests: start, wait, check, stop.

Not a test module. Every server binds 127.0.0.1 on a free port, is waited
for by polling (with early-exit detection) and is stopped with SIGTERM, then
SIGKILL after a bounded wait.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import requests
from polling import wait_for

APPS = Path(__file__).with_name("apps")
BIN = Path(sys.executable).parent
TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TUNED = [50000, 20, 100]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def agent_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a pod's app container: token, shared state, our apps importable."""
    path = os.pathsep.join(filter(None, [str(APPS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "GCTUNER_TOKEN": TOKEN, "GCTUNER_STATE_DIR": str(state_dir),
            "PYTHONPATH": path, **extra}  # fmt: skip


@contextlib.contextmanager
def serving(command: Sequence[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[str]:
    """Run ``command`` until ``ready_url`` answers; yield the log's path as text on failure."""
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            list(command), stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=APPS,
            start_new_session=True,  # its own process group, as each pod has
        )  # fmt: skip

    def ready() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"{command[0]} exited with {server.returncode}:\n{log.read_text()}")
        return requests.get(ready_url, timeout=5).status_code == 200

    try:
        wait_for(ready, 60, f"{Path(command[0]).name} to answer {ready_url}")
        yield ready_url
    finally:
        stop(server)


def stop(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM, a bounded wait, then SIGKILL to the server's whole process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # stragglers too: workers never outlive a test
    server.wait(5)


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
