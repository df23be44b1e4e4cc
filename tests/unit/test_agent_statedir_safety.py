"""The state directory trusted by nobody else, and answers that never claim
what did not happen (issue 14): generations that never go back, bounded and
non-blocking reads, directory rules, one default directory per server, 202
when not every process applied, the uWSGI master that cannot speak for its
workers, a token file rewritten in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from agent_support import FakeGC

from gctuner.api.endpoint import Request, TuneEndpoint
from gctuner.core.auth import TokenCheck
from gctuner.core.config import Config
from gctuner.core.runtime import GCRuntime
from gctuner.core.settings import Settings
from gctuner.pod import uwsgi
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import (
    MAX_DESIRED_BYTES,
    StateDir,
    StateDirError,
    StateFileError,
    default_state_dir,
)
from polling import wait_for

pytestmark = pytest.mark.timeout(60)

TUNED = Settings((50000, 20, 100))
OTHER = Settings((1234, 5, 6))
TOKEN = "t0ken"
POST = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture
def state_dir(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


@pytest.fixture
def member(state_dir: StateDir):
    shared = SharedState(state_dir, GCRuntime(FakeGC((700, 10, 10))), interval=0.01)
    yield shared
    shared.stop()


def desired_file(state_dir: StateDir) -> Path:
    return state_dir.path / "desired.json"


# --- generations never go back -------------------------------------------------


@pytest.mark.parametrize("damage", ["removed", "truncated", "garbage", "directory removed"])
def test_a_lost_desired_state_never_makes_a_post_a_no_op(
    state_dir: StateDir, member: SharedState, damage: str
) -> None:
    member.start()
    member.publish(TUNED, timeout=5)
    assert member.runtime.thresholds() == (50000, 20, 100)
    if damage == "removed":
        desired_file(state_dir).unlink()
    elif damage == "truncated":
        desired_file(state_dir).write_bytes(desired_file(state_dir).read_bytes()[:7])
    elif damage == "garbage":
        desired_file(state_dir).write_bytes(b"\x00garbage")
    else:
        for path in sorted(state_dir.path.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        state_dir.path.rmdir()
    rollout = member.publish(OTHER, timeout=5)
    assert rollout.generation == 2  # never 1 again
    assert member.runtime.thresholds() == (1234, 5, 6)  # applied, not skipped as already held
    assert rollout.complete


def test_a_replaced_file_with_the_same_generation_is_applied(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    member.publish(TUNED, timeout=5)
    by_hand = {"generation": 1, "settings": OTHER.to_json(), "time": "t", "id": "another"}
    desired_file(state_dir).write_text(json.dumps(by_hand))
    member.sync()
    assert member.runtime.thresholds() == (1234, 5, 6)


def test_a_new_publisher_continues_after_the_records(tmp_path: Path, member: SharedState) -> None:
    """Another process (the sidecar, restarted) publishing after desired.json
    and generation were lost: the live processes' records hold the floor."""
    member.start()
    member.publish(TUNED, timeout=5)
    member.publish(TUNED, timeout=5)
    for name in ("desired.json", "generation"):
        (member.state_dir.path / name).unlink()
    fresh = StateDir(member.state_dir.path)
    assert fresh.publish(None, "t").generation == 3


# --- bounded, non-blocking reads -------------------------------------------------


def odd_desired(state_dir: StateDir, kind: str) -> None:
    path = desired_file(state_dir)
    path.unlink(missing_ok=True)
    if kind == "deeply nested":
        path.write_text("[" * 200_000 + "]" * 200_000)
    elif kind == "huge":
        with open(path, "wb") as file:
            file.truncate(MAX_DESIRED_BYTES * 1000)  # sparse: 64 MB that cost no disk
    elif kind == "fifo":
        os.mkfifo(state_dir.path / "fifo")
        os.replace(state_dir.path / "fifo", path)
    elif kind == "/dev/zero":
        os.symlink("/dev/zero", path)
    elif kind == "symlink":
        other = state_dir.path.parent / "elsewhere.json"
        other.write_text(json.dumps({"generation": 99, "settings": {"thresholds": [0]}}))
        os.symlink(other, path)


ODD = ["deeply nested", "huge", "fifo", "/dev/zero", "symlink"]


