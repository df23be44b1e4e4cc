"""``gctuner sidecar`` tuning an app that has no gctuner code, as in a pod.

The app container's view: ``gctuner install-follower DIR`` (an init container
in a real pod) and three environment variables. The sidecar publishes into the
shared state directory and counts the app's processes, not itself.
"""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from agent_servers import (
    BIN,
    TUNED,
    agent_env,
    free_port,
    reach_every_worker,
    restore,
    serving,
    tune_and_converge,
)

from polling import wait_for

pytestmark = pytest.mark.timeout(180)

WORKERS = 4


def test_sidecar_tunes_every_process_of_an_app_container(tmp_path: Path) -> None:
    state, follower = tmp_path / "state", tmp_path / "follower"
    subprocess.run([str(BIN / "gctuner"), "install-follower", str(follower)], check=True, timeout=60)
    assert (follower / "sitecustomize.py").is_file() and (follower / "gctuner" / "pod" / "agent.py").is_file()

    sidecar_url = f"http://127.0.0.1:{free_port()}"
    sidecar = [str(BIN / "gctuner"), "sidecar", "--host", "127.0.0.1",
               "--port", sidecar_url.rsplit(":", 1)[1], "--state-dir", str(state)]  # fmt: skip
    app_url = f"http://127.0.0.1:{free_port()}"
    app = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", app_url[len("http://"):],
           "--graceful-timeout", "5", "plain_app:application"]  # fmt: skip
    app_env = agent_env(state, GUNICORN_CMD_ARGS="-c python:gctuner.gunicorn")
    app_env["PYTHONPATH"] = f"{follower}:{app_env['PYTHONPATH']}"
    del app_env["GCTUNER_TOKEN"]  # only the sidecar checks it

    sidecar_log, app_log = tmp_path / "sidecar.log", tmp_path / "app.log"
    with serving(sidecar, agent_env(state), sidecar_log, f"{sidecar_url}/healthz"), \
            serving(app, app_env, app_log, f"{app_url}/"):
        tune = f"{sidecar_url}/tune_gc"
        seen = tune_and_converge(tune, f"{app_url}/", WORKERS)
        assert all(answer["thresholds"] == TUNED for answer in seen.values())
        status = requests.get(tune, timeout=5).json()
        assert {process["pid"] for process in status["processes"]} == set(seen)
        assert "thresholds" not in status  # the sidecar's own collector is not the app's

        metrics = requests.get(f"{sidecar_url}/metrics", timeout=5).text
        assert 'gctuner_processes{state="total"} 4.0' in metrics
        for pid in seen:
            assert f'gctuner_gc_threshold{{generation="0",pid="{pid}"}} 50000.0' in metrics

        a_plain_python_process_follows_too(follower, app_env, tune)

        defaults = list(gc.get_threshold())  # the same interpreter's start-up defaults
        assert restore(tune, WORKERS)["new_thresholds"] == defaults
        answers = reach_every_worker(f"{app_url}/", WORKERS)
        assert all(answer["thresholds"] == defaults for answer in answers.values())


def a_plain_python_process_follows_too(follower: Path, env: dict[str, str], tune: str) -> None:
    """Any interpreter started with the follower on its path joins, with the
    installed copy of the agent, and leaves when it exits."""
    code = ("import gc, sys, gctuner; print(gctuner.__file__, list(gc.get_threshold()), flush=True); "
            "sys.stdin.read()")  # fmt: skip
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          env=env, text=True) as python:  # fmt: skip
        try:
            assert python.stdout is not None
            where, thresholds = python.stdout.readline().split(" ", 1)
            assert where.startswith(str(follower)) and thresholds.strip() == str(TUNED)

            def listed() -> bool:
                processes = requests.get(tune, timeout=5).json()["processes"]
                return python.pid in {process["pid"] for process in processes}

            wait_for(listed, 30, "the plain process in the sidecar's list")
        finally:
            python.communicate(timeout=30)  # closes stdin: it exits
    wait_for(lambda: len(requests.get(tune, timeout=5).json()["processes"]) == WORKERS, 30, "it to leave")
