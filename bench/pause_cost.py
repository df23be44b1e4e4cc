"""Pause recording and following: what the agent adds to a collection and to a request.

In this process, no server. The pause recorder is a ``gc.callbacks`` entry
called at the start and the end of every collection. Its cost is timed on
explicit ``gc.collect(0)`` calls, in rounds alternating recorder off and on:
collections of an almost empty generation, so the callback's share is as
large as it gets; it is then set against an ordinary generation-0 pause (an
allocation loop whose survivors trigger them), which alone is too noisy to
show the difference. Following the shared state is a daemon thread; its cost
is the CPU that thread uses (from ``/proc``), beside a thread that only
wakes as often, and the time of a Flask request (test client) with and
without it.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, TypeVar

from flask import Flask

import gctuner
from gctuner.core.pauses import PauseRecorder

from .report import Table, spread

ROUNDS = 10
COLLECTIONS = 20_000
ALLOCATIONS = 300_000
REQUESTS = 2_000
FOLLOW_SECONDS = 5.0

T = TypeVar("T")


def run(rounds: int = ROUNDS) -> list[Table]:
    return [_recorder_table(rounds), _follower_table(rounds)]


def _alternate(rounds: int, variants: Sequence[T], measure: Callable[[T], float]) -> dict[T, list[float]]:
    """``measure(variant)`` for every variant in every round, the order reversed
    every other round so that a drift in the machine's load hits all alike."""
    results: dict[T, list[float]] = {variant: [] for variant in variants}
    for round_ in range(rounds):
        for variant in variants if round_ % 2 == 0 else variants[::-1]:
            results[variant].append(measure(variant))
    return results


def _no_op(phase: str, info: dict[str, int]) -> None:
    pass


def _collect_ns(callback: str) -> float:
    """Nanoseconds per explicit ``gc.collect(0)`` with ``callback`` in ``gc.callbacks``:
    none, a function doing nothing (what CPython's callback machinery costs),
    or the pause recorder."""
    recorder = PauseRecorder()
    if callback == "recorder":
        recorder.install()
    elif callback == "no-op":
        gc.callbacks.append(_no_op)
    gc.disable()  # only the collections we ask for
    try:
        started = time.perf_counter_ns()
        for _ in range(COLLECTIONS):
            gc.collect(0)
        return (time.perf_counter_ns() - started) / COLLECTIONS
    finally:
        gc.enable()
        recorder.uninstall()
        if _no_op in gc.callbacks:
            gc.callbacks.remove(_no_op)


def _gen0_pause_ns() -> tuple[float, int]:
    """Mean generation-0 pause in an allocation loop, as the recorder measures it."""
    recorder = PauseRecorder()
    gc.collect()
    recorder.install()
    try:
        kept = [[] for _ in range(ALLOCATIONS)]  # survivors: each counts towards gen0
    finally:
        recorder.uninstall()
    del kept
    young = recorder.snapshot()["generations"][0]
    return young["pause_ns_total"] / max(young["collections"], 1), young["collections"]


def _recorder_table(rounds: int) -> Table:
    explicit = _alternate(rounds, ("none", "no-op", "recorder"), _collect_ns)
    added = [on - off for off, on in zip(explicit["none"], explicit["recorder"])]
    pause, collections = _gen0_pause_ns()
    share = statistics.mean(added) / pause
    return Table(
        title="Cost of the pause recorder per collection",
        columns=("measure", "value"),
        rows=[
            ("gc.collect(0), no callback", f"{spread(explicit['none'])} ns"),
            ("gc.collect(0), a no-op callback", f"{spread(explicit['no-op'])} ns"),
            ("gc.collect(0), the pause recorder", f"{spread(explicit['recorder'])} ns"),
            ("added by the recorder (paired by round)", f"{spread(added)} ns"),
            ("mean gen0 pause in an allocation loop", f"{pause:.0f} ns ({collections} collections)"),
            ("added, as a share of that pause", f"{share:.1%}"),
        ],  # fmt: skip
        notes=(
            f"{rounds} rounds, the order reversed every other, {COLLECTIONS} collections of an almost "
            "empty generation 0 each (automatic collection disabled meanwhile)",
            f"the loop keeps {ALLOCATIONS} lists alive; thresholds {gc.get_threshold()}",
        ),
        raw={"explicit_ns": explicit, "added_ns": added, "gen0_pause_ns": pause,
             "gen0_collections": collections},  # fmt: skip
    )


