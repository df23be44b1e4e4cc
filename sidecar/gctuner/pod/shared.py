"""Every process of the pod follows one desired state.

gunicorn, uWSGI and multiprocessing servers run several processes and a POST
lands in one of them. That one publishes the settings in the state directory
(:mod:`gctuner.pod.statedir`); every process runs a follower thread that notices
the change within ``interval`` seconds, applies it and writes down what it
applied; the POST answers once every live process did, or when its time is up.

Following costs a request nothing: it is a daemon thread doing one ``stat``
per interval, plus ``gc.get_threshold()`` to notice when the app changed its
own thresholds (then the record is rewritten, so a GET tells the truth). Every
``RESYNC_SECONDS`` it also rewrites its record with its collector statistics
and pause recording, which ``/metrics`` reports for every process.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable

from gctuner.autopilot.memory import process_rss
from gctuner.core.pauses import PauseRecorder
from gctuner.core.runtime import GCRuntime
from gctuner.pod import uwsgi
from gctuner.pod.pilot import Pilot
from gctuner.pod.publisher import Publisher, Rollout, iso_time, wait_for_rollout
from gctuner.pod.statedir import Desired, Slot, StateDir

__all__ = ["RESYNC_SECONDS", "Rollout", "SharedState", "iso_time", "wait_for_rollout"]

log = logging.getLogger("gctuner")

RESYNC_SECONDS = 5.0
"""How often a follower re-reads everything even if no ``stat`` changed (an
inode number reused within the file system's timestamp granularity would
otherwise hide a change, and a wiped directory must be re-joined), and
refreshes the numbers in its record."""


class SharedState(Publisher):
    """This process's membership in the shared state of its pod."""

    def __init__(
        self,
        state_dir: StateDir,
        runtime: GCRuntime,
        *,
        recorder: PauseRecorder | None = None,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        pilot: Pilot | None = None,
    ) -> None:
        super().__init__(state_dir, clock=clock, wallclock=wallclock, sleep=sleep)
        self.runtime: GCRuntime = runtime
        self.pilot = pilot if pilot is not None else Pilot(state_dir, runtime, clock=clock, wallclock=wallclock)
        self._desired: Desired | None = None  # as last read: the pilot steps on it
        self._born = clock()
        self.recorder = recorder
        self.interval = interval
        self._slot: Slot | None = None
        self._applied = 0  # generation applied here; 0 = never told anything
        self._applied_key: tuple[int, str | None] = (0, None)  # and which publish it was
        self._signature: tuple[int, int, int] | None = None
        self._reported: tuple[int, ...] | None = None
        self._problem_logged = False
        self._following = False  # here, and in the processes forked from here
        self._owner = os.getpid()
        self._reset_threading()

    def _reset_threading(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_warning = ""

    def start(self) -> SharedState:
        """Apply the current desired state now, then keep following it."""
        self._following = True
        self.sync()
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._follow, name="gctuner-follower", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 2.0, *, children_follow: bool = False) -> None:
        """Stop following and leave the pod's list of processes.

        ``children_follow=True`` is for a server's master process, which runs
        no requests: it stops counting, and the workers it forks follow.
        """
        self._following = children_follow
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self.pilot.resign()
            if self._slot is not None:
                self.state_dir.release(self._slot)
                self._slot = None

    def sync(self, full: bool = True) -> None:
        """One follower step: apply a new generation, report drift.

        ``full=False`` is the polling path: nothing is read unless the
        signature of ``desired.json`` changed, and the record is rewritten
        only if the thresholds did.
        """
        with self._lock:
            if full:
                self.state_dir.ensure()  # re-made if wiped; refused if swapped for a link or opened up
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
            if full or thresholds != self._reported:
                self.state_dir.write_record(self._slot, self._record(thresholds))
                self._reported = thresholds

    def _catch_up(self) -> None:
        try:
            desired = self.state_dir.read_desired()
        except ValueError as error:  # keep what we have; say so once
            self._warn(f"ignoring {self.state_dir.path}/desired.json: {error}")
            return
        self._desired = desired
        if desired is None or desired.key == self._applied_key:
            return
        if desired.settings is None:
            self.runtime.restore()
        else:
            self.runtime.apply(desired.settings)
        if desired.collect:
            self.runtime.collect()
        self._applied = desired.generation
        self._applied_key = desired.key
        self._reported = None

    def _record(self, thresholds: tuple[int, ...]) -> dict[str, Any]:
        problem = uwsgi.follow_problem()
        if problem is not None and not self._problem_logged:
            log.warning("gctuner: %s", problem)
            self._problem_logged = True
        return {
            "pid": os.getpid(),
            "generation": self._applied,
            "id": self._applied_key[1],
            "problem": problem,
            "thresholds": list(thresholds),
            "frozen": self.runtime.frozen(),
            "time": iso_time(self._wallclock()),
            "at": self._wallclock(),
            "uptime": round(self._clock() - self._born, 1),
            "rss": process_rss(),
            "stats": self.runtime.stats(),
            "pauses": None if self.recorder is None else self.recorder.snapshot(),
        }

    def _follow(self) -> None:
        ticks_per_resync = max(1, round(RESYNC_SECONDS / self.interval))
        tick = 0
        while not self._stopping.wait(self.interval):
            tick += 1
            try:
                self.sync(full=tick % ticks_per_resync == 0)
                self.pilot.step(self._desired)
            except OSError as error:
                self._warn(f"cannot follow {self.state_dir.path}: {error}")
            except BaseException as error:  # noqa: BLE001  (nothing may stop this process from following)
                self._warn(f"following {self.state_dir.path} failed: {type(error).__name__}")
            else:
                self._last_warning = ""

    def _warn(self, message: str) -> None:
        """Log a problem once, not ten times a second."""
        if message != self._last_warning:
            try:
                log.warning("gctuner: %s", message)
            except Exception:  # noqa: BLE001  (a broken log handler must not stop the follower)
                pass
            self._last_warning = message

    def _published(self) -> None:
        self.sync()

    def thresholds(self, rollout: Rollout) -> list[int] | None:
        """This process's thresholds: it applied the rollout before answering."""
        return list(self.runtime.thresholds())

    def records(self) -> list[dict[str, Any]]:
        """Every live process's record, this one's as of now. Read-only: this
        process's fresh numbers replace its record in the answer, not on disk,
        so a ``/metrics`` scrape writes nothing."""
        records = super().records()
        with self._lock:
            if self._slot is None:  # not one of the pod's processes
                return records
            own = self._record(self.runtime.thresholds())
        return [own if record.get("pid") == own["pid"] else record for record in records]

    def describe(self) -> dict[str, Any]:
        """This process's collector, its pause recording, and the pod's view."""
        data = self.runtime.snapshot()
        data.update(self.status())
        data["pauses"] = None if self.recorder is None else self.recorder.snapshot()
        return data

    def after_fork_in_child(self) -> None:
        """Re-join as the new process: a fork copies neither threads nor the
        right to the parent's slot (closing our copy of its descriptor keeps
        the parent's lock; releasing it would not).

        Idempotent, because uWSGI may run both its own post-fork hook and
        Python's; also starts a member that stepped aside in this very process
        (uWSGI without a master loads the app in what becomes worker 1).
        """
        if self._owner != os.getpid():
            self._owner = os.getpid()
            if self._slot is not None:
                os.close(self._slot.fd)
                self._slot = None
            self.pilot.after_fork_in_child()
            self._born = self._clock()
            self._reset_threading()
        if self._following and (self._thread is None or not self._thread.is_alive()):
            self.start()
