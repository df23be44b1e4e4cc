"""Reference workload: what tuning the collector buys an allocation-heavy Flask service.

The app (``bench/apps/reference_app.py``) holds a catalogue of about 300 MB
built at import, builds an order graph with reference cycles per request and
renders it as JSON; ``GCTuner(app)`` is inside. It runs under gunicorn with 2
sync workers, ``--preload`` (the master builds the catalogue once and the
workers share it copy-on-write) and the agent's gunicorn hooks.

Each round starts a fresh server per setting, so every measurement begins
from the same state (a worker's first full collection dirties its copy of the
shared pages once and for all). Each setting is applied through the agent's
real endpoint, as the operator would to a pod that just became ready:
``DELETE /tune_gc`` for the interpreter's defaults, ``POST /tune_gc`` with
thresholds otherwise; then an unmeasured warm-up load, after which the
freeze settings POST ``"freeze": true``. Then ``wrk`` loads one server at a
time, in an order that rotates every round, so that a drift in the machine's
load is spread over all settings. Collections and pause times are the
difference of the agent's ``/metrics`` (per worker, from ``gc.callbacks``)
before and after the measured load; memory is read from ``/proc`` right after
it: RSS summed over the workers (what ``ps`` shows, counting shared pages in
each), PSS summed over master and workers (each shared page counted once:
what the pod really uses) and the workers' USS (their private pages).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from gctuner.core.pauses import BUCKETS_NS
from gctuner.pod.shared import RESYNC_SECONDS

from . import servers
from .agent_overhead import wrk
from .report import RESULTS, Table, spread

APPS = Path(__file__).with_name("apps")
LUA = Path(__file__).with_name("percentiles.lua")
WORKERS = 2
WRK_THREADS = 1
WRK_CONNECTIONS = 4
"""2 CPUs for wrk and gunicorn together: one wrk thread, and two connections
per sync worker, so a worker never idles waiting for the next request and a
request queued behind a collection shows it in its latency."""
ROUNDS = 3
SECONDS = 12
WARMUP_SECONDS = 3
TOKEN = "bench-token"
SEED = (700, 10, 10)
"""The thresholds the blog post behind gctuner sets."""
RAISED = ((10_000, 20, 20), (50_000, 20, 100), (100_000, 50, 100))
"""Raised young-generation thresholds, the older generations raised moderately."""
FREEZE_WITH_RAISED = RAISED[0]
"""Frozen twice: with the defaults (the smallest young generation: the least
garbage held) and with these, the raised setting whose full collections are
frequent enough to fall into a measured load, so that freezing shows."""
START_TIMEOUT = 120.0
"""The master builds the catalogue before it listens: seconds on a busy machine."""
APPLY_TIMEOUT = 10.0
"""How long a POST waits for both workers: a worker in a full collection of
the catalogue on a busy machine can take over a second to notice."""
MB = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Setting:
    """One collector configuration, applied through the agent's endpoint."""

    name: str
    thresholds: tuple[int, ...] | None
    """None: ``DELETE /tune_gc``, the interpreter's own start-up thresholds."""
    freeze: bool = False


