"""Publishing a desired state and watching the processes of the pod apply it.

A :class:`Publisher` changes the state directory and reads what the processes
report, without being one of them: the ``gctuner sidecar`` server is one, as
its own collector is not the app's. :class:`~gctuner.pod.shared.SharedState`, a
process that follows the state, publishes through the same code.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from typing import Any, Callable

from gctuner.autopilot.goal import Goal
from gctuner.core.applied_by import AppliedBy
from gctuner.core.pauses import summarize
from gctuner.core.settings import Settings
from gctuner.pod.statedir import Desired, StateDir

RECORD_FIELDS = ("pid", "generation", "thresholds", "frozen")
"""What ``GET /tune_gc`` lists per process, with its pauses in brief; a record
holds more (the numbers behind ``/metrics``)."""


@dataclasses.dataclass(frozen=True)
class Rollout:
    """How far one generation got: ``applied`` of ``total`` live processes.

    ``total`` counts every process with a live record in the state directory
    (a worker being re-spawned counts again once it follows); ``lagging``
    names the others, each with why.
    """

    generation: int
    applied: int
    total: int
    lagging: tuple[dict[str, Any], ...] = ()

    @property
    def complete(self) -> bool:
        """Every process applied it, and there is at least one."""
        return self.total > 0 and self.applied == self.total

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"applied": self.applied, "total": self.total}
        if not self.complete:
            data["lagging"] = list(self.lagging)
        return data


def wait_for_rollout(
    state_dir: StateDir,
    generation: int,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll: float = 0.02,
) -> Rollout:
    """Wait until every live process applied ``generation`` (or a later one);
    with no process following, the whole ``timeout`` (one may be starting)."""
    deadline = clock() + timeout
    while True:
        records = state_dir.records()
        lagging = [lag for lag in (lag_reason(record, generation, timeout) for record in records) if lag]
        if (records and not lagging) or clock() >= deadline:
            return Rollout(generation, len(records) - len(lagging), len(records), tuple(lagging))
        sleep(poll)


def lag_reason(record: dict[str, Any], generation: int, timeout: float) -> dict[str, Any] | None:
    """Why the process of ``record`` does not count as having applied ``generation``, or None."""
    problem = record.get("problem")
    if isinstance(problem, str) and problem:
        reason = problem[:500]
    elif record_generation(record) >= generation:
        return None
    else:
        reason = (
            f"has not applied generation {generation} within {timeout:g} s "
            f"(it runs generation {record_generation(record)}): busy, stopped (SIGSTOP) "
            "or without its follower thread (uWSGI without --enable-threads)"
        )
    return {"pid": record.get("pid"), "generation": record_generation(record), "reason": reason}


class Publisher:
    """Asks the processes following ``state_dir`` to apply settings; is not one of them."""

    def __init__(
        self,
        state_dir: StateDir,
        *,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.state_dir = state_dir
        self._clock = clock
        self._wallclock = wallclock
        self._sleep = sleep

    def publish(
        self, settings: Settings | None, timeout: float, *, applied_by: AppliedBy | None = None
    ) -> Rollout:
        """Ask every process to apply ``settings`` (None: restore defaults);
        this ends any autopilot goal. ``applied_by``: who asks (kept and reported)."""
        desired = self.state_dir.publish(settings, iso_time(self._wallclock()), applied_by=applied_by)
        assert desired is not None  # no `expect`: always published
        return self._wait(desired.generation, timeout)

    def steer(self, goal: Goal, timeout: float, *, applied_by: AppliedBy | None = None) -> Rollout:
        """Hand the pod to the autopilot with ``goal``.

        The same goal again (the operator verifying, or re-pushing after a
        restart) changes nothing, so the autopilot keeps what it found; a new
        goal starts from the thresholds in force, not from the defaults.
        """
        current = self.desired()
        if current is not None and current.goal == goal:
            return self._wait(current.generation, timeout)
        # Start where the pod is (a freeze is an action, not repeated), not back at the defaults.
        start = Settings(current.settings.thresholds) if current is not None and current.settings else None
        desired = self.state_dir.publish(
            start, iso_time(self._wallclock()), goal=goal, applied_by=applied_by
        )
        assert desired is not None
        return self._wait(desired.generation, timeout)

    def _wait(self, generation: int, timeout: float) -> Rollout:
        self._published()
        return wait_for_rollout(
            self.state_dir, generation, timeout, clock=self._clock, sleep=self._sleep
        )

    def _published(self) -> None:
        """Hook for a process that follows: apply at once rather than at its next poll."""

    def thresholds(self, rollout: Rollout) -> list[int] | None:
        """The thresholds the processes run after ``rollout``: the one value
        they all report, or None when none applied it or they differ (a
        restore to each process's own defaults)."""
        found = {
            tuple(record["thresholds"])
            for record in self.state_dir.records()
            if record_generation(record) >= rollout.generation
            and isinstance(record.get("thresholds"), list)
        }
        return list(found.pop()) if len(found) == 1 else None

    def desired(self) -> Desired | None:
        """What was last published; None if nothing was (or it is garbage,
        which the next publish replaces)."""
        try:
            return self.state_dir.read_desired()
        except ValueError:
            return None

    def status(self) -> dict[str, Any]:
        """The pod's view: desired settings, generation, every live process."""
        desired = self.desired()
        generation = 0 if desired is None else desired.generation
        settings = None if desired is None else desired.settings
        records = self.state_dir.records()
        view = {
            "desired": None if settings is None else settings.to_json(),
            "generation": generation,
            "processes": [process_view(record) for record in records],
            "in_sync": bool(records)
            and all(record_generation(record) == generation and not record.get("problem") for record in records),
        }
        if desired is not None and desired.applied_by is not None:
            view["applied_by"] = desired.applied_by.to_json()
        if desired is not None and desired.goal is not None:
            view["goal"] = desired.goal.to_json()
            view["autopilot"] = self.state_dir.read_autopilot()
        return view

    def describe(self) -> dict[str, Any]:
        """The answer to ``GET``: here, only the pod's view."""
        return self.status()

    def records(self) -> list[dict[str, Any]]:
        """What every live process last reported (for ``/metrics``)."""
        return self.state_dir.records()


def process_view(record: dict[str, Any]) -> dict[str, Any]:
    """One process as ``GET`` lists it. Its pauses are those of its last
    record, rewritten every few seconds, so that any process (or the sidecar)
    can tell the pause times of all of them, as ``gctuner status`` shows."""
    view = {key: record.get(key) for key in RECORD_FIELDS}
    if record.get("problem"):
        view["problem"] = record["problem"]
    view["pauses"] = summarize(record.get("pauses"))
    return view


def iso_time(seconds: float) -> str:
    """UTC, milliseconds, ``Z``: the form Kubernetes uses in its own timestamps."""
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_generation(record: dict[str, Any]) -> int:
    generation = record.get("generation")
    return generation if type(generation) is int else -1
