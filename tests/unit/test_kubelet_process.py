"""Containers as local processes: restarts, process groups, stop, leftovers (no cluster needed)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gctuner_localcluster.kubelet import claim_address_block
from gctuner_localcluster.orphans import reap_orphans
from gctuner_localcluster.podenv import ConfigError, command_line
from gctuner_localcluster.podprocess import ContainerRunner, Sandbox, Timing
from polling import until

FAST = Timing(backoff_initial=0.05, backoff_max=0.2, backoff_reset=30, grace_cap=2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def runner(tmp_path: Path, spec: dict, policy: str = "Always") -> tuple[ContainerRunner, list[int]]:
    changes: list[int] = []
    (tmp_path / "pids").mkdir(exist_ok=True)
    box = Sandbox(label="ns/pod", pod_ip="127.0.1.1", restart_policy=policy, log_dir=tmp_path / "logs",
                  cwd=tmp_path, pid_dir=tmp_path / "pids", timing=FAST, http=None,
                  on_change=lambda: changes.append(1))

    async def prepare() -> tuple[list[str], dict[str, str]]:
        env = {"PATH": os.environ["PATH"], "GREETING": "hi"}
        return command_line(spec, env), env

    return ContainerRunner(spec, box, prepare), changes


def py(code: str) -> dict:
    return {"name": "app", "image": "ignored", "command": [sys.executable, "-c", code]}


async def test_a_failing_container_is_restarted_and_counted(tmp_path: Path) -> None:
    container, changes = runner(tmp_path, py("import sys; print('boom'); sys.exit(3)"), "OnFailure")
    container.start()
    await until(lambda: container.restart_count >= 2, what="two restarts")
    status = container.status()
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["lastState"]["terminated"]["reason"] == "Error"
    assert status["lastState"]["terminated"]["containerID"].startswith("local://")
    await container.stop(1)
    assert changes
    assert (tmp_path / "logs" / "app.log").read_text().count("boom") >= 2  # appended across restarts


async def test_with_restart_policy_never_a_finished_container_stays_terminated(tmp_path: Path) -> None:
    container, _ = runner(tmp_path, py("print('done')"), "Never")
    container.start()
    await until(lambda: "terminated" in container.status()["state"], what="termination")
    status = container.status()
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"
    assert (status["restartCount"], status["lastState"], status["ready"], status["started"]) == (0, {}, False, False)
    await container.stop(1)


async def test_running_container_is_ready_without_a_probe_and_sees_its_env(tmp_path: Path) -> None:
    container, _ = runner(tmp_path, py("import os, time; print(os.environ['GREETING'], flush=True); time.sleep(60)"))
    container.start()
    await until(lambda: container.ready, what="ready")
    status = container.status()
    assert status["started"] and "running" in status["state"]
    await until(lambda: "hi" in (tmp_path / "logs" / "app.log").read_text(), what="the env to be printed")
    await container.stop(1)
    assert not container.ready and "terminated" in container.status()["state"]


async def test_stop_kills_the_whole_process_group_even_what_ignores_sigterm(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(60)\n"
    )
    container, _ = runner(tmp_path, py(code))
    container.start()
    await until(lambda: child_pid.exists() and child_pid.read_text(), what="the child to start")
    leader = int(container.status()["containerID"].removeprefix("local://"))
    child = int(child_pid.read_text())
    await container.stop(0.3)
    # Both ignore SIGTERM and would sleep on for a minute: stop ended them with SIGKILL once the grace was over.
    assert not alive(leader), "stop returns once the main process is gone"
    assert container.status()["state"]["terminated"]["exitCode"] == 128 + signal.SIGKILL
    await until(lambda: not alive(child), timeout=5, what="the rest of the group to be gone")
    assert not any((tmp_path / "pids").iterdir())


async def test_a_child_left_behind_by_an_exiting_main_process_is_killed(tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
    )
    container, _ = runner(tmp_path, py(code), "Never")
    container.start()
    await until(lambda: "terminated" in container.status()["state"], what="the main process to exit")
    await until(lambda: not alive(int(child_pid.read_text())), timeout=5, what="the child to be killed")
    await container.stop(1)


async def test_a_container_without_command_waits_with_a_clear_reason_and_is_not_retried(tmp_path: Path) -> None:
    container, changes = runner(tmp_path, {"name": "app", "image": "nginx"})
    container.start()
    await until(lambda: container.status()["state"]["waiting"].get("reason") == "CreateContainerError")
    assert "has no command" in container.status()["state"]["waiting"]["message"]
    seen = len(changes)
    # Not retried: the runner's task has ended, so nothing is left to try again.
    await until(lambda: not any(task.get_name() == "ns/pod/app" for task in asyncio.all_tasks()),
                what="the runner to give up")
    assert len(changes) == seen
    assert container.status()["state"]["waiting"]["reason"] == "CreateContainerError"
    await container.stop(1)


async def test_a_missing_executable_is_a_start_error_and_retried(tmp_path: Path) -> None:
    container, _ = runner(tmp_path, {"name": "app", "command": ["/nonexistent/app"]}, "Always")
    container.start()
    await until(lambda: container.restart_count >= 1, what="a retry")
    terminated = container.status()["lastState"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (128, "StartError")
    await container.stop(1)


async def test_a_missing_executable_with_restart_policy_never_ends_terminated(tmp_path: Path) -> None:
    container, _ = runner(tmp_path, {"name": "app", "command": ["/nonexistent/app"]}, "Never")
    container.start()
    await until(lambda: "terminated" in container.status()["state"], what="termination")
    assert container.status()["state"]["terminated"]["reason"] == "StartError"
    await container.stop(1)


def test_reap_orphans_kills_sessions_recorded_by_a_dead_kubelet(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        with open(f"/proc/{proc.pid}/stat") as stat:
            ticks = stat.read().rsplit(")", 1)[1].split()[19]
        (tmp_path / str(proc.pid)).write_text(ticks)
        (tmp_path / "999999999").write_text("1")  # long gone: ignored
        assert reap_orphans(tmp_path) == 1
        assert proc.wait(timeout=5) == -signal.SIGKILL
        assert not any(tmp_path.iterdir())
    finally:
        proc.kill()
        proc.wait()


def test_reap_orphans_spares_a_pid_that_now_belongs_to_another_process(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        (tmp_path / str(proc.pid)).write_text("1")  # a different start time: not ours
        assert reap_orphans(tmp_path) == 0
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_config_error_is_what_prepare_raises_for_a_missing_command() -> None:
    with pytest.raises(ConfigError):
        command_line({"name": "x"}, {})


def test_kubelets_on_one_machine_claim_different_address_blocks(tmp_path: Path) -> None:
    first, fd1 = claim_address_block(tmp_path)
    second, fd2 = claim_address_block(tmp_path)
    os.close(fd1)
    third, fd3 = claim_address_block(tmp_path)  # the first one's block is free again
    os.close(fd2)
    os.close(fd3)
    assert (first, second, third) == (0, 1, 0)
