"""The autopilot under real multi-process servers: gunicorn and uvicorn with 4 workers.

A goal and no numbers; an allocation-heavy load; the elected worker raises
threshold0 until the GC time is within the goal, and every worker follows.
Killing the elected worker hands the steering to another, with the settings
left as they were.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from agent_servers import AUTH, BIN, agent_env, free_port, serving

from polling import wait_for

pytestmark = pytest.mark.timeout(240)

WORKERS = 4
GOAL = {"gcTimePercent": 1, "memoryBytes": 2**40}  # a budget far away: GC time decides


class Load:
    """Requests to ``/churn`` from two threads until stopped (bounded by the test's timeout)."""

    def __init__(self, url: str) -> None:
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for _ in range(2)]

    def _run(self, url: str) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                try:
                    session.get(url, timeout=10)
                except requests.RequestException:
                    pass  # a worker being killed and respawned

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)


def tune(url: str) -> dict[str, Any]:
    answer = requests.get(f"{url}/tune_gc", timeout=5).json()
    assert isinstance(answer, dict)
    return answer


def steered(url: str) -> dict[str, Any] | None:
    """The GET answer once the autopilot raised threshold0 and every worker runs its choice."""
    answer = tune(url)
    pilot = answer.get("autopilot") or {}
    choice = (pilot.get("choice") or {}).get("thresholds")
    processes = answer["processes"]
    if not choice or choice[0] <= answer["defaults"][0] or len(processes) != WORKERS or not answer["in_sync"]:
        return None
    return answer if all(p["thresholds"][0] == choice[0] for p in processes) else None


@pytest.fixture(params=["gunicorn", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    if request.param == "gunicorn":
        command = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
                   "--graceful-timeout", "5", "flask_app:app"]  # fmt: skip
    else:
        command = [str(BIN / "uvicorn"), "--workers", str(WORKERS), "--host", "127.0.0.1",
                   "--port", str(port), "--no-access-log", "starlette_app:app"]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with serving(command, agent_env(tmp_path / "state"), tmp_path / "server.log", f"{url}/"):
        wait_for(lambda: len(tune(url)["processes"]) == WORKERS, 60, f"{WORKERS} processes to follow")
        yield url


def test_a_goal_is_steered_to_by_one_worker_and_followed_by_all(server: str) -> None:
    answer = requests.post(f"{server}/tune_gc", json={"goal": GOAL}, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["processes"] == {"applied": WORKERS, "total": WORKERS}
    assert answer.json()["goal"] == {"gcTimePercent": 1, "memoryBytes": 2**40}
    with Load(f"{server}/churn"):
        found = wait_for(lambda: steered(server), 120, "the autopilot to raise threshold0 in every worker")
        pilot = found["autopilot"]
        assert pilot["pid"] in {p["pid"] for p in found["processes"]}
        assert pilot["measured"]["processes"] >= 1
        assert any(d["changed"] and "raising threshold0" in d["reason"] for d in pilot["decisions"])

        chosen = found["desired"]["thresholds"]
        os.kill(pilot["pid"], signal.SIGKILL)  # the elected worker dies; the server starts another
        assert tune(server)["desired"]["thresholds"] == chosen, "the settings stay as they were"
        taken = wait_for(lambda: (a := tune(server)).get("autopilot", {}).get("pid") not in (None, pilot["pid"])
                         and a, 60, "another worker to take the steering over")  # fmt: skip
        assert taken["autopilot"]["pid"] in {p["pid"] for p in taken["processes"]}
        assert taken["desired"]["thresholds"][0] >= chosen[0], "no step back to the defaults"


def test_a_bad_goal_is_refused_and_changes_nothing(server: str) -> None:
    before = tune(server)
    for body, words in [({"goal": {"gcTimePercent": 90}}, "between 0.1 and 50"),
                        ({"goal": {"gcTimePercent": 2}, "thresholds": [1000]}, "a goal comes alone"),
                        ({"goal": "fast"}, "goal must be a JSON object")]:  # fmt: skip
        answer = requests.post(f"{server}/tune_gc", json=body, headers=AUTH, timeout=10)
        assert answer.status_code == 400 and words in answer.json()["message"], answer.text
    after = tune(server)
    assert (after["generation"], after["desired"], after.get("goal")) == (before["generation"], before["desired"], None)
    assert [p["thresholds"] for p in after["processes"]] == [p["thresholds"] for p in before["processes"]]
