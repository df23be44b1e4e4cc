"""The state directory attacked by a second local user (issue 14).

The agent runs as this user (root in CI) in a real gunicorn with 2 workers;
the attacker is a real other user, ``nobody``, through ``setpriv``. Each
attack must end with the directory refused with a clear error or the planted
file ignored, and never with a changed ``gc.get_threshold()`` in a worker, a
crash, a hang or a write outside the directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from agent_servers import AUTH, BIN, TUNED, agent_env, free_port, reach_every_worker, serving

from gctuner_localcluster.process import ManagedProcess
from polling import wait_for

pytestmark = [
    pytest.mark.timeout(240),
    # A second user needs root; CI is root, and there a missing setpriv fails, never skips.
    pytest.mark.skipif(os.geteuid() != 0 and not os.environ.get("CI"),
                       reason="needs root to act as a second user (setpriv)"),  # fmt: skip
]

WORKERS = 2
NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", "--"]
PLANTED = {"generation": 999999, "settings": {"thresholds": [0, 0, 0]}, "time": "x", "id": "evil"}


def as_nobody(script: str) -> None:
    """Run ``script`` (sh) as the other user; what it cannot do fails quietly."""
    subprocess.run([*AS_NOBODY, "sh", "-c", script], timeout=60, check=False)


@pytest.fixture
def area() -> Iterator[Path]:
    """A directory both users can write, like /tmp (tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="gctuner-attack-"))
    os.chmod(path, 0o1777)
    yield path
    for log in path.glob("*.log"):  # kept for a failure's reading
        shutil.copy(log, Path(tempfile.gettempdir()) / f"gctuner-attack-{log.name}")
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def gunicorn(area: Path, state: Path | None, *prefix: str) -> Iterator[str]:
    url = f"http://127.0.0.1:{free_port()}"
    command = [*prefix, str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", url[len("http://"):],
               "--graceful-timeout", "5", "flask_app:app"]  # fmt: skip
    env = agent_env(state or area / "unused")
    if state is None:
        del env["GCTUNER_STATE_DIR"]
    with serving(command, env, area / "gunicorn.log", f"{url}/"):
        yield url