@pytest.mark.parametrize("kind", ODD)
def test_an_odd_desired_file_is_no_desired_state(state_dir: StateDir, member: SharedState, kind: str) -> None:
    member.start()
    member.publish(TUNED, timeout=5)
    odd_desired(state_dir, kind)
    started = time.monotonic()
    with pytest.raises(StateFileError):
        state_dir.read_desired()
    member.sync()  # no hang, no RecursionError/MemoryError: ignored with a warning
    assert member.describe()["desired"] is None
    assert time.monotonic() - started < 5
    assert member._thread is not None and member._thread.is_alive()
    assert member.runtime.thresholds() == (50000, 20, 100)  # kept
    assert member.publish(OTHER, timeout=5).generation == 2  # the generation survived
    assert member.runtime.thresholds() == (1234, 5, 6)


def test_the_follower_survives_anything(state_dir: StateDir, member: SharedState, monkeypatch) -> None:
    member.start()
    real = state_dir.read_desired
    calls = []

    def failing() -> None:
        calls.append(1)
        raise MemoryError if len(calls) % 2 else RecursionError

    monkeypatch.setattr(state_dir, "read_desired", failing)
    StateDir(state_dir.path).publish(TUNED, "t")  # another process
    wait_for(lambda: len(calls) >= 4, what="the follower to keep trying")
    assert member._thread is not None and member._thread.is_alive()
    monkeypatch.setattr(state_dir, "read_desired", real)
    wait_for(lambda: member.runtime.thresholds() == (50000, 20, 100), what="applied once readable")


