"""The shared state: files, liveness, the follower, and real processes converging."""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

import pytest
from agent_support import FakeGC, Follower

from gctuner.core.runtime import GCRuntime
from gctuner.core.settings import Settings
from gctuner.pod.shared import SharedState, wait_for_rollout
from gctuner.pod.statedir import StateDir, StateDirError
from polling import wait_for

pytestmark = pytest.mark.timeout(60)

TUNED = Settings((50000, 20, 100))


@pytest.fixture
def state_dir(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


@pytest.fixture
def member(state_dir: StateDir):
    shared = SharedState(state_dir, GCRuntime(FakeGC((700, 10, 10))), interval=0.01)
    yield shared
    shared.stop()


# --- the files -------------------------------------------------------------


def test_publish_counts_generations(state_dir: StateDir) -> None:
    assert state_dir.read_desired() is None
    assert state_dir.publish(TUNED, "t1").generation == 1
    assert state_dir.publish(None, "t2").generation == 2
    desired = state_dir.read_desired()
    assert desired is not None
    assert (desired.generation, desired.settings, desired.time) == (2, None, "t2")
    on_disk = json.loads((state_dir.path / "desired.json").read_text())
    assert on_disk == {"generation": 2, "settings": None, "time": "t2", "id": desired.id}
    assert (state_dir.path / "generation").read_text() == "2"


def test_concurrent_publishers_never_share_a_generation(state_dir: StateDir) -> None:
    generations: list[int] = []

    def publish() -> None:
        for _ in range(10):
            generations.append(state_dir.publish(TUNED, "t").generation)

    threads = [threading.Thread(target=publish) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(generations) == list(range(1, 41))


def test_a_tampered_desired_state_is_validated(state_dir: StateDir) -> None:
    state_dir.ensure()
    (state_dir.path / "desired.json").write_text('{"generation": 3, "settings": {"thresholds": [-5]}}')
    with pytest.raises(ValueError, match="thresholds"):
        state_dir.read_desired()
    assert state_dir.publish(TUNED, "t").generation == 4  # after the generation it held: never one again


def test_the_private_default_directory_must_be_ours(tmp_path: Path) -> None:
    private = StateDir(tmp_path / "mine", private=True)
    private.ensure()
    assert (os.stat(private.path).st_mode & 0o777) == 0o700
    os.chmod(private.path, 0o777)
    with pytest.raises(StateDirError, match="writable by every user"):
        private.ensure()
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="is not a directory"):
        StateDir(tmp_path / "file", private=True).ensure()


def test_liveness_is_the_lock(state_dir: StateDir) -> None:
    slot = state_dir.register()
    state_dir.write_record(slot, {"pid": os.getpid(), "generation": 0})
    assert [record["pid"] for record in state_dir.records()] == [os.getpid()]
    os.close(slot.fd)  # what dying does to the lock
    assert state_dir.records() == []
    assert list((state_dir.path / "procs").iterdir()) == []


# --- the follower ----------------------------------------------------------


def test_start_applies_the_current_state(state_dir: StateDir, member: SharedState) -> None:
    state_dir.publish(TUNED, "t")
    member.start()
    assert member.runtime.thresholds() == (50000, 20, 100)
    status = member.status()
    assert status["desired"] == TUNED.to_json()
    assert status["generation"] == 1
    assert status["in_sync"] is True
    assert status["processes"] == [
        {"pid": os.getpid(), "generation": 1, "thresholds": [50000, 20, 100], "frozen": 0, "pauses": None}
    ]


def test_the_thread_follows_changes(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    state_dir.publish(Settings((1234,), freeze=True), "t")
    wait_for(lambda: member.status()["processes"][0]["generation"] == 1, what="generation 1")
    assert member.runtime.thresholds() == (1234, 10, 10)
    assert member.status()["processes"][0]["frozen"] == 100
    state_dir.publish(None, "t")
    wait_for(lambda: member.runtime.thresholds() == (700, 10, 10), what="restore")
    wait_for(lambda: member.status()["in_sync"], what="in sync")


def test_drift_is_reported(member: SharedState) -> None:
    member.start()
    member.runtime._gc.set_threshold(999)  # the app changes its own thresholds
    wait_for(lambda: member.status()["processes"][0]["thresholds"] == [999, 10, 10], what="drift")


def test_a_bad_desired_state_is_ignored_with_a_warning(
    state_dir: StateDir, member: SharedState, caplog: pytest.LogCaptureFixture
) -> None:
    member.start()
    (state_dir.path / "desired.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="gctuner"):
        member.sync()
    assert "ignoring" in caplog.text
    assert member.runtime.thresholds() == (700, 10, 10)
    assert member.status()["desired"] is None


def test_stop_leaves_the_list(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    assert len(state_dir.records()) == 1
    member.stop()
    assert state_dir.records() == []


def test_rejoins_a_wiped_directory(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    for path in (state_dir.path / "procs").iterdir():
        path.unlink()
    member.sync()
    assert len(state_dir.records()) == 1


def test_publish_waits_with_the_injected_clock(state_dir: StateDir) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    member = SharedState(state_dir, GCRuntime(FakeGC()), clock=lambda: now[0], sleep=sleep)
    stale = state_dir.register()  # a live process that never applies anything
    state_dir.write_record(stale, {"pid": 1, "generation": 0})
    rollout = member.publish(TUNED, timeout=2.0)
    assert (rollout.generation, rollout.applied, rollout.total) == (1, 1, 2)
    assert 1.9 <= sum(sleeps) <= 2.1
    state_dir.release(stale)
    assert wait_for_rollout(state_dir, 1, timeout=0).to_json() == {"applied": 1, "total": 1}
    member.stop()


# --- real processes ----------------------------------------------------------


def test_processes_converge(state_dir: StateDir, member: SharedState) -> None:
    followers = [Follower(state_dir.path) for _ in range(3)]
    try:
        rollout = member.publish(TUNED, timeout=10)
        assert rollout.to_json() == {"applied": 4, "total": 4}
        records = {record["pid"]: record for record in state_dir.records()}
        for follower in followers:
            assert records[follower.pids[0]]["thresholds"] == [50000, 20, 100]

        followers[0].kill()
        rollout = member.publish(None, timeout=10)
        assert rollout.to_json() == {"applied": 3, "total": 3}
        records = {record["pid"]: record for record in state_dir.records()}
        assert followers[0].pids[0] not in records
        for follower in followers[1:]:
            assert records[follower.pids[0]]["thresholds"] == follower.reports[0]["defaults"]
    finally:
        for follower in followers:
            follower.stop()


def test_a_process_started_later_applies_the_current_state(state_dir: StateDir) -> None:
    state_dir.publish(TUNED, "t")
    follower = Follower(state_dir.path)
    try:
        (record,) = state_dir.records()
        assert (record["pid"], record["generation"]) == (follower.pids[0], 1)
        assert record["thresholds"] == [50000, 20, 100]
    finally:
        follower.stop()


def test_a_forked_child_rejoins(state_dir: StateDir, member: SharedState) -> None:
    follower = Follower(state_dir.path, fork=True)
    try:
        assert len(set(follower.pids)) == 2
        rollout = member.publish(TUNED, timeout=10)
        assert rollout.to_json() == {"applied": 3, "total": 3}
        pids = {record["pid"] for record in state_dir.records()}
        assert pids == {os.getpid(), *follower.pids}
    finally:
        follower.stop()
    wait_for(lambda: len(state_dir.records()) == 1, what="the followers to leave")