def startup_thresholds() -> tuple[int, ...]:
    """The thresholds the servers' interpreter starts with (3.13: 2000, others 700)."""
    printed = subprocess.run(
        [sys.executable, "-c", "import gc; print(*gc.get_threshold())"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return tuple(int(value) for value in printed.split())


def settings(defaults: tuple[int, ...]) -> list[Setting]:
    """Defaults, the seed's (unless they are the defaults, as before 3.13),
    the raised thresholds, then defaults and raised with ``gc.freeze()``."""
    found = [Setting("defaults = seed" if defaults == SEED else "defaults", None)]
    if defaults != SEED:
        found.append(Setting("seed", SEED))
    found += [Setting(f"{raised[0] // 1000}k", raised) for raised in RAISED]
    found.append(Setting("defaults + freeze", defaults, freeze=True))
    found.append(Setting(f"{FREEZE_WITH_RAISED[0] // 1000}k + freeze", FREEZE_WITH_RAISED, freeze=True))
    return found


def _describe(setting: Setting, defaults: tuple[int, ...]) -> str:
    thresholds = setting.thresholds or defaults
    return f"{thresholds}" + (", gc.freeze() after warm-up" if setting.freeze else "")


Measurement = dict[str, float]
"""One measured load of one setting: figure name -> value."""


def run(rounds: int = ROUNDS, seconds: int = SECONDS) -> list[Table]:
    """``rounds`` rounds of every setting, each a fresh server loaded ``seconds``."""
    wrk()  # fail before building anything
    defaults = startup_thresholds()
    chosen = settings(defaults)
    measured: dict[str, list[Measurement]] = {setting.name: [] for setting in chosen}
    with tempfile.TemporaryDirectory(prefix="gctuner-bench-") as tmp:
        for round_ in range(rounds):
            # Rotated by an equal share each round: every setting is loaded
            # early, midway and late in some round.
            start = round_ * len(chosen) // rounds % len(chosen)
            order = chosen[start:] + chosen[:start]
            for name, measurement in _round(order, Path(tmp) / f"round-{round_}", seconds).items():
                measured[name].append(measurement)
    _plot(measured)
    setup = (
        f"gunicorn {WORKERS} sync workers, --preload, agent hooks; wrk {WRK_THREADS} thread, "
        f"{WRK_CONNECTIONS} connections, {seconds} s per measurement after a {WARMUP_SECONDS} s "
        f"warm-up; {rounds} rounds, a fresh server per setting and round, the order rotated "
        "every round; wrk and the server share the machine's 2 CPUs, so wrk's CPU is the "
        "server's loss"
    )
    return [_latency_table(chosen, measured, defaults, setup), _collector_table(chosen, measured)]


def _round(order: list[Setting], folder: Path, seconds: int) -> dict[str, Measurement]:
    """One fresh server per setting; apply, warm up, then load each in turn."""
    folder.mkdir()
    with contextlib.ExitStack() as stack:
        # One after the other, in this thread: a server dies with the thread
        # that started it (PR_SET_PDEATHSIG), so no pool can start them.
        running = {setting: stack.enter_context(_serve(setting, folder)) for setting in order}
        for setting, server in running.items():
            _apply(server, setting.thresholds, freeze=False)
        for setting, server in running.items():
            _load(server.url, WARMUP_SECONDS)
            if setting.freeze:
                _apply(server, setting.thresholds, freeze=True)
        _settle(time.monotonic())
        before = {setting: _collector(server) for setting, server in running.items()}
        loads, memory = {}, {}
        for setting, server in running.items():
            cpu = server.cpu_seconds()
            loads[setting] = _load(server.url, seconds)
            loads[setting]["CPU ms/request"] = (server.cpu_seconds() - cpu) * 1000 / loads[setting]["requests"]
            memory[setting] = _memory(server.pid)
        _settle(time.monotonic())
        return {
            setting.name: {**loads[setting], **memory[setting],
                           **_difference(before[setting], _collector(server), loads[setting]["requests"])}
            for setting, server in running.items()
        }  # fmt: skip


def _settle(since: float) -> None:
    """Wait until every worker has rewritten its record in the state directory
    (every ``RESYNC_SECONDS``) since ``since``: ``/metrics`` reads those."""
    time.sleep(max(0.0, since + RESYNC_SECONDS + 1.0 - time.monotonic()))


@contextlib.contextmanager
def _serve(setting: Setting, folder: Path) -> Iterator[servers.Server]:
    slug = re.sub(r"\W+", "-", setting.name)
    env = {**os.environ, "GCTUNER_TOKEN": TOKEN, "GCTUNER_STATE_DIR": str(folder / f"state-{slug}"),
           "GCTUNER_APPLY_TIMEOUT": str(APPLY_TIMEOUT)}  # fmt: skip
    with servers.gunicorn(
        "reference_app:app", chdir=APPS, workers=WORKERS, env=env, log=folder / f"gunicorn-{slug}.log",
        options=("--preload", "--config", "python:gctuner.gunicorn"), timeout=START_TIMEOUT,
    ) as server:  # fmt: skip
        _wait_for_workers(server)
        yield server


def _wait_for_workers(server: servers.Server) -> None:
    """Until both workers follow the shared state: a POST before then would
    count only the workers that already joined."""
    deadline = time.monotonic() + 30
    while len(requests.get(f"{server.url}/tune_gc", timeout=10).json()["processes"]) < WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.url}: fewer than {WORKERS} workers follow the shared state")
        time.sleep(0.1)


def _apply(server: servers.Server, thresholds: tuple[int, ...] | None, *, freeze: bool) -> None:
    """The setting through the endpoint; every worker must have applied it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if thresholds is None:
        answer = requests.delete(f"{server.url}/tune_gc", headers=headers, timeout=10)
    else:
        body = {"thresholds": list(thresholds), "freeze": freeze}
        answer = requests.post(f"{server.url}/tune_gc", json=body, headers=headers, timeout=10)
    answer.raise_for_status()
    processes = answer.json()["processes"]
    if processes != {"applied": WORKERS, "total": WORKERS}:
        raise RuntimeError(f"{server.url}: the setting reached {processes}, not {WORKERS} workers")


def _load(url: str, seconds: int) -> Measurement:
    """``wrk`` on the order page for ``seconds``: throughput and latency
    percentiles (ms); fails on any error answer."""
    command = [wrk(), f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--timeout", "5s",
               "--script", str(LUA), f"{url}/order"]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    found = re.search(r"^gctuner-bench (.*)$", output, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no figures in wrk's output:\n{output}")
    figures = {key: int(value) for key, value in (pair.split("=") for pair in found.group(1).split())}
    if figures["errors"] or "Non-2xx" in output:
        raise RuntimeError(f"errors under load:\n{output}")
    return {
        "requests": figures["requests"],
        "req/s": figures["requests"] / (figures["duration_us"] / 1e6),
        **{name: figures[key] / 1000 for name, key in
           (("p50 ms", "p50_us"), ("p99 ms", "p99_us"), ("p99.9 ms", "p999_us"), ("max ms", "max_us"))},
    }  # fmt: skip


def _memory(master: int) -> Measurement:
    """MB: the workers' RSS and USS, and the PSS of master and workers
    (from ``smaps_rollup``: a shared page is split among its sharers)."""
    workers = [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]

    def rollup(pid: int) -> dict[str, int]:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        return {key: int(kb) * 1024 for key, kb in re.findall(r"^(\w+):\s+(\d+) kB", text, re.MULTILINE)}

    rollups = {pid: rollup(pid) for pid in [master, *workers]}
    return {
        "RSS MB": sum(rollups[pid]["Rss"] for pid in workers) / MB,
        "USS MB": sum(rollups[pid]["Private_Clean"] + rollups[pid]["Private_Dirty"] for pid in workers) / MB,
        "PSS MB": sum(rollup_["Pss"] for rollup_ in rollups.values()) / MB,
    }


Counters = dict[tuple[str, ...], float]
"""Samples of the agent's ``/metrics``: (sample name, pid, generation, le) -> value."""


def _collector(server: servers.Server) -> Counters:
    """What the agent reports for every worker: collections (``gc.get_stats``),
    pause sums and histogram buckets (``gc.callbacks``), frozen objects."""
    text = requests.get(f"{server.url}/metrics", timeout=10).text
    wanted = ("gctuner_gc_collections_total", "gctuner_gc_pause_seconds_sum",
              "gctuner_gc_pause_seconds_bucket", "gctuner_gc_frozen_objects")  # fmt: skip
    return {
        (sample.name, sample.labels["pid"], sample.labels.get("generation", ""), sample.labels.get("le", "")):
            sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
        if sample.name in wanted
    }  # fmt: skip


def _difference(before: Counters, after: Counters, requests_: float) -> Measurement:
    """Collections and pauses during the measured load, summed over workers."""
    if {key[1] for key in before} != {key[1] for key in after}:
        raise RuntimeError("a worker was replaced during the measured load")

    def total(name: str, generation: str | None = None, le: str = "") -> float:
        return sum(value - before[key] for key, value in after.items()
                   if key[0] == name and key[3] == le and generation in (None, key[2]))  # fmt: skip

    figures: Measurement = {
        f"gen{g} collections": total("gctuner_gc_collections_total", str(g)) for g in range(3)
    }
    figures["pause ms"] = total("gctuner_gc_pause_seconds_sum") * 1000
    figures["gen2 pause ms"] = total("gctuner_gc_pause_seconds_sum", "2") * 1000
    figures["pause µs/request"] = figures["pause ms"] * 1000 / requests_
    bounds = sorted({float(key[3]) for key in after if key[0] == "gctuner_gc_pause_seconds_bucket"})
    every = total("gctuner_gc_pause_seconds_bucket", le="+Inf")
    figures["longest pause ≤ ms"] = next(
        (bound * 1000 for bound in bounds if total("gctuner_gc_pause_seconds_bucket", le=str(bound)) >= every),
        float("inf"),
    )  # fmt: skip
    figures["frozen objects"] = sum(value for key, value in after.items() if key[0] == "gctuner_gc_frozen_objects")
    return figures


def _latency_table(
    chosen: list[Setting], measured: dict[str, list[Measurement]], defaults: tuple[int, ...], setup: str
) -> Table:
    base = statistics.mean(m["req/s"] for m in measured[chosen[0].name])
    rows = []
    for setting in chosen:
        runs = measured[setting.name]
        rate = [m["req/s"] for m in runs]
        rows.append((setting.name, _describe(setting, defaults), spread(rate, 0),
                     f"{statistics.mean(rate) / base:.0%}",
                     *(_spread(runs, key, 1) for key in ("p50 ms", "p99 ms", "p99.9 ms")),
                     f"{max(m['max ms'] for m in runs):.0f}", _spread(runs, "CPU ms/request", 2)))  # fmt: skip
    return Table(
        title="Throughput and latency per collector setting (mean ± sd over rounds)",
        columns=("setting", "thresholds", "req/s", "vs defaults", "p50 ms", "p99 ms", "p99.9 ms", "max ms",
                 "server CPU ms/request"),  # fmt: skip
        rows=rows,
        notes=(setup, "latency as wrk measures it: from sending a request to its answer on a busy "
                      "connection (closed loop: a stalled server also delays the next request's send)",
               "max ms: the worst over all rounds; server CPU per request (master and workers, "
               "from /proc) is what the machine's other load changes least"),  # fmt: skip
        raw={"measurements": measured},
    )


def _collector_table(chosen: list[Setting], measured: dict[str, list[Measurement]]) -> Table:
    rows = []
    for setting in chosen:
        runs = measured[setting.name]
        rows.append((setting.name, _spread(runs, "gen0 collections"), _spread(runs, "gen1 collections"),
                     _spread(runs, "gen2 collections", 1), _spread(runs, "pause ms"), _spread(runs, "gen2 pause ms"),
                     _per_full_collection(runs), _spread(runs, "pause µs/request", 1),
                     _bound(max(m["longest pause ≤ ms"] for m in runs)),
                     _spread(runs, "RSS MB"), _spread(runs, "PSS MB"), _spread(runs, "USS MB")))  # fmt: skip
    return Table(
        title="Collector work and memory per setting, both workers together (mean ± sd over rounds)",
        columns=("setting", "gen0", "gen1", "gen2", "pause ms", "gen2 pause ms", "ms per gen2", "pause µs/request",
                 "longest pause ≤ ms", "workers RSS MB", "PSS MB (all)", "workers USS MB"),  # fmt: skip
        rows=rows,
        notes=(
            "collections and pauses during the measured load only, from the agent's /metrics "
            "(gc.get_stats and its gc.callbacks recorder) before and after it",
            "ms per gen2: all rounds' gen2 pause time over all their gen2 collections (a full "
            "collection is rare enough that most rounds have none or one)",
            "longest pause: the upper bound of the recorder's histogram bucket holding the longest "
            "pause of any round",
            "objects frozen per worker, mean: " + ", ".join(
                f"{setting.name} {statistics.mean(m['frozen objects'] for m in measured[setting.name]) / WORKERS:,.0f}"
                for setting in chosen if setting.freeze
            ),
            "memory right after the load: workers' RSS (shared pages counted in each), PSS of "
            "master and workers (what the pod uses), workers' USS (their private pages: garbage "
            "awaiting collection, and shared pages copied on write)",
        ),
    )


def _spread(runs: list[Measurement], key: str, digits: int = 0) -> str:
    return spread([m[key] for m in runs], digits)


def _per_full_collection(runs: list[Measurement]) -> str:
    collections = sum(m["gen2 collections"] for m in runs)
    return f"{sum(m['gen2 pause ms'] for m in runs) / collections:.0f}" if collections else "none"


def _bound(milliseconds: float) -> str:
    """A histogram bucket's upper bound; the last bucket has none."""
    return f"{milliseconds:g}" if milliseconds != float("inf") else f"> {BUCKETS_NS[-1] / 1e6:g}"


def _plot(measured: dict[str, list[Measurement]]) -> None:
    """``reference_workload_latency.png`` (percentiles and throughput per setting)
    and ``reference_workload_memory.png`` (memory against pause time)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = list(measured)
    RESULTS.mkdir(exist_ok=True)
    figure, (latency, throughput) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=(2, 1))
    width = 0.27
    for offset, key in enumerate(("p50 ms", "p99 ms", "p99.9 ms")):
        means, low, high = _error_bars([[m[key] for m in measured[name]] for name in names])
        positions = [i + (offset - 1) * width for i in range(len(names))]
        latency.bar(positions, means, width, yerr=[low, high], capsize=3, label=key.split()[0])
    latency.set_yscale("log")
    latency.set_ylabel("latency (ms, log scale)")
    latency.set_title("Latency percentiles (mean, bars: min–max over rounds)")
    latency.legend()
    means, low, high = _error_bars([[m["req/s"] for m in measured[name]] for name in names])
    throughput.bar(range(len(names)), means, 0.6, yerr=[low, high], capsize=3, color="tab:gray")
    throughput.set_ylabel("requests/s")
    throughput.set_title("Throughput")
    for axes in (latency, throughput):
        axes.set_xticks(range(len(names)), names, rotation=25, ha="right")
        axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(RESULTS / "reference_workload_latency.png", dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7.5, 5))
    for name in names:
        runs = measured[name]
        axes.scatter([m["pause µs/request"] for m in runs], [m["PSS MB"] for m in runs], label=name, s=36)
    axes.set_xlabel("GC pause time per request (µs)")
    axes.set_ylabel("PSS of master and workers after the load (MB)")
    axes.set_title("Memory against time in the collector (one point per round)")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "reference_workload_memory.png", dpi=110)
    plt.close(figure)


def _error_bars(groups: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Means, and their distances to the minimum and maximum, per group."""
    means = [statistics.mean(group) for group in groups]
    return means, [m - min(g) for m, g in zip(means, groups)], [max(g) - m for m, g in zip(means, groups)]
