"""Agent overhead: requests/s of one Flask app under gunicorn, without and with ``GCTuner(app)``.

Both servers (2 sync workers each) run side by side for the whole benchmark;
``wrk`` loads one at a time, on the app's own route (not ``/tune_gc``), after
a warm-up. Rounds alternate which server goes first, so a drift in the
machine's load hits both alike; the spread over rounds shows the noise. The
agent's side runs everything a pod gets by default: the follower thread, the
pause recorder in ``gc.callbacks``, the ``/tune_gc`` and ``/metrics`` routes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from . import servers
from .report import Table, spread

APPS = Path(__file__).with_name("apps")
WORKERS = 2
WRK_THREADS = 1
WRK_CONNECTIONS = 4
"""2 CPUs for wrk and gunicorn together: one wrk thread, and two connections
per worker so that a worker never waits for wrk to send the next request."""
ROUNDS = 5
SECONDS = 10
WARMUP_SECONDS = 2
GOAL = 0.99


def wrk() -> str:
    """The load generator, or a clear way to get it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: run `apt-get install -y wrk` (as root, `make bench` does)")
    return found


def load(url: str, seconds: int) -> tuple[float, int]:
    """Requests/s and requests that ``wrk`` got from ``url`` in ``seconds``;
    fails on any error answer."""
    command = [wrk(), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", "2s", url]
    output = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        raise RuntimeError(f"errors under load:\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    count = re.search(r"(\d+) requests in", output)
    if rate is None or count is None:
        raise RuntimeError(f"no request counts in wrk's output:\n{output}")
    return float(rate.group(1)), int(count.group(1))


def measure(server: servers.Server, seconds: int) -> tuple[float, float]:
    """Requests/s, and the server's CPU µs per request, after a warm-up."""
    load(f"{server.url}/", WARMUP_SECONDS)
    cpu = server.cpu_seconds()
    rate, count = load(f"{server.url}/", seconds)
    return rate, (server.cpu_seconds() - cpu) / count * 1e6


def run(rounds: int = ROUNDS, seconds: int = SECONDS) -> list[Table]:
    """``rounds`` pairs of ``seconds``-long loads: throughput, and CPU per request
    (which the machine's other load changes far less than throughput)."""
    wrk()  # fail before starting servers
    rates: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="gctuner-bench-") as tmp:
        folder = Path(tmp)

        def serve(agent: str) -> contextlib.AbstractContextManager[servers.Server]:
            env = {**os.environ, "BENCH_AGENT": agent, "GCTUNER_TOKEN": "bench-token",
                   "GCTUNER_STATE_DIR": str(folder / f"state-{agent}")}  # fmt: skip
            return servers.gunicorn("flask_app:app", chdir=APPS, workers=WORKERS, env=env,
                                    log=folder / f"gunicorn-{agent}.log")  # fmt: skip

        with serve("off") as off, serve("on") as on:
            for round_ in range(rounds):
                for agent, server in [("off", off), ("on", on)][:: 1 if round_ % 2 == 0 else -1]:
                    rate, cpu_us = measure(server, seconds)
                    rates[agent].append(rate)
                    cpu[agent].append(cpu_us)
    setup = (
        f"gunicorn {WORKERS} sync workers per server, both up throughout; wrk {WRK_THREADS} thread, "
        f"{WRK_CONNECTIONS} connections, {seconds} s per measurement after a {WARMUP_SECONDS} s "
        "warm-up; wrk and both servers share the machine's CPUs"
    )
    return [
        _table("Requests/s of a Flask app under gunicorn, without and with GCTuner(app)",
               "req/s", rates, 0, f"goal: with / without ≥ {GOAL:.0%}", setup),
        _table("Server CPU per request (master and workers, from /proc)",
               "CPU µs/request", cpu, 1, f"goal: with / without ≤ {2 - GOAL:.0%}", setup),
    ]  # fmt: skip


def _table(
    title: str, unit: str, measured: dict[str, list[float]], digits: int, goal: str, setup: str
) -> Table:
    ratios = [on / off for off, on in zip(measured["off"], measured["on"])]
    rows = [
        (str(i + 1), "without, with" if i % 2 == 0 else "with, without",
         f"{off:.{digits}f}", f"{on:.{digits}f}", f"{ratio:.1%}")
        for i, (off, on, ratio) in enumerate(zip(measured["off"], measured["on"], ratios))
    ]  # fmt: skip
    of_means = statistics.mean(measured["on"]) / statistics.mean(measured["off"])
    rows.append(("mean ± sd", "", spread(measured["off"], digits), spread(measured["on"], digits),
                 f"{of_means:.1%} (rounds {min(ratios):.1%} to {max(ratios):.1%})"))  # fmt: skip
    return Table(
        title=title,
        columns=("round", "order", f"without agent ({unit})", f"with agent ({unit})", "with / without"),
        rows=rows,
        notes=(f"{goal}; the ratio of the means here: {of_means:.1%}", setup),
        raw={"without": measured["off"], "with": measured["on"], "ratios": ratios,
             "ratio_of_means": of_means},  # fmt: skip
    )
