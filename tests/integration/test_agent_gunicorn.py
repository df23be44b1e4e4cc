"""The agent under a real gunicorn with 4 workers: one POST reaches every worker.

Sync and gthread workers with the Flask extension; the ``gctuner.gunicorn``
hooks with ``--preload``, ``--max-requests`` and the freeze-after-preload
recipe; and the hooks alone tuning an app that has no gctuner code in it.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from agent_servers import (
    APPS,
    AUTH,
    BIN,
    TOKEN,
    TUNED,
    agent_env,
    free_port,
    reach_every_worker,
    restore,
    serving,
    tune_and_converge,
)

from gctuner_localcluster.process import ManagedProcess
from polling import wait_for

pytestmark = pytest.mark.timeout(180)

WORKERS = 4
HOOKS = "python:gctuner.gunicorn"


@contextlib.contextmanager
def gunicorn(tmp_path: Path, app: str, *options: str, **env: str) -> Iterator[str]:
    """``gunicorn -w 4`` on 127.0.0.1; yields its base URL."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", url[len("http://"):],
               "--graceful-timeout", "5", *options, app]  # fmt: skip
    state = tmp_path / "state"
    with serving(command, agent_env(state, **env), tmp_path / "gunicorn.log", f"{url}/"):
        yield url


@pytest.fixture
def flask_sync(tmp_path: Path) -> Iterator[str]:
    with gunicorn(tmp_path, "flask_app:app") as url:
        yield url


@pytest.mark.parametrize(
    "worker_class", [("-k", "sync"), ("-k", "gthread", "--threads", "4")], ids=["sync", "gthread"]
)
def test_one_post_reaches_every_worker(tmp_path: Path, worker_class: tuple[str, ...]) -> None:
    with gunicorn(tmp_path, "flask_app:app", *worker_class) as url:
        tune = f"{url}/tune_gc"
        seen = tune_and_converge(tune, tune, WORKERS)
        for status in seen.values():
            assert status["thresholds"] == TUNED
            assert status["generation"] == 1
            assert status["in_sync"] is True
            assert len(status["processes"]) == WORKERS
        answer = restore(tune, WORKERS)
        assert answer["new_thresholds"] == next(iter(seen.values()))["defaults"]


def test_a_refused_post_reaches_no_worker(flask_sync: str) -> None:
    url = f"{flask_sync}/tune_gc"
    response = requests.post(url, json={"thresholds": [0]}, timeout=10)
    assert response.status_code == 401
    assert TOKEN not in response.text
    response = requests.post(url, json={"thresholds": [-1, "a"]}, headers=AUTH, timeout=10)
    assert response.status_code == 400
    assert "thresholds[0]" in response.json()["message"]
    assert requests.get(url, timeout=5).json()["generation"] == 0


def test_hooks_with_preload_freeze_and_respawned_workers(tmp_path: Path) -> None:
    """The master built the app (--preload) yet is not counted; the workers
    share its frozen heap; workers re-spawned after --max-requests start with
    the current settings."""
    options = ("-c", HOOKS, "--preload", "--max-requests", "15")
    with gunicorn(tmp_path, "flask_app:app", *options, GCTUNER_FREEZE_AFTER_PRELOAD="1") as url:
        tune = f"{url}/tune_gc"
        first = tune_and_converge(tune, tune, WORKERS)
        assert all(status["frozen"] > 1000 for status in first.values())  # the app's modules

        seen = reach_every_worker(tune, 3 * WORKERS)  # every 15 requests, a new worker
        for answer in seen.values():
            assert (answer["thresholds"], answer["generation"]) == (TUNED, 1)

        def replaced_and_in_sync() -> bool:  # a worker may be between exit and re-spawn
            status = requests.get(tune, timeout=5).json()
            return len(status["processes"]) == WORKERS and status["in_sync"]

        wait_for(replaced_and_in_sync, 30, "4 workers in sync")
        processes = requests.delete(tune, headers=AUTH, timeout=10).json()["processes"]
        assert processes["applied"] == processes["total"]  # 3 if one is being re-spawned


