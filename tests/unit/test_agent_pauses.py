"""The pause recorder, driven by a fake collector and a fake clock, then by the real one."""

from __future__ import annotations

import gc

import pytest
from agent_support import FakeGC

from gctuner.core.pauses import BUCKETS_NS, PauseRecorder, summarize

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


def collect(fake: FakeGC, clock: Clock, generation: int, pause_ns: int, collected: int = 0) -> None:
    for callback in list(fake.callbacks):
        callback("start", {"generation": generation, "collected": 0, "uncollectable": 0})
    clock.now += pause_ns
    for callback in list(fake.callbacks):
        callback("stop", {"generation": generation, "collected": collected, "uncollectable": 1})


def test_records_per_generation() -> None:
    fake, clock = FakeGC(), Clock()
    recorder = PauseRecorder(fake, clock)
    recorder.install()
    collect(fake, clock, 0, 50_000, collected=3)
    collect(fake, clock, 0, 2_000_000, collected=4)
    collect(fake, clock, 2, 3_000_000_000)
    snapshot = recorder.snapshot()
    young, _, old = snapshot["generations"]
    assert snapshot["enabled"] is True
    assert snapshot["buckets_ns"] == list(BUCKETS_NS)
    assert (young["collections"], young["collected"], young["uncollectable"]) == (2, 7, 2)
    assert young["pause_ns_total"] == 2_050_000
    assert young["pause_ns_max"] == 2_000_000
    assert young["histogram"][0] == 1  # <= 0.1 ms
    assert young["histogram"][BUCKETS_NS.index(2_500_000)] == 1
    assert old["histogram"][-1] == 1  # longer than the last bound
    assert sum(young["histogram"]) == young["collections"]


def test_summary_sums_generations_and_keeps_the_longest() -> None:
    fake, clock = FakeGC(), Clock()
    recorder = PauseRecorder(fake, clock)
    recorder.install()
    collect(fake, clock, 0, 50_000)
    collect(fake, clock, 2, 3_000_000)
    assert summarize(recorder.snapshot()) == {"collections": 2, "pause_ns_total": 3_050_000, "pause_ns_max": 3_000_000}
    assert summarize(None) is None  # a process that does not record
    assert summarize({"garbage": 1}) is None


def test_install_is_idempotent_and_uninstall_stops_recording() -> None:
    fake, clock = FakeGC(), Clock()
    recorder = PauseRecorder(fake, clock)
    recorder.install()
    recorder.install()
    assert len(fake.callbacks) == 1
    recorder.uninstall()
    assert fake.callbacks == []
    collect(fake, clock, 0, 10)
    assert recorder.snapshot()["enabled"] is False
    assert recorder.snapshot()["generations"][0]["collections"] == 0


def test_a_stop_without_start_is_ignored() -> None:
    fake, clock = FakeGC(), Clock()
    recorder = PauseRecorder(fake, clock)
    recorder.install()
    fake.callbacks[0]("stop", {"generation": 1, "collected": 0, "uncollectable": 0})
    assert recorder.snapshot()["generations"][1]["collections"] == 0


def test_records_the_real_collector() -> None:
    recorder = PauseRecorder()
    recorder.install()
    try:
        gc.collect()
    finally:
        recorder.uninstall()
    old = recorder.snapshot()["generations"][2]
    assert old["collections"] >= 1
    assert old["pause_ns_max"] > 0
    assert recorder.installed is False