def refused_to_start(area: Path, state: Path) -> str:
    """gunicorn with ``state``: it must exit (every worker refuses), saying why."""
    url = f"http://127.0.0.1:{free_port()}"
    command = [str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", url[len("http://"):], "flask_app:app"]
    server = ManagedProcess("gunicorn", command, area / "refused.log", env=agent_env(state),
                            cwd=Path(__file__).with_name("apps"))  # fmt: skip
    server.start()
    try:
        wait_for(lambda: "state directory" in (area / "refused.log").read_text(), 60, "the refusal")
    finally:
        server.stop(grace=5)
    return (area / "refused.log").read_text()


def every_worker_follows(tune: str) -> None:
    wait_for(lambda: len(requests.get(tune, timeout=5).json()["processes"]) == WORKERS, 60, "every worker to follow")


def thresholds_of_workers(url: str) -> set[tuple[int, ...]]:
    return {tuple(answer["thresholds"]) for answer in reach_every_worker(f"{url}/", WORKERS).values()}


def test_a_world_writable_explicit_directory_is_refused(area: Path) -> None:
    shared = area / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # GCTUNER_STATE_DIR on a directory anyone can write
    as_nobody(f"echo '{json.dumps(PLANTED)}' > {shared}/desired.json; mkdir {shared}/procs")
    log = refused_to_start(area, shared)
    assert "is writable by every user: it is refused" in log
    assert not (shared / "procs").exists() or os.stat(shared / "procs").st_uid == NOBODY  # nothing of ours


def test_a_directory_another_user_created_first_is_refused(area: Path) -> None:
    """Generation 999999 and faked member records, in a directory nobody made."""
    shared = area / "shared"
    as_nobody(f"mkdir -m 755 {shared} {shared}/procs && echo '{json.dumps(PLANTED)}' > {shared}/desired.json"
              f" && echo '{{\"pid\": 1, \"generation\": 999999}}' > {shared}/procs/1-deadbeef.json")
    assert os.stat(shared).st_uid == NOBODY
    log = refused_to_start(area, shared)
    assert f"is owned by uid {NOBODY}, not by this user" in log


def test_our_private_directory_cannot_be_written(area: Path) -> None:
    state = area / "state"
    with gunicorn(area, state) as url:
        every_worker_follows(f"{url}/tune_gc")
        before = thresholds_of_workers(url)
        as_nobody(f"echo '{json.dumps(PLANTED)}' > {state}/desired.json; "
                  f"ln -s /dev/zero {state}/desired.json; mkfifo {state}/desired.json")  # fmt: skip
        assert os.stat(state).st_mode & 0o777 == 0o700
        assert thresholds_of_workers(url) == before
        assert requests.post(f"{url}/tune_gc", json={"thresholds": TUNED}, headers=AUTH, timeout=10).status_code == 200


@pytest.mark.parametrize("attack", ["fifo", "/dev/zero", "huge", "deeply nested", "temporary-name links"])
def test_a_group_member_planting_odd_files_never_hangs_or_changes_anything(area: Path, attack: str) -> None:
    """Even a user allowed into a group-shared directory (mode 2770, group
    nogroup) cannot hang, crash or retune the workers with odd files, nor
    make them write through a link to a file of root's."""
    state = area / "state"
    state.mkdir()
    os.chown(state, 0, NOBODY)
    os.chmod(state, 0o2770)
    victim = area / "root-owned"
    victim.write_text("root's own")
    with gunicorn(area, state, "setpriv", "--groups", str(NOBODY), "--") as url:
        tune = f"{url}/tune_gc"
        every_worker_follows(tune)
        assert requests.post(tune, json={"thresholds": TUNED}, headers=AUTH, timeout=10).status_code == 200
        desired = f"{state}/desired.json"
        script = {
            "fifo": f"mkfifo {state}/f && mv -f {state}/f {desired}",
            "/dev/zero": f"ln -sf /dev/zero {state}/z && mv -f {state}/z {desired}",
            "huge": f"truncate -s 300M {state}/h && mv -f {state}/h {desired}",
            "deeply nested": f"python3 -c \"print('['*300000)\" > {state}/n && mv -f {state}/n {desired}",
            "temporary-name links": " ; ".join(
                f"ln -s {victim} {state}/.desired.json.{pid}.{n}.tmp"
                for pid in range(1, 200) for n in range(2)
            ) + f" ; ln -s {victim} {state}/.generation.1.tmp",
        }[attack]
        as_nobody(script)
        # the followers keep running and keep their settings; GET and POST answer
        wait_for(lambda: requests.get(tune, timeout=5).status_code == 200, 20, "GET to answer")
        assert thresholds_of_workers(url) == {tuple(TUNED)}
        answer = requests.post(tune, json={"thresholds": [40000, 20, 100]}, headers=AUTH, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["generation"] == 2  # the generation survived the planted file
        assert thresholds_of_workers(url) == {(40000, 20, 100)}
    assert victim.read_text() == "root's own"


def test_pre_created_default_directories_stop_nothing(area: Path) -> None:
    """The old default, <tmp>/gctuner-<process group>, for the next pids, and
    the new one's per-user prefix: the server still starts, with its own."""
    tmp = tempfile.gettempdir()
    start = os.getpid()
    as_nobody(" ; ".join(f"mkdir -p {tmp}/gctuner-{pid} {tmp}/gctuner-0-{pid}-0" for pid in range(start, start + 300)))
    try:
        with gunicorn(area, None) as url:
            tune = f"{url}/tune_gc"
            every_worker_follows(tune)
            answer = requests.post(tune, json={"thresholds": TUNED}, headers=AUTH, timeout=10)
            assert answer.status_code == 200 and answer.json()["processes"] == {"applied": 2, "total": 2}
            assert thresholds_of_workers(url) == {tuple(TUNED)}
    finally:
        for pid in range(start, start + 300):
            for name in (f"gctuner-{pid}", f"gctuner-0-{pid}-0"):
                shutil.rmtree(Path(tmp) / name, ignore_errors=True)
