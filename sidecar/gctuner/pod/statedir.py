"""The files through which the processes of a pod share one desired state.

Layout of a state directory::

    desired.json      {"generation": N, "settings": {...} | null, "time": "...",
                       "goal": {...} | null, "collect": bool, "pilot": bool,
                       "applied_by": {"policy", "generation", "time"}}  (the last two: when set)
    lock              flock'ed while a writer reads, increments and writes desired.json
    pilot.lock        flock'ed by the process elected to steer towards a goal
    autopilot.json    what that process measured, chose and why
    procs/KEY.json    what one process applied: pid, generation, thresholds, frozen, time
    procs/KEY.lock    flock'ed by that process for as long as it lives

Every file is replaced atomically (write a temporary file, ``os.replace``), so
a reader sees the old or the new content, never half of it.

A process is alive while it holds its ``KEY.lock``: the kernel drops an
``flock`` when its owner dies, however it dies. Unlike ``os.kill(pid, 0)`` this
works across PID namespaces (a sidecar container reading an app container's
records through a shared volume) and is not fooled by a reused pid; the key
is the pid plus random bits, as two containers can run the same pid. ``flock``
(not ``fcntl`` record locks) because closing another descriptor of the same
file does not release it.

POSIX only, like the servers it serves.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.core.applied_by import AppliedBy, parse_applied_by
from gctuner.core.settings import Settings, parse_settings

DESIRED = "desired.json"
LOCK = "lock"
PROCS = "procs"
PILOT_LOCK = "pilot.lock"
AUTOPILOT = "autopilot.json"

MAX_AUTOPILOT_BYTES = 256 * 1024
"""``autopilot.json`` is a few KiB; a larger one is not ours and is not read."""


class StateDirError(OSError):
    """The state directory cannot be used; the message says what to change."""


def default_state_dir() -> Path:
    """``<tmp>/gctuner-<process group>``: shared by every process of one server.

    The workers of a gunicorn or uWSGI master (and multiprocessing children)
    inherit its process group; each Kubernetes container has its own ``/tmp``,
    and our local kubelet starts each pod in its own session. Unrelated apps on
    one host therefore never share a directory by accident.
    """
    return Path(tempfile.gettempdir()) / f"gctuner-{os.getpgrp()}"


@dataclasses.dataclass(frozen=True)
class Desired:
    """What every process of the pod should apply; ``settings=None`` restores
    each process's startup defaults."""

    generation: int
    settings: Settings | None
    time: str | None = None
    goal: Goal | None = None
    """Set in ``mode: Auto``: the elected process steers ``settings`` towards it."""

    collect: bool = False
    """Run a collection on applying this generation (the autopilot, near its memory budget)."""

    pilot: bool = False
    """Published by the autopilot (not by a client): a client's goal still stands."""

    applied_by: AppliedBy | None = None
    """Which policy and generation asked for this (the operator's push), and when."""

    def to_json(self) -> dict[str, Any]:
        settings = None if self.settings is None else self.settings.to_json()
        data: dict[str, Any] = {"generation": self.generation, "settings": settings, "time": self.time}
        if self.goal is not None:  # only what an Auto policy adds: a Static pod's file stays as it was
            data.update(goal=self.goal.to_json(), collect=self.collect, pilot=self.pilot)
        if self.applied_by is not None:
            data["applied_by"] = self.applied_by.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Desired:
        """Validate what was read from disk; raise ``ValueError`` if it is not ours."""
        generation = data.get("generation") if isinstance(data, dict) else None
        if type(generation) is not int or generation < 0:
            raise ValueError(f"{DESIRED} has no valid generation")
        settings = data.get("settings")
        time = data.get("time")
        goal = data.get("goal")
        try:
            applied_by = None if data.get("applied_by") is None else parse_applied_by(data["applied_by"])
        except ValueError:  # informational: a bad record is dropped, the settings still count
            applied_by = None
        return cls(
            generation,
            None if settings is None else parse_settings(settings),
            time if isinstance(time, str) else None,
            None if goal is None else parse_goal(goal),
            data.get("collect") is True,
            data.get("pilot") is True,
            applied_by,
        )


@dataclasses.dataclass(frozen=True)
class Slot:
    """One process's place in ``procs/``: its key and the descriptor holding its lock."""

    key: str
    fd: int


