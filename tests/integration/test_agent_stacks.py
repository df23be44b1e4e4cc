"""Every stack under a real multi-process server: one POST, every process.

Django (WSGI middleware) under gunicorn, Starlette (ASGI middleware) under
uvicorn's own process manager, a WSGI app under uWSGI, and a plain
multiprocessing server. Each app answers ``/`` with its own pid and
thresholds, so the test sees every process apply the POST.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests
from agent_servers import BIN, TUNED, agent_env, free_port, restore, serving, tune_and_converge

pytestmark = pytest.mark.timeout(180)

WORKERS = 4


def converge_and_restore(tmp_path: Path, command: list[str], url: str) -> None:
    with serving(command, agent_env(tmp_path / "state"), tmp_path / "server.log", f"{url}/"):
        seen = tune_and_converge(f"{url}/tune_gc", f"{url}/", WORKERS)
        assert all(answer["thresholds"] == TUNED for answer in seen.values())
        defaults = requests.get(f"{url}/tune_gc", timeout=5).json()["defaults"]
        assert restore(f"{url}/tune_gc", WORKERS)["new_thresholds"] == defaults


def test_django_under_gunicorn(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
               "--graceful-timeout", "5", "django_app:application"]  # fmt: skip
    converge_and_restore(tmp_path, command, f"http://127.0.0.1:{port}")


def test_starlette_under_uvicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "uvicorn"), "--workers", str(WORKERS), "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "starlette_app:app"]  # fmt: skip
    converge_and_restore(tmp_path, command, f"http://127.0.0.1:{port}")


def test_uwsgi_processes(tmp_path: Path) -> None:
    port = free_port()
    command = [str(BIN / "uwsgi"), "--http-socket", f"127.0.0.1:{port}", "--master",
               "--processes", str(WORKERS), "--enable-threads", "--die-on-term",
               "--disable-logging", "--wsgi-file", "wsgi_app.py"]  # fmt: skip
    converge_and_restore(tmp_path, command, f"http://127.0.0.1:{port}")


def test_multiprocessing_server(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "mp_server.py", str(port), str(WORKERS)]
    converge_and_restore(tmp_path, command, f"http://127.0.0.1:{port}")
