"""Prometheus metrics: every live process, labelled by pid; prometheus_client stays optional."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from agent_support import FakeGC
from prometheus_client import CollectorRegistry

from gctuner.api.endpoint import Request
from gctuner.core.pauses import PauseRecorder
from gctuner.core.runtime import GCRuntime
from gctuner.core.settings import Settings
from gctuner.metrics import GCCollector
from gctuner.pod.publisher import Publisher
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from gctuner.wsgi import GCTunerMiddleware

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def member(tmp_path: Path):
    fake = FakeGC((700, 10, 10))
    ticks = iter(range(0, 10**9, 3_000_000))  # every pause lasts 3 ms
    recorder = PauseRecorder(fake, clock=lambda: next(ticks))
    recorder.install()
    shared = SharedState(StateDir(tmp_path / "state"), GCRuntime(fake), recorder=recorder)
    for callback in fake.callbacks:  # one generation-1 collection that freed 4 objects
        callback("start", {"generation": 1})
        callback("stop", {"generation": 1, "collected": 4, "uncollectable": 0})
    yield shared
    shared.stop()


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_this_process(member: SharedState) -> None:
    member.start()
    member.publish(Settings((50000, 20, 100)), timeout=1)
    registry = CollectorRegistry()
    GCCollector(member, registry=registry)
    pid = str(os.getpid())
    assert value(registry, "gctuner_processes", state="applied") == 1
    assert value(registry, "gctuner_processes", state="total") == 1
    assert value(registry, "gctuner_gc_threshold", pid=pid, generation="0") == 50000
    assert value(registry, "gctuner_gc_collections_total", pid=pid, generation="2") == 3  # FakeGC's stats
    assert value(registry, "gctuner_gc_collected_objects_total", pid=pid, generation="0") == 7
    assert value(registry, "gctuner_gc_uncollectable_objects_total", pid=pid, generation="1") == 0
    assert value(registry, "gctuner_gc_frozen_objects", pid=pid) == 0
    assert value(registry, "gctuner_gc_pause_seconds_count", pid=pid, generation="1") == 1
    assert value(registry, "gctuner_gc_pause_seconds_sum", pid=pid, generation="1") == pytest.approx(0.003)
    assert value(registry, "gctuner_gc_pause_seconds_bucket", pid=pid, generation="1", le="0.0025") == 0
    assert value(registry, "gctuner_gc_pause_seconds_bucket", pid=pid, generation="1", le="0.005") == 1
    assert value(registry, "gctuner_gc_pause_seconds_bucket", pid=pid, generation="1", le="+Inf") == 1


def test_a_scrape_writes_nothing(member: SharedState) -> None:
    """This process's numbers are fresh in the answer, and only there."""
    member.sync()  # a member, without a follower thread that could rewrite the record
    (record,) = member.state_dir._procs.glob("*.json")
    before = (record.stat().st_mtime_ns, record.read_bytes())
    member.runtime._gc.set_threshold(1234)  # a change the follower did not report yet
    registry = CollectorRegistry()
    GCCollector(member, registry=registry)
    assert value(registry, "gctuner_gc_threshold", pid=str(os.getpid()), generation="0") == 1234
    assert (record.stat().st_mtime_ns, record.read_bytes()) == before


def test_every_process_from_a_publisher(member: SharedState, tmp_path: Path) -> None:
    """What the sidecar reports: the records, one series per pid, none of its own."""
    member.start()
    other = member.state_dir.register()
    member.state_dir.write_record(other, {"pid": 1, "generation": 0, "thresholds": [700, 10, 10], "frozen": 5,
                                          "stats": [], "pauses": None})  # fmt: skip
    member.publish(Settings((1000,)), timeout=0)
    registry = CollectorRegistry()
    GCCollector(Publisher(member.state_dir), registry=registry)
    assert value(registry, "gctuner_processes", state="applied") == 1
    assert value(registry, "gctuner_processes", state="total") == 2
    assert value(registry, "gctuner_gc_threshold", pid="1", generation="0") == 700
    assert value(registry, "gctuner_gc_threshold", pid=str(os.getpid()), generation="0") == 1000
    assert value(registry, "gctuner_gc_frozen_objects", pid="1") == 5
    assert value(registry, "gctuner_gc_pause_seconds_count", pid="1", generation="0") is None
    member.state_dir.release(other)


def test_pause_recording_switched_off(tmp_path: Path) -> None:
    shared = SharedState(StateDir(tmp_path / "state"), GCRuntime(FakeGC()))
    shared.start()
    registry = CollectorRegistry()
    GCCollector(shared, registry=registry)
    pid = str(os.getpid())
    assert value(registry, "gctuner_gc_collections_total", pid=pid, generation="0") == 3
    assert value(registry, "gctuner_gc_pause_seconds_count", pid=pid, generation="0") is None
    shared.stop()


def test_adapters_serve_metrics(tmp_path: Path) -> None:
    app = GCTunerMiddleware(lambda environ, start_response: [], state_dir=str(tmp_path))
    page = app.routes.find("/metrics")
    assert page is not None
    answer = page.handle(Request("GET", {}))
    assert answer.status == 200 and answer.headers[0][1].startswith("text/plain; version=")
    assert b"gctuner_gc_collections_total" in answer.body
    openmetrics = page.handle(Request("GET", {"Accept": "application/openmetrics-text"}))
    assert openmetrics.body.endswith(b"# EOF\n")
    assert page.precheck("POST", {}).status == 405  # type: ignore[union-attr]
    app.routes.shared.stop()  # type: ignore[attr-defined]


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_registers_nothing() -> None:
    code = ("import prometheus_client, gctuner.metrics, gctuner.wsgi, gctuner.asgi; "
            "names = prometheus_client.REGISTRY._names_to_collectors; "
            "print([name for name in names if 'gctuner' in name])")  # fmt: skip
    assert run(code) == "[]"


def test_the_agent_runs_without_prometheus_client(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['prometheus_client'] = None  # as if not installed\n"
            "import gctuner.wsgi\n"
            f"app = gctuner.wsgi.GCTunerMiddleware(lambda e, s: [], state_dir={str(tmp_path)!r})\n"
            "print(sorted(app.routes.paths))")  # fmt: skip
    assert run(code) == "['/tune_gc']"