class StateDir:
    """Read and write the shared state under ``path``.

    ``private=True`` is for the default directory under the world-writable
    temporary directory: it is created mode 0700 and refused unless this user
    owns it and nobody else can write to it, so another local user cannot
    plant settings. An explicit directory (a volume shared with a sidecar,
    perhaps under another uid) is trusted as configured.
    """

    def __init__(self, path: str | os.PathLike[str], *, private: bool = False) -> None:
        self.path = Path(path)
        self.private = private
        self._procs = self.path / PROCS

    def ensure(self) -> None:
        """Create the directory if needed, and check it when it is private."""
        if self.private:
            try:
                os.mkdir(self.path, 0o700)
            except FileExistsError:
                pass
            info = os.lstat(self.path)
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
                raise StateDirError(
                    f"{self.path} is not a directory owned by this user; "
                    "remove it or set GCTUNER_STATE_DIR"
                )
            if info.st_mode & 0o022:
                raise StateDirError(
                    f"{self.path} is writable by other users; "
                    "remove it or set GCTUNER_STATE_DIR"
                )
        self._procs.mkdir(parents=True, exist_ok=True)

    def signature(self) -> tuple[int, int, int] | None:
        """Changes whenever ``desired.json`` is replaced; one ``stat`` call."""
        try:
            info = os.stat(self.path / DESIRED)
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def read_desired(self) -> Desired | None:
        """The desired state, or None if nothing was ever published here."""
        try:
            data = (self.path / DESIRED).read_bytes()
        except FileNotFoundError:
            return None
        return Desired.from_json(json.loads(data))

    def publish(
        self,
        settings: Settings | None,
        time: str,
        *,
        goal: Goal | None = None,
        collect: bool = False,
        pilot: bool = False,
        expect: int | None = None,
        applied_by: AppliedBy | None = None,
    ) -> Desired | None:
        """Write the next generation; the lock orders concurrent writers.

        ``expect``: publish only if the current generation is still this one,
        else return None; the autopilot decides on what it read and must not
        overwrite a client's change made meanwhile. ``applied_by``: who asks,
        stamped with ``time``; the autopilot's own steps keep the client's.
        """
        self.ensure()
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = self.read_desired()
            except ValueError:  # hand-edited into garbage: start over
                current = None
            if expect is not None and (0 if current is None else current.generation) != expect:
                return None
            generation = 1 if current is None else current.generation + 1
            if pilot:
                applied_by = None if current is None else current.applied_by
            elif applied_by is not None:
                applied_by = dataclasses.replace(applied_by, time=time)
            desired = Desired(generation, settings, time, goal, collect, pilot, applied_by)
            _write_json(self.path / DESIRED, desired.to_json())
            return desired
        finally:
            os.close(fd)  # releases the flock

    def lock_pilot(self) -> int | None:
        """Try to become the pod's autopilot: a descriptor holding ``pilot.lock``,
        or None if another live process holds it. The kernel drops the lock
        when its holder dies, so another process takes over at its next try."""
        self.ensure()
        fd = os.open(self.path / PILOT_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def write_autopilot(self, data: dict[str, Any]) -> None:
        _write_json(self.path / AUTOPILOT, data)

    def read_autopilot(self) -> dict[str, Any] | None:
        """What the autopilot last reported, or None (never ran, or not ours)."""
        try:
            with open(self.path / AUTOPILOT, "rb") as file:
                data = file.read(MAX_AUTOPILOT_BYTES + 1)
            value = json.loads(data) if len(data) <= MAX_AUTOPILOT_BYTES else None
        except (OSError, ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def register(self) -> Slot:
        """Take a new slot; it counts as alive until the process dies or releases it."""
        self.ensure()
        key = f"{os.getpid()}-{secrets.token_hex(4)}"
        fd = os.open(self._procs / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never contended
        return Slot(key, fd)

    def is_registered(self, slot: Slot) -> bool:
        """False if the directory was wiped under us (then register again)."""
        return (self._procs / f"{slot.key}.lock").exists()

    def write_record(self, slot: Slot, record: dict[str, Any]) -> None:
        _write_json(self._procs / f"{slot.key}.json", record)

    def release(self, slot: Slot) -> None:
        """Leave: remove the slot's files and drop its lock."""
        self._remove(slot.key)
        os.close(slot.fd)

    def records(self) -> list[dict[str, Any]]:
        """The records of the live processes, sorted by pid; dead ones are removed."""
        found = []
        for path in self._procs.glob("*.json"):
            key = path.name[: -len(".json")]
            if not self._alive(key):
                self._remove(key)
                continue
            try:
                record = json.loads(path.read_bytes())
            except (FileNotFoundError, ValueError):
                continue  # released meanwhile, or not ours
            if isinstance(record, dict) and type(record.get("pid")) is int:
                found.append(record)
        return sorted(found, key=lambda record: int(record["pid"]))

    def _alive(self, key: str) -> bool:
        try:
            fd = os.open(self._procs / f"{key}.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _remove(self, key: str) -> None:
        for suffix in (".json", ".lock"):
            try:
                os.unlink(self._procs / f"{key}{suffix}")
            except FileNotFoundError:
                pass


def _write_json(path: Path, data: Any) -> None:
    """Replace ``path`` atomically; the temporary name is unique per thread."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        temporary.write_text(json.dumps(data, separators=(",", ":")))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
