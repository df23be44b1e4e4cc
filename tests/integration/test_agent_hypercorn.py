"""The ASGI middleware under hypercorn's trio worker: no asyncio loop there.

The POST waits for every process in a worker thread of the running library
(trio's ``to_thread``); it used to answer 500, ``no running event loop``.
"""

from __future__ import annotations

from pathlib import Path

import hypercorn  # noqa: F401  (the dev extra's: a missing one fails here, never skips)
import pytest
import requests
import trio  # noqa: F401
from agent_servers import BIN, TUNED, agent_env, free_port, restore, serving, tune_and_converge

pytestmark = pytest.mark.timeout(180)

WORKERS = 2


@pytest.mark.parametrize("worker_class", ["trio", "asyncio"])
def test_starlette_under_hypercorn(tmp_path: Path, worker_class: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "hypercorn"), "-k", worker_class, "-w", str(WORKERS), "-b", url[len("http://"):],
               "--graceful-timeout", "5", "starlette_app:app"]  # fmt: skip
    with serving(command, agent_env(tmp_path / "state"), tmp_path / "hypercorn.log", f"{url}/"):
        tune = f"{url}/tune_gc"
        assert requests.get(tune, timeout=5).status_code == 200
        seen = tune_and_converge(tune, f"{url}/", WORKERS)
        assert all(answer["thresholds"] == TUNED for answer in seen.values())
        assert restore(tune, WORKERS)["processes"] == {"applied": WORKERS, "total": WORKERS}
