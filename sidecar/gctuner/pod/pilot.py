"""The autopilot's loop: one process per pod, elected through the state directory.

Every following process carries a :class:`Pilot`, stepped by its follower
thread. While the desired state holds a goal, each one tries, once a second,
to take ``pilot.lock``; the one holding it measures a window of telemetry
(every process's records, the container's memory), calls
:func:`gctuner.autopilot.decide.decide`, and publishes a changed choice as a
new generation, which every process (itself included) follows as usual. The
kernel drops the lock when its holder dies, so another process takes over
within a second or two, reading back what the last one reported; what runs
meanwhile stays as it was, since a choice is only ever published whole.

A window starts only once every process applied the last change (each
rewrites its record on applying one), so what it measures is the new setting
alone; a new goal starts measuring at once, with no cool-down.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from gctuner.autopilot.decide import COOL_DOWN_SECONDS, Choice, Decision, Raise, decide, startup_choice
from gctuner.autopilot.goal import Goal
from gctuner.autopilot.memory import CgroupMemory, MemoryReading
from gctuner.autopilot.telemetry import observe
from gctuner.core.runtime import GCRuntime
from gctuner.core.settings import Settings
from gctuner.pod.publisher import iso_time, record_generation
from gctuner.pod.statedir import Desired, StateDir

log = logging.getLogger("gctuner")

WINDOW_SECONDS = 10.0
"""Telemetry measured per decision: two record rewrites of every process."""

ELECTION_SECONDS = 1.0
"""How often a process that does not steer checks whether it should."""

DECISIONS_KEPT = 10
"""The last decisions ``GET /tune_gc`` shows, with their reasons."""


class Pilot:
    """This process's part in steering the pod towards a goal."""

    def __init__(
        self,
        state_dir: StateDir,
        runtime: GCRuntime,
        *,
        memory: Callable[[], MemoryReading] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.state_dir = state_dir
        self.runtime = runtime
        self._memory = memory if memory is not None else CgroupMemory().read
        self._clock = clock
        self._wallclock = wallclock
        self._window = window
        self._fd: int | None = None
        self._next_try = 0.0
        self._goal: Goal | None = None
        self._start: Sequence[Mapping[str, Any]] | None = None
        self._started_at = 0.0
        self._changed_at = 0.0
        self._frozen = False
        self._decisions: list[dict[str, Any]] = []
        self._awaiting: tuple[int, float] | None = None  # (generation every process must apply, since)
        self._last_raise: Raise | None = None
        self._ceiling: int | None = None
        self._restored: dict[str, Any] = {}  # what the last pilot reported, read on taking over

    @property
    def leading(self) -> bool:
        return self._fd is not None

    def step(self, desired: Desired | None) -> None:
        """One tick of the follower thread: elect, measure, decide, publish."""
        goal = None if desired is None else desired.goal
        if desired is None or goal is None:
            self.resign()
            return
        now = self._clock()
        if self._fd is None and not self._elect(now):
            return
        if goal != self._goal:
            self._adopt(goal, now)
        if self._awaiting is not None and not self._applied_everywhere(now):
            return
        if self._start is None:
            self._begin_window(now)
            return
        if now - self._started_at < self._window:
            return
        self._decide(desired, goal, now)

    def resign(self) -> None:
        """Stop steering (no goal any more, or this process leaves)."""
        if self._fd is not None:
            os.close(self._fd)  # drops the flock
            self._fd = None
        self._goal = self._start = None

    def after_fork_in_child(self) -> None:
        """A forked child shares its parent's lock: let go of the copy, keep
        the parent's (closing a copy does not unlock), and run for election itself."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._goal, self._start, self._next_try = None, None, None, 0.0

    def _elect(self, now: float) -> bool:
        if now < self._next_try:
            return False
        self._next_try = now + ELECTION_SECONDS
        self._fd = self.state_dir.lock_pilot()
        if self._fd is None:
            return False
        self._restored = self.state_dir.read_autopilot() or {}
        last = self._restored
        self._decisions = [d for d in last.get("decisions") or [] if isinstance(d, dict)][-DECISIONS_KEPT:]
        self._frozen = last.get("frozen") is True
        self._goal = None  # adopted at once, with what the last pilot knew of it
        log.info("gctuner: process %d steers the pod towards its goal", os.getpid())
        return True

    def _adopt(self, goal: Goal, now: float) -> None:
        """A new goal (or a takeover): measure from now; a takeover keeps the
        last pilot's ceiling and cool-down if it steered to the same goal."""
        self._goal, self._start, self._awaiting, self._last_raise = goal, None, None, None
        self._ceiling, self._changed_at = None, now - COOL_DOWN_SECONDS
        last, self._restored = self._restored, {}
        if last.get("goal") == goal.to_json():
            ceiling, changed = last.get("ceiling"), last.get("changedAt")
            self._ceiling = ceiling if type(ceiling) is int else None
            if isinstance(changed, (int, float)):
                self._changed_at = now - max(0.0, self._wallclock() - changed)

    def _applied_everywhere(self, now: float) -> bool:
        """Every live process applied the last change (or waiting took too long: go on)."""
        assert self._awaiting is not None
        generation, since = self._awaiting
        records = self.state_dir.records()
        done = bool(records) and all(record_generation(record) >= generation for record in records)
        if done or now - since > 2 * self._window:
            self._awaiting = None
            self._start = None  # the window starts now, from records written after the change
        return self._awaiting is None

    def _begin_window(self, now: float) -> None:
        self._start = self.state_dir.records()
        self._started_at = now

    def _decide(self, desired: Desired, goal: Goal, now: float) -> None:
        records = self.state_dir.records()
        observation = observe(self._start or (), records)
        memory = self._memory()
        defaults = self.runtime.defaults
        current = (
            Choice(desired.settings.thresholds, self._frozen) if desired.settings is not None
            else Choice(startup_choice(defaults).thresholds, self._frozen)
        )  # fmt: skip
        decision = decide(observation, memory, goal, current, self.runtime.flavour, defaults, now - self._changed_at,
                          last_raise=self._last_raise, ceiling=self._ceiling)
        published = self._publish(desired, goal, current, decision)
        raised = published is not None and decision.choice.threshold0 > current.threshold0
        self._last_raise = Raise(current.threshold0, observation.gc_percent) if raised and observation else None
        if decision.ceiling is not None:
            self._ceiling = decision.ceiling
        if published is not None:
            self._frozen = decision.choice.frozen
            self._awaiting = (published.generation, now)
            if decision.choice.thresholds != current.thresholds:
                self._changed_at = now
        self._report(goal, observation.to_json() if observation else None, memory.to_json(), decision,
                     published is not None)
        self._start, self._started_at = records, now

    def _publish(self, desired: Desired, goal: Goal, current: Choice, decision: Decision) -> Desired | None:
        """Publish a changed choice; None if nothing changed or a client changed the state meanwhile."""
        if decision.choice.thresholds == current.thresholds and not (decision.collect or decision.freeze):
            return None
        settings = Settings(decision.choice.thresholds, freeze=decision.freeze)
        return self.state_dir.publish(
            settings, iso_time(self._wallclock()), goal=goal, collect=decision.collect,
            pilot=True, expect=desired.generation,
        )  # fmt: skip

    def _report(
        self, goal: Goal, measured: dict[str, Any] | None, memory: dict[str, Any], decision: Decision, changed: bool
    ) -> None:
        entry = {"time": iso_time(self._wallclock()), "state": decision.state, "reason": decision.reason,
                 "thresholds": list(decision.choice.thresholds), "changed": changed}
        if changed or not self._decisions or self._decisions[-1]["state"] != decision.state:
            self._decisions = [*self._decisions, entry][-DECISIONS_KEPT:]
        self.state_dir.write_autopilot({
            "pid": os.getpid(),
            "goal": goal.to_json(),
            "state": decision.state,
            "reason": decision.reason,
            "measured": measured,
            "memory": memory,
            "choice": decision.choice.to_json(),
            "frozen": self._frozen,
            "ceiling": self._ceiling,
            "changedAt": self._wallclock() - (self._clock() - self._changed_at),
            "flavour": self.runtime.flavour.name,
            "time": entry["time"],
            "decisions": self._decisions,
        })
