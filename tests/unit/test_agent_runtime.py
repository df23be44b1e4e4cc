"""GCRuntime against a fake gc module, and the flavour of each interpreter."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

import pytest
from agent_support import FakeGC

from gctuner.core.runtime import (
    FREE_THREADED,
    FREE_THREADED_RSS_GATED,
    GENERATIONAL,
    INCREMENTAL,
    GCRuntime,
    detect_flavour,
    is_free_threaded,
)
from gctuner.core.settings import Settings

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("version", "free_threaded", "flavour"),
    [
        ((3, 9, 18), False, GENERATIONAL),
        ((3, 12, 1), False, GENERATIONAL),
        ((3, 13, 0), False, GENERATIONAL),
        ((3, 13, 0), True, FREE_THREADED),
        ((3, 14, 0), False, INCREMENTAL),
        ((3, 14, 4), False, INCREMENTAL),
        ((3, 14, 5), False, GENERATIONAL),
        ((3, 14, 2), True, FREE_THREADED_RSS_GATED),
        ((3, 15, 0), False, GENERATIONAL),
        ((3, 15, 2), True, FREE_THREADED_RSS_GATED),
    ],
)
def test_flavour(version: tuple[int, int, int], free_threaded: bool, flavour: object) -> None:
    assert detect_flavour((*version, "final", 0), free_threaded) is flavour


def test_flavour_says_which_thresholds_count() -> None:
    # free-threaded: threshold1 counts only as the switch of heap scaling (0 = off)
    assert FREE_THREADED.to_json()["honoured"] == [True, True, False]
    assert FREE_THREADED.heap_scaled and not FREE_THREADED.rss_gated
    assert FREE_THREADED_RSS_GATED.rss_gated and "RSS has not grown 10 %" in FREE_THREADED_RSS_GATED.note
    assert INCREMENTAL.to_json()["honoured"] == [True, True, False]
    assert GENERATIONAL.to_json()["name"] == "generational"


def test_this_interpreter_is_detected() -> None:
    runtime = GCRuntime(FakeGC())
    expected = detect_flavour(sys.version_info, is_free_threaded())
    assert runtime.flavour is expected


def test_defaults_are_captured_at_construction() -> None:
    fake = FakeGC((2000, 10, 10))
    runtime = GCRuntime(fake)
    fake.set_threshold(1, 2, 3)
    assert runtime.defaults == (2000, 10, 10)
    runtime.restore()
    assert fake.thresholds == (2000, 10, 10)


def test_apply_keeps_the_thresholds_left_out() -> None:
    fake = FakeGC((700, 10, 10))
    runtime = GCRuntime(fake)
    runtime.apply(Settings((50000, 20)))
    assert runtime.thresholds() == (50000, 20, 10)


def test_freeze_then_restore_unfreezes() -> None:
    fake = FakeGC()
    runtime = GCRuntime(fake)
    runtime.apply(Settings((5000,), freeze=True))
    assert runtime.frozen() == 100
    runtime.restore()
    assert runtime.frozen() == 0


def test_restore_leaves_the_apps_own_freeze_alone() -> None:
    fake = FakeGC()
    fake.freeze()  # the app froze its heap before forking workers
    runtime = GCRuntime(fake)
    runtime.apply(Settings((5000,)))
    runtime.restore()
    assert fake.frozen == 100


def test_restore_after_our_freeze_keeps_what_the_app_froze_first() -> None:
    """GCTUNER_FREEZE_AFTER_PRELOAD: gunicorn's master froze the app before the
    fork; a POST with freeze: true then a DELETE must not unfreeze it (gc.unfreeze
    cannot tell the two apart, so ours stays frozen too)."""
    fake = FakeGC()
    fake.freeze()  # the master, before the fork
    runtime = GCRuntime(fake)
    runtime.apply(Settings((5000,), freeze=True))
    runtime.apply(Settings((6000,), freeze=True))
    runtime.restore()
    assert fake.frozen == 300 and runtime.thresholds() == runtime.defaults
    runtime.apply(Settings((5000,), freeze=False))  # false never unfreezes
    assert fake.frozen == 300


def test_snapshot() -> None:
    runtime = GCRuntime(FakeGC((700, 10, 10)), version_info=(3, 13, 1, "final", 0), free_threaded=False)
    runtime.apply(Settings((5000, 20, 100)))
    snapshot = runtime.snapshot()
    assert snapshot["thresholds"] == [5000, 20, 100]
    assert snapshot["defaults"] == [700, 10, 10]
    assert snapshot["counts"] == [5, 1, 0]
    assert snapshot["frozen"] == 0
    assert snapshot["python"] == "3.13.1"
    assert snapshot["flavour"]["name"] == "generational"
    assert len(snapshot["stats"]) == 3
    assert isinstance(snapshot["pid"], int)


def test_snapshot_of_the_real_collector_is_json() -> None:
    snapshot = GCRuntime(gc).snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert snapshot["thresholds"] == list(gc.get_threshold())


def test_startup_defaults_of_a_fresh_interpreter() -> None:
    """3.13 starts at 2000, older versions at 700: captured, not assumed."""
    code = ("import gc, json; from gctuner.core.runtime import GCRuntime; "
            "print(json.dumps([GCRuntime().defaults, gc.get_threshold()]))")
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    defaults, thresholds = json.loads(completed.stdout)
    assert defaults == thresholds
    assert defaults[0] == (2000 if sys.version_info >= (3, 13) else 700)


def test_thresholds_left_out_are_the_defaults_whatever_was_applied_before() -> None:
    """Two followers, one of which skipped a generation, run the same thresholds."""
    skipped, saw_both = GCRuntime(FakeGC((700, 10, 10))), GCRuntime(FakeGC((700, 10, 10)))
    saw_both.apply(Settings((5000, 20, 100)))
    for runtime in (skipped, saw_both):
        runtime.apply(Settings((6000,)))
    assert skipped.thresholds() == saw_both.thresholds() == (6000, 10, 10)