def test_hooks_alone_tune_an_app_without_gctuner(tmp_path: Path) -> None:
    """plain_app has no route of ours: the hooks make its workers follow, and
    a publisher (here: a POST to another server's endpoint) tunes them."""
    state = tmp_path / "state"
    server = gunicorn(tmp_path, "plain_app:application", "-c", HOOKS, "-k", "gthread")
    with server as url, sidecar_for(tmp_path, state) as tune:
        seen = tune_and_converge(tune, f"{url}/", WORKERS)
        assert all(answer["thresholds"] == TUNED for answer in seen.values())


@contextlib.contextmanager
def sidecar_for(tmp_path: Path, state: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "gctuner"), "sidecar", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]]
    with serving(command, agent_env(state), tmp_path / "sidecar.log", f"{url}/healthz"):
        yield f"{url}/tune_gc"


@pytest.mark.parametrize("how", ["command-line", "GUNICORN_CMD_ARGS"])
def test_the_hooks_keep_the_apps_own_gunicorn_conf(tmp_path: Path, how: str) -> None:
    """``-c python:gctuner.gunicorn`` replaces ./gunicorn.conf.py as gunicorn's
    config: ours reads it, so its 3 workers on its port and its own hook stay."""
    port = free_port()
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "gunicorn.conf.py").write_text(textwrap.dedent(f"""
        import os
        workers = 3
        bind = "127.0.0.1:{port}"
        graceful_timeout = 5

        def post_worker_init(worker):
            with open(os.path.join({str(tmp_path)!r}, f"hook-{{os.getpid()}}"), "w"):
                pass
    """))
    state = tmp_path / "state"
    command = [str(BIN / "gunicorn"), "plain_app:application"]
    env = agent_env(state)
    if how == "command-line":
        command[1:1] = ["-c", HOOKS]
    else:
        env["GUNICORN_CMD_ARGS"] = f"-c {HOOKS}"
    server = ManagedProcess("gunicorn", command, tmp_path / "gunicorn.log", env=env, cwd=app_dir)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        server.wait_until(lambda: _answers(f"{url}/"), 60, f"answering on the configured port {port}")
        with sidecar_for(tmp_path, state) as tune:
            seen = tune_and_converge(tune, f"{url}/", 3)
        assert len(seen) == 3 and all(answer["thresholds"] == TUNED for answer in seen.values())
        assert {int(p.name.split("-")[1]) for p in tmp_path.glob("hook-*")} >= set(seen)  # the app's hook ran
        assert APPS.is_dir()
    finally:
        server.stop(grace=15)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def test_delete_keeps_the_freeze_after_preload(tmp_path: Path) -> None:
    """A freeze: true POST then a DELETE: what GCTUNER_FREEZE_AFTER_PRELOAD froze
    in the master stays frozen in every worker, and the answer says so."""
    options = ("-c", HOOKS, "--preload")
    with gunicorn(tmp_path, "flask_app:app", *options, GCTUNER_FREEZE_AFTER_PRELOAD="1") as url:
        tune = f"{url}/tune_gc"
        wait_for(lambda: len(requests.get(tune, timeout=5).json()["processes"]) == WORKERS, 60, "4 followers")
        before = {p["pid"]: p["frozen"] for p in requests.get(tune, timeout=5).json()["processes"]}
        assert all(count > 1000 for count in before.values())
        response = requests.post(tune, json={"thresholds": TUNED, "freeze": True}, headers=AUTH, timeout=10)
        assert response.status_code == 200, response.text
        answer = requests.delete(tune, headers=AUTH, timeout=10).json()
        assert answer["frozen"]["processes"] == WORKERS, answer
        assert "GCTUNER_FREEZE_AFTER_PRELOAD" in answer["frozen"]["note"]
        after = {p["pid"]: p["frozen"] for p in requests.get(tune, timeout=5).json()["processes"]}
        assert all(after[pid] >= before[pid] for pid in before)
