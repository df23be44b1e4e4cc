"""The agent under a real gunicorn with 4 workers: one POST reaches every worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

pytestmark = pytest.mark.timeout(120)

APPS = Path(__file__).with_name("apps")
GUNICORN = Path(sys.executable).with_name("gunicorn")
TOKEN = "integration-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WORKERS = 4


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[str]:
    """Start ``gunicorn -w 4`` on 127.0.0.1 (a free port); yield its URL."""
    log = tmp_path / "gunicorn.log"
    env = {**os.environ, "GCTUNER_TOKEN": TOKEN, "GCTUNER_STATE_DIR": str(tmp_path / "state")}
    with open(log, "wb") as log_file:
        server = subprocess.Popen(
            [str(GUNICORN), "-w", str(WORKERS), "-b", "127.0.0.1:0", "--chdir", str(APPS),
             "--graceful-timeout", "5", "flask_app:app"],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

    def listening() -> str | None:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", log.read_text())
        return found.group(1) if found else None

    try:
        yield wait_until(listening, 30, "gunicorn to listen")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)


def test_one_post_reaches_every_worker(gunicorn: str) -> None:
    url = f"{gunicorn}/tune_gc"
    wait_until(
        lambda: len(requests.get(url, timeout=5).json()["processes"]) == WORKERS, 60, "4 workers"
    )

    response = requests.post(url, json={"thresholds": [50000, 20, 100]}, headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["processes"] == {"applied": WORKERS, "total": WORKERS}
    assert response.json()["new_thresholds"] == [50000, 20, 100]

    seen: dict[int, dict[str, Any]] = {}

    def get() -> dict[str, Any]:
        return requests.get(url, timeout=5).json()  # a new connection each time

    def every_worker_seen() -> bool:
        with ThreadPoolExecutor(8) as pool:
            for status in pool.map(lambda _: get(), range(16)):
                seen[status["pid"]] = status
        return len(seen) == WORKERS

    wait_until(every_worker_seen, 60, "GETs answered by all 4 workers")
    for status in seen.values():
        assert status["thresholds"] == [50000, 20, 100]
        assert status["generation"] == 1
        assert status["in_sync"] is True
        assert len(status["processes"]) == WORKERS

    response = requests.delete(url, headers=AUTH, timeout=10)
    assert response.json()["processes"] == {"applied": WORKERS, "total": WORKERS}
    assert response.json()["new_thresholds"] == next(iter(seen.values()))["defaults"]


def test_a_refused_post_reaches_no_worker(gunicorn: str) -> None:
    url = f"{gunicorn}/tune_gc"
    response = requests.post(url, json={"thresholds": [0]}, timeout=10)
    assert response.status_code == 401
    assert TOKEN not in response.text
    response = requests.post(url, json={"thresholds": [-1, "a"]}, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert "thresholds[0]" in response.json()["message"]
    assert requests.get(url, timeout=5).json()["generation"] == 0
