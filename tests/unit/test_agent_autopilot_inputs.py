"""The autopilot's inputs: the goal, the cgroup's memory, the telemetry window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.autopilot.memory import CgroupMemory, process_rss
from gctuner.autopilot.telemetry import observe
from gctuner.core.settings import InvalidSettings

# --- the goal ---------------------------------------------------------------------


def test_a_goal_round_trips_and_defaults_its_budget() -> None:
    goal = parse_goal({"gcTimePercent": 2, "maxPauseMillis": 50})
    assert goal == Goal(2.0, 50, 80.0)
    assert parse_goal(goal.to_json()) == goal
    assert goal.budget(1000) == 800 and goal.budget(None) is None
    assert parse_goal({"gcTimePercent": 1.5, "memoryBytes": 2**30}).budget(None) == 2**30


@pytest.mark.parametrize("payload,message", [
    ([], "goal must be a JSON object"),
    ({}, "goal.gcTimePercent is required"),
    ({"gcTimePercent": 0}, "goal.gcTimePercent must be a number between 0.1 and 50"),
    ({"gcTimePercent": "2"}, "goal.gcTimePercent must be a number"),
    ({"gcTimePercent": True}, "goal.gcTimePercent must be a number"),
    ({"gcTimePercent": 2, "maxPauseMillis": 0.5}, "goal.maxPauseMillis must be an integer between 1 and 60000"),
    ({"gcTimePercent": 2, "memoryPercent": 5}, "goal.memoryPercent must be a number between 10 and 100"),
    ({"gcTimePercent": 2, "memoryPercent": 80, "memoryBytes": 2**30}, "not both"),
    ({"gcTimePercent": 2, "memoryBytes": 1024}, "goal.memoryBytes must be an integer between 16777216"),
    ({"gcTimePercent": 2, "minThreshold0": 0}, "goal.minThreshold0 must be an integer between 100 and 1000000"),
    ({"gcTimePercent": 2, "minThreshold0": 5000, "maxThreshold0": 1000}, "must not be above"),
    ({"gcTimePercent": 2, "gcPercent": 1}, "unknown goal field 'gcPercent'"),
])  # fmt: skip
def test_a_bad_goal_is_refused_in_words(payload: Any, message: str) -> None:
    with pytest.raises(InvalidSettings, match=message.replace("(", r"\(")):
        parse_goal(payload)


def test_threshold0_bounds_default_to_the_startup_value_and_never_reach_zero() -> None:
    assert Goal(2.0).threshold0_bounds(700) == (700, 200_000)
    assert Goal(2.0).threshold0_bounds(2000) == (2000, 200_000)
    assert Goal(2.0, min_threshold0=100, max_threshold0=5000).threshold0_bounds(700) == (100, 5000)
    assert Goal(2.0).threshold0_bounds(0)[0] == 100  # an app that disabled its collector


# --- memory from the cgroup ---------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cgroup_v2_working_set_and_the_lowest_limit_up_the_tree(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    tree(proc, {"cgroup": "0::/pod/app\n"})
    tree(root, {"memory.max": "max\n", "pod/memory.max": "536870912\n", "pod/app/memory.max": "max\n",
                "pod/app/memory.current": "300000000\n", "pod/app/memory.stat": "anon 1\ninactive_file 100000000\n"})
    reading = CgroupMemory(proc, root).read()
    assert (reading.used, reading.limit) == (200_000_000, 536_870_912)
    assert reading.source.startswith("cgroup v2")


def test_cgroup_v2_in_a_namespace_reads_the_mount_root(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    tree(proc, {"cgroup": "0::/kubepods/burstable/pod1/abc\n"})  # the host's path, not mounted here
    tree(root, {"memory.max": "1073741824\n", "memory.current": "5000\n"})
    assert CgroupMemory(proc, root).read().limit == 1_073_741_824


def test_cgroup_v1_treats_the_huge_number_as_no_limit(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    tree(proc, {"cgroup": "4:memory:/app\n0::/\n"})
    tree(root, {"memory/memory.limit_in_bytes": "9223372036854771712\n",
                "memory/app/memory.limit_in_bytes": "9223372036854771712\n",
                "memory/app/memory.usage_in_bytes": "4096000\n",
                "memory/app/memory.stat": "total_inactive_file 96000\n"})
    reading = CgroupMemory(proc, root).read()
    assert (reading.used, reading.limit) == (4_000_000, None)
    tree(root, {"memory/app/memory.limit_in_bytes": "268435456\n"})  # resized in place: read again
    assert CgroupMemory(proc, root).read().limit == 268_435_456


def test_no_cgroup_reads_as_unknown_not_as_an_error(tmp_path: Path) -> None:
    reading = CgroupMemory(tmp_path / "nothing", tmp_path / "nothing").read()
    assert (reading.used, reading.limit) == (None, None)
    assert process_rss(tmp_path / "statm") is None
    assert (process_rss() or 0) > 0


# --- the telemetry window -------------------------------------------------------------


def record(pid: int, at: float, pause_ns: list[int], collections: list[int], hist2: int = 0,
           collected2: int = 0, rss: int = 100) -> dict[str, Any]:
    buckets = [1_000_000, 10_000_000, 100_000_000]
    generations = []
    for generation in range(3):
        histogram = [collections[generation], 0, 0, 0]
        if generation == 2 and hist2:
            histogram = [0, 0, hist2, 0]
        generations.append({"generation": generation, "collections": collections[generation],
                            "collected": collected2 if generation == 2 else 0,
                            "pause_ns_total": pause_ns[generation], "pause_ns_max": 0, "histogram": histogram})
    return {"pid": pid, "at": at, "uptime": at, "rss": rss,
            "pauses": {"enabled": True, "buckets_ns": buckets, "generations": generations}}


def test_a_window_measures_the_deltas_of_each_process() -> None:
    start = [record(1, 100.0, [0, 0, 0], [0, 0, 0]), record(2, 100.0, [0, 0, 0], [0, 0, 0])]
    now = [record(1, 110.0, [100_000_000, 0, 50_000_000], [10, 0, 1], hist2=1, collected2=500),
           record(2, 110.0, [50_000_000, 0, 0], [5, 0, 0])]
    observation = observe(start, now)
    assert observation is not None
    assert observation.processes == 2 and observation.seconds == 10.0
    assert observation.gc_percent == pytest.approx(1.5)  # 150 ms of 10 s, the worse process
    assert observation.gc_percent_mean == pytest.approx(1.0)
    assert observation.full_collections == 1 and observation.full_pause_ms == 100.0  # the bucket's bound
    assert observation.freed_per_full_ms == pytest.approx(10.0)  # 500 objects in 50 ms
    assert observation.rss_bytes == 200


def test_nothing_to_measure_is_none() -> None:
    assert observe([], [record(1, 100.0, [0, 0, 0], [0, 0, 0])]) is None  # a new process: no baseline
    same = [record(1, 100.0, [0, 0, 0], [0, 0, 0])]
    assert observe(same, same) is None  # not rewritten since
    off = [{"pid": 1, "at": 100.0, "pauses": None}]
    assert observe(off, [{"pid": 1, "at": 110.0, "pauses": None}]) is None  # recording off
    reused = observe([record(1, 100.0, [0, 0, 9], [0, 0, 9])], [record(1, 110.0, [0, 0, 0], [0, 0, 0])])
    assert reused is None  # a new process under a reused pid
