"""A server's master steps aside and its workers follow: fork, uWSGI's hook."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest
from agent_support import FakeGC, Follower

from gctuner.core.runtime import GCRuntime
from gctuner.pod import uwsgi
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from polling import wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def member(tmp_path: Path):
    shared = SharedState(StateDir(tmp_path / "state"), GCRuntime(FakeGC()), interval=0.01)
    yield shared
    shared.stop()


def test_a_master_that_stepped_aside_is_not_counted_but_its_child_is(tmp_path: Path) -> None:
    follower = Follower(tmp_path / "state", fork=True, step_aside=True)
    try:
        parent, child = follower.pids
        state_dir = StateDir(tmp_path / "state")
        wait_for(lambda: [r["pid"] for r in state_dir.records()] == [child], what="only the child")
    finally:
        follower.stop()


def test_the_post_fork_hook_is_idempotent(member: SharedState) -> None:
    member.start()
    thread = member._thread
    member.after_fork_in_child()  # uWSGI may run its hook and Python's
    member.after_fork_in_child()
    assert member._thread is thread and len(member.state_dir.records()) == 1


def test_worker_one_of_uwsgi_without_master_rejoins_in_the_same_process(member: SharedState) -> None:
    member.stop(children_follow=True)  # at import, in what becomes worker 1
    assert member.state_dir.records() == []
    member.after_fork_in_child()  # uWSGI's post-fork hook, no fork happened
    assert [record["pid"] for record in member.state_dir.records()] == [os.getpid()]


def test_a_stopped_member_stays_stopped_after_fork(member: SharedState) -> None:
    member.start()
    member.stop()
    member.after_fork_in_child()
    assert member.state_dir.records() == []


def test_uwsgi_hooks_outside_and_inside_uwsgi(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not uwsgi.in_master()
    uwsgi.after_fork(lambda: None)  # nothing to hook into: no error

    calls: list[str] = []
    server = types.SimpleNamespace(worker_id=lambda: 0, masterpid=lambda: 0,
                                   post_fork_hook=lambda: calls.append("app's own"))  # fmt: skip
    monkeypatch.setitem(sys.modules, "uwsgi", server)
    assert uwsgi.in_master()
    uwsgi.after_fork(lambda: calls.append("ours"))
    server.post_fork_hook()
    assert calls == ["ours", "app's own"]
    server.worker_id = lambda: 1
    assert not uwsgi.in_master()