def test_planted_records_are_skipped(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    procs = state_dir.path / "procs"
    os.symlink("/dev/zero", procs / "1-00000000.json")
    os.mkfifo(procs / "2-00000000.json")
    (procs / "3-00000000.json").write_text("[" * 100_000)
    (procs / "not-a-key.json").write_text('{"pid": 5}')
    assert [record["pid"] for record in state_dir.records()] == [os.getpid()]


# --- the directory -------------------------------------------------------------


def test_an_explicit_directory_is_checked_too(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(StateDirError, match="writable by every user"):
        StateDir(shared).ensure()
    os.chmod(shared, 0o770)
    with pytest.raises(StateDirError, match="group-shared"):
        StateDir(shared).ensure()
    os.chmod(shared, 0o2770)  # group-shared, with a group of ours
    StateDir(shared).ensure()
    assert os.stat(shared / "procs").st_mode & 0o7777 == 0o2770
    os.symlink(shared, tmp_path / "link")
    with pytest.raises(StateDirError, match="symbolic link"):
        StateDir(tmp_path / "link").ensure()


def test_a_group_shared_directory_keeps_its_files_open_to_the_group_whatever_the_umask(tmp_path: Path) -> None:
    """The sidecar and the app run as two users of one group: the one that did
    not create ``lock`` (the sidecar's POST, the app's autopilot) opens it
    read-write, so a container's umask 022 must not leave it 0640."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o2770)
    state_dir = StateDir(shared)
    previous = os.umask(0o022)
    try:
        state_dir.publish(TUNED, "t")
        pilot = state_dir.lock_pilot()
        assert pilot is not None
        os.close(pilot)
        state_dir.release(state_dir.register())
        slot = state_dir.register()
        os.chmod(shared / "lock", 0o640)  # left by an older agent
        state_dir.publish(OTHER, "t")
    finally:
        os.umask(previous)
    files = [*shared.glob("*"), *shared.glob("procs/*")]
    assert {p.name for p in files} >= {"lock", "pilot.lock", "desired.json", "generation", f"{slot.key}.lock"}
    assert {p.name: oct(p.stat().st_mode & 0o7777) for p in files if p.is_file()} == {
        p.name: "0o660" for p in files if p.is_file()}
    state_dir.release(slot)


@pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"), reason="chown to another user needs root (CI is root: never skipped there)")
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    os.chown(other, 65534, 65534)
    with pytest.raises(StateDirError, match="owned by uid 65534"):
        StateDir(other).ensure()


def test_a_created_directory_is_private_and_files_are_never_followed(state_dir: StateDir) -> None:
    state_dir.publish(TUNED, "t")
    assert os.stat(state_dir.path).st_mode & 0o777 == 0o700
    assert os.stat(desired_file(state_dir)).st_mode & 0o777 == 0o600
    victim = state_dir.path.parent / "victim"
    victim.write_text("keep")
    desired_file(state_dir).unlink()
    os.symlink(victim, desired_file(state_dir))
    state_dir.publish(TUNED, "t")  # replaces the link, never writes through it
    assert victim.read_text() == "keep"
    (state_dir.path / "lock").unlink()
    os.symlink(victim, state_dir.path / "lock")
    with pytest.raises(StateDirError, match="symbolic link"):
        state_dir.publish(TUNED, "t")
    assert victim.read_text() == "keep"
    assert not [p for p in state_dir.path.iterdir() if p.name.endswith(".tmp")]


# --- one default directory per server -------------------------------------------

# One write of the line (a print may be two, and two processes share the pipe).
PRINT_DIR = "import os; from gctuner.pod.statedir import default_state_dir; os.write(1, (str(default_state_dir()) + chr(10)).encode())"


def test_two_servers_from_one_shell_get_two_directories() -> None:
    script = f'"{sys.executable}" -c "{PRINT_DIR}" & "{sys.executable}" -c "{PRINT_DIR}"; wait'
    lines = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, check=True)
    first, second = lines.stdout.split()
    assert first != second
    assert str(default_state_dir()) not in (first, second)


def test_a_forked_worker_shares_its_servers_directory_which_goes_at_exit(tmp_path: Path) -> None:
    script = (
        "import os, sys, gctuner\n"
        "member = gctuner.follow()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    from gctuner.pod.statedir import default_state_dir\n"
        "    print(default_state_dir(), flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(member.state_dir.path, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          check=True, start_new_session=True)  # fmt: skip
    child, parent = done.stdout.split()
    assert child == parent
    assert not Path(parent).exists()  # removed when the server exited cleanly


def test_the_workers_of_a_containers_pid_1_share_its_directory() -> None:
    """In a container the server is pid 1 (gunicorn as the entry point): its
    forked workers, whose parent is pid 1, still share its directory. Run in
    a pid namespace of its own, as a container is."""
    script = (
        "import os\n"
        "from gctuner.pod.statedir import default_state_dir\n"
        "assert os.getpid() == 1\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(default_state_dir(), flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print(default_state_dir(), flush=True)\n"
    )
    done = subprocess.run(["unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount-proc",
                           sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    worker, server = done.stdout.split()
    assert worker == server and "-1-" in server, done.stdout


def test_a_restarted_server_starts_with_its_defaults() -> None:
    """A server that died (no clean exit) leaves its directory; the next one
    (perhaps with the same pid: a container's pid 1) never finds it, as the
    directory is named by the server's pid and start time."""
    script = (
        "import gc, os, sys, gctuner\n"
        "from gctuner.core.settings import Settings\n"
        "m = gctuner.follow()\n"
        "if sys.argv[1] == 'tune':\n"
        "    m.publish(Settings((50000, 20, 100)), timeout=5)\n"
        "print(m.state_dir.path, gc.get_threshold()[0], flush=True)\n"
        "os._exit(0)  # dies: nothing cleans up\n"
    )
    def run(what: str) -> list[str]:
        return subprocess.run([sys.executable, "-c", script, what], capture_output=True, text=True,
                              timeout=60, check=True, start_new_session=True).stdout.split()  # fmt: skip

    first = run("tune")
    left_behind = Path(first[0]).exists()
    second = run("look")
    try:
        assert first[1] == "50000" and left_behind
        assert second[0] != first[0] and second[1] != "50000"
        assert not Path(first[0]).exists()  # swept: its server is gone
    finally:
        for path in (first[0], second[0]):
            StateDir(path).remove()


# --- honest answers ------------------------------------------------------------


def endpoint(shared) -> TuneEndpoint:
    return TuneEndpoint(Config(token=TOKEN, apply_timeout=0.3), shared=shared)


def post(tune: TuneEndpoint, payload: object):
    answer = tune.handle(Request("POST", POST, json.dumps(payload).encode()))
    return answer.status, json.loads(answer.body)


def test_a_lagging_process_is_a_202_that_names_it(state_dir: StateDir, member: SharedState) -> None:
    member.start()
    stale = state_dir.register()  # stopped: never applies
    state_dir.write_record(stale, {"pid": 999999, "generation": 0})
    status, answer = post(endpoint(member), {"thresholds": [50000, 20, 100]})
    assert status == 202
    assert "only 1 of 2 processes applied it" in answer["message"]
    (lag,) = answer["processes"]["lagging"]
    assert lag["pid"] == 999999 and "has not applied generation 1" in lag["reason"]
    state_dir.release(stale)
    assert post(endpoint(member), {"thresholds": [50000, 20, 100]})[0] == 200


def test_no_process_is_a_202_and_not_in_sync(state_dir: StateDir) -> None:
    from gctuner.pod.publisher import Publisher

    publisher = Publisher(state_dir)
    status, answer = post(endpoint(publisher), {"thresholds": [50000, 20, 100]})
    assert status == 202 and "no process follows" in answer["message"]
    assert answer["processes"] == {"applied": 0, "total": 0, "lagging": []}
    assert publisher.status()["in_sync"] is False


def test_a_uwsgi_master_without_osafterfork_does_not_speak_for_its_workers(
    state_dir: StateDir, member: SharedState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Followed from sitecustomize before uWSGI made its module: the master is
    a member, and without --py-call-osafterfork its workers never follow."""
    import types

    server = types.SimpleNamespace(worker_id=lambda: 0, masterpid=lambda: os.getpid(), opt={})
    monkeypatch.setitem(sys.modules, "uwsgi", server)
    member.start()
    status, answer = post(endpoint(member), {"thresholds": [50000, 20, 100]})
    assert status == 202
    (lag,) = answer["processes"]["lagging"]
    assert "--py-call-osafterfork" in lag["reason"]
    assert member.status()["in_sync"] is False
    server.opt = {"py-call-osafterfork": True}
    assert post(endpoint(member), {"thresholds": [50000, 20, 100]})[0] == 200
    assert uwsgi.calls_python_after_fork(types.SimpleNamespace(opt={"py-call-osafterfork": b"false"})) is False


# --- the token file ----------------------------------------------------------------


def test_a_token_file_rewritten_in_place_with_the_same_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("old-token")
    check = TokenCheck(Config(token_file=str(path)))
    assert check.check("Bearer old-token") is None
    info = os.stat(path)
    with open(path, "r+") as file:  # same inode, same size
        file.write("new-token")
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # and the same mtime
    assert check.check("Bearer old-token") is not None
    assert check.check("Bearer new-token") is None


def test_concurrent_publishers_on_a_damaged_file_never_share_a_generation(state_dir: StateDir) -> None:
    state_dir.publish(TUNED, "t")
    desired_file(state_dir).write_text("{")
    generations: list[int] = []

    def publish() -> None:
        for _ in range(5):
            desired = state_dir.publish(TUNED, "t")
            assert desired is not None
            generations.append(desired.generation)

    threads = [threading.Thread(target=publish) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(generations) == list(range(2, 17))


def test_directories_of_servers_that_are_gone_are_swept(tmp_path: Path) -> None:
    """A server whose master runs no gctuner code leaves its directory: the next new one removes it."""
    uid = os.geteuid()
    gone = tmp_path / f"gctuner-{uid}-{2**22 + 7}-12345"  # no such pid
    reused = tmp_path / f"gctuner-{uid}-{os.getpid()}-1"  # our pid, another start time
    alive = StateDir(tmp_path / "x").path.parent / f"gctuner-{uid}-{os.getpid()}-{_own_start()}"
    for path in (gone, reused, alive):
        path.mkdir(mode=0o700)
    os.symlink("/etc", tmp_path / f"gctuner-{uid}-{2**22 + 8}-1")  # never followed
    StateDir(tmp_path / "gctuner-new", private=True).ensure()
    assert not gone.exists() and not reused.exists() and alive.exists()
    assert os.path.islink(tmp_path / f"gctuner-{uid}-{2**22 + 8}-1")


def _own_start() -> str:
    from gctuner.pod.statedir import _start_time

    start = _start_time(os.getpid())
    assert start is not None
    return start
