"""Propagation: time from ``POST /tune_gc`` until every gunicorn worker applied the settings.

The Flask app with ``GCTuner(app)`` under gunicorn with 4 and then 16 sync
workers. Each repetition POSTs new thresholds and times two things: the
POST's own answer, which waits until every process acknowledged (and must
say ``applied == total == workers``), and, independently, a poller that
sends ``GET /tune_gc`` in a loop from the moment the POST is sent until a
GET shows every process at the new generation. Followers poll the shared
state every 0.1 s, which bounds what to expect.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from . import servers
from .report import Table, percentile

APPS = Path(__file__).with_name("apps")
WORKER_COUNTS = (4, 16)
REPEATS = 20
WARMUP = 2
TOKEN = "bench-token"
TIMEOUT = 10.0
"""Bound on one repetition: the agent's own apply timeout is 2 s."""


def run(repeats: int = REPEATS) -> list[Table]:
    measured = {workers: _measure(workers, repeats) for workers in WORKER_COUNTS}
    rows = []
    for workers, times in measured.items():
        for how, values in times.items():
            ms = [value * 1000 for value in values]
            rows.append((str(workers), how, *(f"{percentile(ms, q):.0f}" for q in (0.5, 0.95, 1.0)),
                         str(len(ms))))  # fmt: skip
    return [
        Table(
            title="Time until every worker applied a POST (ms)",
            columns=("workers", "measured by", "p50", "p95", "max", "n"),
            rows=rows,
            notes=(f"{repeats} repetitions after {WARMUP} unmeasured ones; gunicorn sync workers; "
                   "every POST answered applied == total == workers",),  # fmt: skip
            raw={"seconds": {str(workers): times for workers, times in measured.items()}},
        )
    ]


def _measure(workers: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per repetition, by the POST's answer and by polling GETs."""
    times: dict[str, list[float]] = {"POST answer": [], "polling GETs": []}
    with tempfile.TemporaryDirectory(prefix="gctuner-bench-") as tmp:
        env = {**os.environ, "BENCH_AGENT": "on", "GCTUNER_TOKEN": TOKEN,
               "GCTUNER_STATE_DIR": str(Path(tmp) / "state")}  # fmt: skip
        with servers.gunicorn("flask_app:app", chdir=APPS, workers=workers, env=env,
                              log=Path(tmp) / "gunicorn.log") as server, \
                ThreadPoolExecutor(1) as poller:  # fmt: skip
            tune = f"{server.url}/tune_gc"
            _wait_for_followers(tune, workers)
            for repeat in range(WARMUP + repeats):
                generation = requests.get(tune, timeout=TIMEOUT).json()["generation"] + 1
                sent = threading.Event()
                polled = poller.submit(_poll_until_applied, tune, generation, workers, sent)
                posted = _post(tune, [50_000 + repeat, 20, 100], workers, sent)
                if repeat >= WARMUP:
                    times["POST answer"].append(posted)
                    times["polling GETs"].append(polled.result())
                else:
                    polled.result()
    return times


def _wait_for_followers(tune: str, workers: int) -> None:
    deadline = time.monotonic() + 60
    while len(requests.get(tune, timeout=TIMEOUT).json()["processes"]) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {workers} processes follow after 60 s")
        time.sleep(0.1)


def _post(tune: str, thresholds: list[int], workers: int, sent: threading.Event) -> float:
    """Seconds until the POST answered; it must say that every worker applied it."""
    started = time.perf_counter()
    sent.set()
    response = requests.post(tune, json={"thresholds": thresholds}, timeout=TIMEOUT,
                             headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    if response.json()["processes"] != {"applied": workers, "total": workers}:
        raise RuntimeError(f"not every worker applied the POST: {response.text}")
    return elapsed


def _poll_until_applied(tune: str, generation: int, workers: int, sent: threading.Event) -> float:
    """Seconds from the POST until a GET shows all ``workers`` at ``generation``."""
    sent.wait(TIMEOUT)
    started = time.perf_counter()
    with requests.Session() as session:
        while time.perf_counter() - started < TIMEOUT:
            processes = session.get(tune, timeout=TIMEOUT).json()["processes"]
            if len(processes) == workers and all(p["generation"] >= generation for p in processes):
                return time.perf_counter() - started
    raise RuntimeError(f"generation {generation} not on all {workers} workers after {TIMEOUT} s")
