"""One container as a local process: start, watch, probe, restart, stop.

Each process starts in a session of its own, so the container's whole
process tree (gunicorn's workers, multiprocessing children) is one process
group that is signalled as one, as a container runtime's cgroup would be.
When the main process exits the rest of its group is killed, as when a
container's PID 1 exits.  Exits are noticed through a pidfd on the event
loop: no thread per child, so a thousand pods cost a thousand descriptors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, Callable

from . import orphans
from .podenv import ConfigError
from .podstatus import timestamp
from .probes import Probe

log = logging.getLogger("kubelet")
Json = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Timing:
    """How quickly things happen; shorter than a real kubelet's so tests stay quick."""

    backoff_initial: float = 1.0
    """Delay before the first restart of a crashed container; doubles per crash."""
    backoff_max: float = 10.0
    """Longest restart delay (a real kubelet waits up to 5 minutes)."""
    backoff_reset: float = 20.0
    """A run at least this long forgets the earlier crashes."""
    grace_cap: float = 5.0
    """Longest wait between SIGTERM and SIGKILL, whatever the pod asks for."""


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """What the containers of one pod share (the pod's "sandbox")."""

    label: str  # "namespace/name", for log lines
    pod_ip: str
    restart_policy: str
    log_dir: Path
    cwd: Path
    pid_dir: Path
    timing: Timing
    http: Any  # aiohttp.ClientSession for probes
    on_change: Callable[[], None]


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class ContainerRunner:
    """Runs one container's command until stopped, restarting it per the pod's restartPolicy."""

    def __init__(
        self, spec: Mapping, sandbox: Sandbox,
        prepare: Callable[[], Awaitable[tuple[list[str], dict[str, str]]]], restarts: int = 0,
    ) -> None:
        self.name: str = spec["name"]
        self._spec = spec
        self._box = sandbox
        self._prepare = prepare
        self.restart_count = restarts
        self.ready = False
        self._state: Json = {"waiting": {"reason": "ContainerCreating"}}
        self._last_state: Json = {}
        self._container_id: str | None = None
        self._pid: int | None = None
        self._exit: asyncio.Future[int] | None = None
        self._stopping = False
        self._task: asyncio.Task | None = None

    # --- what the status reports ----------------------------------------------

    def status(self) -> Json:
        status: Json = {
            "name": self.name, "image": self._spec.get("image", ""), "imageID": "",
            "ready": self.ready, "restartCount": self.restart_count,
            "started": "running" in self._state, "state": self._state, "lastState": self._last_state,
        }
        if self._container_id:
            status["containerID"] = self._container_id
        return status

    def _set(self, state: Json) -> None:
        self._state = state
        self._box.on_change()

    def _set_ready(self, ready: bool) -> None:
        if ready != self.ready:
            self.ready = ready
            log.info("%s: container %s %s", self._box.label, self.name, "ready" if ready else "not ready")
            self._box.on_change()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self._box.label}/{self.name}")
        self._task.add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: container %s: internal error", self._box.label, self.name, exc_info=task.exception())

    async def _run(self) -> None:
        timing, backoff = self._box.timing, self._box.timing.backoff_initial
        first = True
        while not self._stopping:
            try:
                argv, env = await self._prepare()
            except ConfigError as exc:
                fatal = not self._spec.get("command")  # the spec is immutable: retrying cannot help
                reason = "CreateContainerError" if fatal else "CreateContainerConfigError"
                log.warning("%s: container %s cannot start: %s", self._box.label, self.name, exc)
                self._set({"waiting": {"reason": reason, "message": str(exc)}})
                if fatal:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, timing.backoff_max)
                continue
            if not first:
                self.restart_count += 1
            first = False
            began = time.monotonic()
            terminated = await self._run_once(argv, env)
            policy = self._box.restart_policy
            if self._stopping or policy == "Never" or (policy == "OnFailure" and terminated["exitCode"] == 0):
                return
            self._last_state = {"terminated": terminated}
            if time.monotonic() - began >= timing.backoff_reset:
                backoff = timing.backoff_initial
            log.info("%s: container %s restarting in %gs", self._box.label, self.name, backoff)
            self._set({"waiting": {"reason": "CrashLoopBackOff", "message": (
                f"back-off {backoff:g}s restarting failed container={self.name} pod={self._box.label}")}})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, timing.backoff_max)

    async def _run_once(self, argv: list[str], env: dict[str, str]) -> Json:
        """Start the process, wait for it to end; the ``terminated`` state it ended in."""
        started_at = timestamp(time.time())
        self._box.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(self._box.log_dir / f"{self.name}.log", "ab") as out:
                proc = subprocess.Popen(
                    argv, cwd=self._box.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True,
                )
        except OSError as exc:
            log.warning("%s: container %s failed to start: %s", self._box.label, self.name, exc)
            failed = {"exitCode": 128, "reason": "StartError", "message": str(exc),
                      "startedAt": started_at, "finishedAt": started_at}
            self._set({"terminated": failed})
            return failed
        self._pid, self._container_id = proc.pid, f"local://{proc.pid}"
        orphans.record(self._box.pid_dir, proc.pid)
        self._exit = _exit_future(proc)
        log.info("%s: container %s started pid %d at %s", self._box.label, self.name, proc.pid, self._box.pod_ip)
        self._set({"running": {"startedAt": started_at}})
        probe = self._spec.get("readinessProbe")
        prober = None
        if probe and Probe.supported(probe):
            prober = asyncio.create_task(self._probe_loop(Probe(probe, self._spec, self._box.pod_ip, self._box.http)))
        else:
            if probe:
                log.warning("%s: container %s: only httpGet/tcpSocket probes run; counted ready",
                            self._box.label, self.name)
            self._set_ready(True)
        try:
            returncode = await asyncio.shield(self._exit)
        finally:  # also when cancelled: the container must not outlive its runner
            if prober is not None:
                prober.cancel()
            self._set_ready(False)
            signal_group(proc.pid, signal.SIGKILL)  # what the main process left behind
            orphans.forget(self._box.pid_dir, proc.pid)
            self._pid = None
        code = returncode if returncode >= 0 else 128 - returncode
        log.info("%s: container %s pid %d exited with code %d", self._box.label, self.name, proc.pid, code)
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": started_at, "finishedAt": timestamp(time.time()),
                      "containerID": self._container_id}
        self._set({"terminated": terminated})
        return terminated

    async def _probe_loop(self, probe: Probe) -> None:
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            if await probe.check():
                successes, failures = successes + 1, 0
                if successes >= probe.success_threshold:
                    self._set_ready(True)
            else:
                successes, failures = 0, failures + 1
                if failures >= probe.failure_threshold:
                    self._set_ready(False)
            await asyncio.sleep(probe.period)

    async def stop(self, grace: float) -> None:
        """SIGTERM the container's group, SIGKILL it after ``grace`` seconds; no restart after."""
        self._stopping = True
        pid, exit_future = self._pid, self._exit
        if pid is not None and exit_future is not None and not exit_future.done():
            signal_group(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exit_future), grace)
            except asyncio.TimeoutError:
                signal_group(pid, signal.SIGKILL)
                await asyncio.wait_for(asyncio.shield(exit_future), 5)
            log.info("%s: container %s stopped", self._box.label, self.name)
        if self._task is not None:
            self._task.cancel()  # wherever it is: waiting to restart, reading config, done
            await asyncio.gather(self._task, return_exceptions=True)


def _exit_future(proc: subprocess.Popen) -> asyncio.Future[int]:
    """A future for the process's return code, resolved from a pidfd (and the child reaped)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    fd = os.pidfd_open(proc.pid)

    def reap() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        returncode = proc.wait()  # the child is a zombie now: this does not block
        if not future.done():
            future.set_result(returncode)

    loop.add_reader(fd, reap)
    return future