def _thread_cpu_ns(thread: threading.Thread, seconds: float) -> tuple[float, float]:
    """CPU ``thread`` used per second (from the kernel's schedstat), and its
    wake-ups per second, while this thread sleeps."""
    stat = Path(f"/proc/self/task/{thread.native_id}/schedstat")
    cpu_before, _, wakeups_before = map(int, stat.read_text().split())
    time.sleep(seconds)
    cpu_after, _, wakeups_after = map(int, stat.read_text().split())
    return (cpu_after - cpu_before) / seconds, (wakeups_after - wakeups_before) / seconds


def _idle_thread_cpu_ns(interval: float, seconds: float) -> float:
    """The same for a thread that wakes as often and does nothing: the floor."""
    stopping = threading.Event()

    def idle() -> None:
        while not stopping.wait(interval):
            pass

    thread = threading.Thread(target=idle, daemon=True)
    thread.start()
    try:
        return _thread_cpu_ns(thread, seconds)[0]
    finally:
        stopping.set()
        thread.join()


def _request_us(client_get: Callable[[], object]) -> float:
    started = time.perf_counter_ns()
    for _ in range(REQUESTS):
        client_get()
    return (time.perf_counter_ns() - started) / REQUESTS / 1000


def _follower_table(rounds: int) -> Table:
    app = Flask(__name__)
    app.add_url_rule("/", "index", lambda: {"items": [{"id": i} for i in range(20)]})
    client = app.test_client()
    with tempfile.TemporaryDirectory(prefix="gctuner-bench-") as tmp:
        member = gctuner.follow(tmp)
        follower = next(t for t in threading.enumerate() if t.name == "gctuner-follower")
        cpu_ns, wakeups = _thread_cpu_ns(follower, FOLLOW_SECONDS)
        member.stop()
        floor_ns = _idle_thread_cpu_ns(member.interval, FOLLOW_SECONDS)

        def measure(on: bool) -> float:
            if on:
                gctuner.follow(tmp)
            try:
                return _request_us(lambda: client.get("/"))
            finally:
                member.stop()

        requests = _alternate(rounds, (False, True), measure)
    added = [on - off for off, on in zip(requests[False], requests[True])]
    at_1000 = cpu_ns / 1000  # ns of follower CPU per request at 1000 requests/s
    return Table(
        title="Cost of following the shared state",
        columns=("measure", "value"),
        rows=[
            ("follower thread CPU", f"{cpu_ns / 1000:.0f} µs per second ({wakeups:.0f} wake-ups/s)"),
            ("  an idle thread waking as often, for comparison", f"{floor_ns / 1000:.0f} µs per second"),
            ("  follower CPU per request at 1000 requests/s", f"{at_1000:.0f} ns"),
            ("Flask request (test client), not following", f"{spread(requests[False], 1)} µs"),
            ("Flask request (test client), following", f"{spread(requests[True], 1)} µs"),
            ("  added (paired by round)", f"{spread(added, 1)} µs"),
        ],  # fmt: skip
        notes=(
            f"follower CPU from /proc/self/task/<tid>/schedstat over {FOLLOW_SECONDS:.0f} s; "
            f"{rounds} rounds alternating, {REQUESTS} requests each",
        ),
        raw={"follower_cpu_ns_per_second": cpu_ns, "wakeups_per_second": wakeups,
             "idle_thread_cpu_ns_per_second": floor_ns,
             "request_us": {"off": requests[False], "on": requests[True]}},  # fmt: skip
    )
