"""Every process of the pod follows one desired state.

gunicorn, uWSGI and multiprocessing servers run several processes and a POST
lands in one of them. That one publishes the settings in the state directory
(:mod:`gctuner.statedir`); every process runs a follower thread that notices
the change within ``interval`` seconds, applies it and writes down what it
applied; the POST answers once every live process did, or when its time is up.

Following costs a request nothing: it is a daemon thread doing one ``stat``
per interval, plus ``gc.get_threshold()`` to notice when the app changed its
own thresholds (then the record is rewritten, so a GET tells the truth).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from .runtime import GCRuntime
from .settings import Settings
from .statedir import Slot, StateDir

log = logging.getLogger("gctuner")

RESYNC_SECONDS = 5.0
"""How often a follower re-reads everything even if no ``stat`` changed: an
inode number reused within the file system's timestamp granularity would
otherwise hide a change, and a wiped directory must be re-joined."""


@dataclasses.dataclass(frozen=True)
class Rollout:
    """How far one generation got: ``applied`` of ``total`` live processes."""

    generation: int
    applied: int
    total: int

    def to_json(self) -> dict[str, int]:
        return {"applied": self.applied, "total": self.total}


def wait_for_rollout(
    state_dir: StateDir,
    generation: int,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 0.02,
) -> Rollout:
    """Wait until every live process applied ``generation`` (or a later one)."""
    deadline = clock() + timeout
    while True:
        records = state_dir.records()
        applied = sum(1 for record in records if _generation(record) >= generation)
        if applied == len(records) or clock() >= deadline:
            return Rollout(generation, applied, len(records))
        sleep(poll)


class SharedState:
    """This process's membership in the shared state of its pod."""

    def __init__(
        self,
        state_dir: StateDir,
        runtime: GCRuntime,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_dir = state_dir
        self.runtime = runtime
        self.interval = interval
        self._clock = clock
        self._wallclock = wallclock
        self._sleep = sleep
        self._slot: Slot | None = None
        self._applied = 0  # generation applied here; 0 = never told anything
        self._signature: tuple[int, int, int] | None = None
        self._reported: tuple[int, ...] | None = None
        self._reset_threading()

    def _reset_threading(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = ""

    def start(self) -> SharedState:
        """Apply the current desired state now, then keep following it."""
        self.sync()
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._follow, name="gctuner-follower", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop following and leave the pod's list of processes."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            if self._slot is not None:
                self.state_dir.release(self._slot)
                self._slot = None

    def sync(self, full: bool = True) -> None:
        """One follower step: apply a new generation, report drift.

        ``full=False`` is the polling path: nothing is read unless the
        signature of ``desired.json`` changed.
        """
        with self._lock:
            if self._slot is not None and full and not self.state_dir.is_registered(self._slot):
                os.close(self._slot.fd)  # our files were wiped: join again
                self._slot = None
            if self._slot is None:
                self._slot = self.state_dir.register()
                self._reported = None
            signature = self.state_dir.signature()
            if full or signature != self._signature:
                self._signature = signature  # before reading: a later write changes it
                self._catch_up()
            thresholds = self.runtime.thresholds()
            if thresholds != self._reported:
                self.state_dir.write_record(self._slot, self._record(thresholds))
                self._reported = thresholds

    def _catch_up(self) -> None:
        try:
            desired = self.state_dir.read_desired()
        except ValueError as error:  # keep what we have; say so once
            self._warn(f"ignoring {self.state_dir.path}/desired.json: {error}")
            return
        if desired is None or desired.generation == self._applied:
            return
        if desired.settings is None:
            self.runtime.restore()
        else:
            self.runtime.apply(desired.settings)
        self._applied = desired.generation
        self._reported = None

    def _record(self, thresholds: tuple[int, ...]) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "generation": self._applied,
            "thresholds": list(thresholds),
            "frozen": self.runtime.frozen(),
            "time": iso_time(self._wallclock()),
        }

    def _follow(self) -> None:
        ticks_per_resync = max(1, round(RESYNC_SECONDS / self.interval))
        tick = 0
        while not self._stopping.wait(self.interval):
            tick += 1
            try:
                self.sync(full=tick % ticks_per_resync == 0)
            except OSError as error:
                self._warn(f"cannot follow {self.state_dir.path}: {error}")
            else:
                self._last_warning = ""

    def _warn(self, message: str) -> None:
        """Log a problem once, not ten times a second."""
        if message != self._last_warning:
            log.warning("gctuner: %s", message)
            self._last_warning = message

    def publish(self, settings: Settings | None, timeout: float) -> Rollout:
        """Ask every process to apply ``settings`` (None: restore defaults)."""
        desired = self.state_dir.publish(settings, iso_time(self._wallclock()))
        self.sync()
        return wait_for_rollout(
            self.state_dir, desired.generation, timeout, clock=self._clock, sleep=self._sleep
        )

    def status(self) -> dict[str, Any]:
        """The pod's view: desired settings, generation, every live process."""
        try:
            desired = self.state_dir.read_desired()
        except ValueError:
            desired = None
        generation = 0 if desired is None else desired.generation
        settings = None if desired is None else desired.settings
        records = self.state_dir.records()
        return {
            "desired": None if settings is None else settings.to_json(),
            "generation": generation,
            "processes": [
                {key: record.get(key) for key in ("pid", "generation", "thresholds", "frozen")}
                for record in records
            ],
            "in_sync": all(_generation(record) == generation for record in records),
        }

    def after_fork_in_child(self) -> None:
        """Re-join as the new process: a fork copies neither threads nor the
        right to the parent's slot (closing our copy of its descriptor keeps
        the parent's lock; releasing it would not)."""
        following = self._thread is not None and not self._stopping.is_set()
        if self._slot is not None:
            os.close(self._slot.fd)
            self._slot = None
        self._reset_threading()
        if following:
            self.start()


def iso_time(seconds: float) -> str:
    """UTC, milliseconds, ``Z``: the form Kubernetes uses in its own timestamps."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _generation(record: dict[str, Any]) -> int:
    generation = record.get("generation")
    return generation if type(generation) is int else -1

