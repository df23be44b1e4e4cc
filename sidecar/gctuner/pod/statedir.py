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

Nobody else is trusted with it (another local user, a file planted in it):

- the directory (and ``procs/``) must be a real directory, not a symbolic
  link, owned by this user and writable by nobody else; or, for a volume
  shared by containers that run as different users, *group-shared*: mode
  ``2770`` (setgid, group-writable) with a group this process is in, whose
  files are then ``0660`` whatever the umask (the other user opens the locks
  read-write). Never writable by every user. :meth:`StateDir.ensure` refuses
  anything else with a :class:`StateDirError` saying what to change;
- every file is opened with ``O_NOFOLLOW`` and ``O_NONBLOCK``, must be a
  regular file, and is read up to a size bound: a symbolic link, a FIFO,
  ``/dev/zero``, a huge or deeply nested file is "not ours"
  (:class:`StateFileError`, a ``ValueError``), never a hang, a
  ``RecursionError`` or a ``MemoryError``;
- temporary files get a random name and ``O_CREAT | O_EXCL | O_NOFOLLOW``;
- generations never go back: ``generation`` keeps the highest one published
  here, so losing or damaging ``desired.json`` cannot make a POST re-use a
  generation the processes already hold; each publish also carries a random
  ``id``, and a process applies any desired state whose ``(generation, id)``
  is not the one it applied.

POSIX only, like the servers it serves.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time as _time
from pathlib import Path
from typing import Any

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.core.applied_by import AppliedBy, parse_applied_by
from gctuner.core.settings import Settings, parse_settings

DESIRED = "desired.json"
GENERATION = "generation"
LOCK = "lock"
PROCS = "procs"
PILOT_LOCK = "pilot.lock"
AUTOPILOT = "autopilot.json"

MAX_DESIRED_BYTES = 64 * 1024
"""``desired.json`` is a few hundred bytes; a larger one is not ours."""

MAX_RECORD_BYTES = 1024 * 1024
"""A process's record (its statistics and pause histograms) is a few KiB."""

MAX_AUTOPILOT_BYTES = 256 * 1024
"""``autopilot.json`` is a few KiB; a larger one is not ours and is not read."""

MAX_RECORDS = 4096
"""More files than this in ``procs/`` are not read (nobody runs that many workers)."""

LOCK_SECONDS = 5.0
"""A writer waits this long for ``lock``, then gives up with an error (never hangs)."""

_KEY = re.compile(r"[0-9]+-[0-9a-f]{8}")
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}  # O_NOFOLLOW on a link: Linux, the BSDs


class StateDirError(OSError):
    """The state directory cannot be used; the message says what to change."""


class StateFileError(ValueError):
    """A file in the state directory is not one we wrote: a link, not a
    regular file, too large, not JSON. Read as "no such state"."""


def default_state_dir() -> Path:
    """One directory per server, private to this user: ``<base>/gctuner-<uid>-<server>``.

    ``<base>`` is ``$XDG_RUNTIME_DIR`` when it is a private directory of this
    user, else the temporary directory. ``<server>`` names the server's
    process by its pid and start time: a worker of a gunicorn or uWSGI master
    or a multiprocessing child (a process whose parent runs the same
    executable in the same process group) uses its parent's, any other
    process its own. So the workers of one server share a directory, two
    servers started from one shell do not, and a restarted server never
    finds the state of the one before (whose pid it may have).
    """
    base = Path(tempfile.gettempdir())
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        try:
            info = os.lstat(runtime)
        except OSError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() \
                and not info.st_mode & 0o077:  # fmt: skip
            base = Path(runtime)
    pid, start = server_process()
    return base / f"gctuner-{os.geteuid()}-{pid}-{start}"


def server_process() -> tuple[int, str]:
    """The pid and start time of the process whose server this one belongs to."""
    pid = os.getpid()
    parent = os.getppid()
    # The parent may be pid 1: a container's server (gunicorn as its entry
    # point). The host's init runs another executable, so it never matches.
    if parent > 0 and _exe(parent) is not None and _exe(parent) == _exe(pid):
        try:
            if os.getpgid(parent) == os.getpgrp():
                pid = parent
        except OSError:
            pass
    start = _start_time(pid)
    if start is None:  # no /proc (not Linux): the process group, as before
        return os.getpgrp(), "0"
    return pid, start


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """Field 22 of ``/proc/PID/stat``: clock ticks after boot (a reused pid differs)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read(4096)
    except OSError:
        return None
    fields = data.rpartition(b")")[2].split()
    return fields[19].decode() if len(fields) > 19 else None


_DEFAULT_NAME = re.compile(r"gctuner-([0-9]+)-([0-9]+)-([0-9]+)")


def sweep_stale(base: Path) -> None:
    """Remove this user's default directories whose server is gone (a pid
    that no longer runs, or runs a process started at another time): those
    a server left because its master runs no gctuner code, or it died."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        match = _DEFAULT_NAME.fullmatch(name)
        if match is None or int(match[1]) != os.geteuid() or match[3] == "0":
            continue
        if _start_time(int(match[2])) == match[3]:
            continue  # its server still runs
        stale = StateDir(base / name)
        try:
            info = os.lstat(stale.path)
        except OSError:
            continue
        if info.st_uid == os.geteuid() and directory_problem(info) is None:
            stale.remove()


def directory_problem(info: os.stat_result) -> str | None:
    """Why a directory (as ``lstat`` saw it) may not hold our state, or None."""
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(mode):
        return "is not a directory"
    if mode & 0o002:
        return "is writable by every user"
    group_shared = bool(mode & stat.S_ISGID) and info.st_gid in _our_groups()
    if mode & 0o020 and not group_shared:
        return (
            "is writable by its group without being group-shared "
            "(mode 2770, setgid, with a group of this process)"
        )
    if info.st_uid != os.geteuid() and not (group_shared and mode & 0o070 == 0o070):
        return (
            f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()}), "
            "and not group-shared with it (mode 2770, setgid, with a group of this process)"
        )
    return None


def _our_groups() -> set[int]:
    return {os.getegid(), *os.getgroups()}


def read_bounded(path: Path, limit: int) -> bytes | None:
    """The content of the regular file ``path``, or None if there is none.

    Never follows a symbolic link, never blocks (a FIFO), never reads more
    than ``limit`` bytes (``/dev/zero``); raises :class:`StateFileError` for
    anything but a regular file of at most ``limit`` bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno in _LINK_ERRNOS:
            raise StateFileError(f"{path.name} is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StateFileError(f"{path.name} is not a regular file")
        if info.st_size > limit:
            raise StateFileError(f"{path.name} is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise StateFileError(f"{path.name} is larger than {limit} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def load_json(data: bytes, name: str) -> Any:
    """``json.loads`` whose every failure (deep nesting, memory) is a :class:`StateFileError`."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError, MemoryError) as error:
        raise StateFileError(f"{name} is not valid JSON ({type(error).__name__})") from None


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

    id: str | None = None
    """Random per publish: a file replaced by another with the same generation
    (a lost directory, a hand edit) is still a new desired state."""

    applied_by: AppliedBy | None = None
    """Which policy and generation asked for this (the operator's push), and when."""

    @property
    def key(self) -> tuple[int, str | None]:
        """What a process compares with what it applied."""
        return (self.generation, self.id)

    def to_json(self) -> dict[str, Any]:
        settings = None if self.settings is None else self.settings.to_json()
        data: dict[str, Any] = {"generation": self.generation, "settings": settings, "time": self.time}
        if self.id is not None:
            data["id"] = self.id
        if self.goal is not None:  # only what an Auto policy adds: a Static pod's file stays as it was
            data.update(goal=self.goal.to_json(), collect=self.collect, pilot=self.pilot)
        if self.applied_by is not None:
            data["applied_by"] = self.applied_by.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> Desired:
        """Validate what was read from disk; raise ``ValueError`` if it is not ours."""
        generation = _generation_of(data)
        if generation is None:
            raise StateFileError(f"{DESIRED} has no valid generation")
        settings = data.get("settings")
        time = data.get("time")
        goal = data.get("goal")
        ident = data.get("id")
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
            ident if isinstance(ident, str) and len(ident) <= 64 else None,
            applied_by,
        )


def _generation_of(data: Any) -> int | None:
    generation = data.get("generation") if isinstance(data, dict) else None
    return generation if type(generation) is int and generation >= 0 else None


@dataclasses.dataclass(frozen=True)
class Slot:
    """One process's place in ``procs/``: its key and the descriptor holding its lock."""

    key: str
    fd: int


class StateDir:
    """Read and write the shared state under ``path``.

    Every directory is checked (see the module's rules), explicit or the
    default. ``private=True`` marks the default directory of
    :func:`default_state_dir`; :meth:`remove` deletes it when its server
    exits.
    """

    def __init__(self, path: str | os.PathLike[str], *, private: bool = False) -> None:
        self.path = Path(path)
        self.private = private
        self._procs = self.path / PROCS
        self._highest = 0  # the highest generation this process saw here: a floor that survives the files

    # --- the directory -------------------------------------------------------

    def ensure(self) -> None:
        """Create the directory if needed (mode 0700), and check it and ``procs/``."""
        if not self.path.parent.is_dir():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.private and not os.path.lexists(self.path):
            sweep_stale(self.path.parent)
        shared = self._check(self.path, create=0o700)
        self._check(self._procs, create=0o2770 if shared else 0o700)

    def check(self) -> None:
        """Check the directory as it is, creating nothing."""
        self._check(self.path, create=None)

    def _check(self, path: Path, create: int | None) -> bool:
        """Check one directory; True if it is group-shared."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            if create is None:
                raise
            try:
                os.mkdir(path, 0o700)
                if create != 0o700:
                    os.chmod(path, create)  # after mkdir: the umask would take the group's bits
            except FileExistsError:
                pass
            info = os.lstat(path)
        problem = directory_problem(info)
        if problem is not None:
            raise StateDirError(
                f"the gctuner state directory {path} {problem}: it is refused, "
                "as another user could change the settings through it; "
                "remove it, or use a directory of this user (mode 0700) "
                "or a group-shared one (mode 2770)"
            )
        return bool(info.st_mode & stat.S_ISGID and info.st_mode & 0o020)

    def _file_mode(self) -> int:
        """0600, or 0660 in a group-shared directory (the other user reads and locks)."""
        try:
            mode = os.lstat(self.path).st_mode
        except OSError:
            return 0o600
        return 0o660 if mode & stat.S_ISGID and mode & 0o020 else 0o600

    def remove(self) -> None:
        """Delete the directory and everything in it (a server's default one, at exit)."""
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if directory_problem(info) is None:
            shutil.rmtree(self.path, ignore_errors=True)  # never follows links (fd-based on Linux)

    # --- the desired state ---------------------------------------------------

    def signature(self) -> tuple[int, int, int] | None:
        """Changes whenever ``desired.json`` is replaced; one ``lstat`` call."""
        try:
            info = os.lstat(self.path / DESIRED)
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def read_desired(self) -> Desired | None:
        """The desired state, or None if nothing was ever published here.
        Raises ``ValueError`` (:class:`StateFileError` or invalid settings)
        if the file is not ours; never hangs, never reads more than
        :data:`MAX_DESIRED_BYTES`."""
        data = read_bounded(self.path / DESIRED, MAX_DESIRED_BYTES)
        if data is None:
            return None
        desired = Desired.from_json(load_json(data, DESIRED))
        self._highest = max(self._highest, desired.generation)
        return desired

    def floor(self) -> int:
        """The highest generation known to have been published here: from
        ``generation``, ``desired.json`` (even one with bad settings), the
        live processes' records and this process's memory."""
        highest = self._highest
        for name in (GENERATION, DESIRED):
            try:
                data = read_bounded(self.path / name, MAX_DESIRED_BYTES)
                value = None if data is None else load_json(data, name)
            except (OSError, ValueError):
                continue
            found = value if name == GENERATION else _generation_of(value)
            if type(found) is int and found >= 0:
                highest = max(highest, found)
        for record in self.records():
            found = record.get("generation")
            if type(found) is int:
                highest = max(highest, found)
        return highest

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

        The next generation is one more than :meth:`floor`, so a lost or
        damaged ``desired.json`` never makes a generation count twice.
        ``expect``: publish only if the current generation is still this one,
        else return None; the autopilot decides on what it read and must not
        overwrite a client's change made meanwhile. ``applied_by``: who asks,
        stamped with ``time``; the autopilot's own steps keep the client's.
        """
        self.ensure()
        fd = self._open_lock(self.path / LOCK)
        try:
            self._flock(fd)
            try:
                current = self.read_desired()
            except ValueError:  # hand-edited into garbage, planted: replaced below
                current = None
            if expect is not None and (0 if current is None else current.generation) != expect:
                return None
            generation = self.floor() + 1
            if pilot:
                applied_by = None if current is None else current.applied_by
            elif applied_by is not None:
                applied_by = dataclasses.replace(applied_by, time=time)
            desired = Desired(generation, settings, time, goal, collect, pilot, secrets.token_hex(8), applied_by)
            self._write_json(self.path / GENERATION, generation)
            self._write_json(self.path / DESIRED, desired.to_json())
            self._highest = generation
            return desired
        finally:
            os.close(fd)  # releases the flock

    def _open_lock(self, path: Path) -> int:
        """A lock file, created if needed; never through a link, never a FIFO.

        Opened read-write by whoever writes (the sidecar's POST, the app's
        autopilot): in a group-shared directory the other user must be able
        to, whichever of them created it."""
        mode = self._file_mode()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | _OPEN_FLAGS, mode)
        except OSError as error:
            if error.errno in _LINK_ERRNOS:
                raise StateDirError(f"{path} is a symbolic link: remove it") from None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise StateDirError(f"{path} is not a regular file: remove it")
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != mode:
            os.fchmod(fd, mode)  # what the umask took (0640 would lock the group out)
        return fd

    def _flock(self, fd: int) -> None:
        deadline = _time.monotonic() + LOCK_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if _time.monotonic() >= deadline:
                    raise StateDirError(
                        f"{self.path / LOCK} has been locked by another process for {LOCK_SECONDS:g} s"
                    ) from None
                _time.sleep(0.005)

    # --- the autopilot ---------------------------------------------------------

    def lock_pilot(self) -> int | None:
        """Try to become the pod's autopilot: a descriptor holding ``pilot.lock``,
        or None if another live process holds it. The kernel drops the lock
        when its holder dies, so another process takes over at its next try."""
        self.ensure()
        fd = self._open_lock(self.path / PILOT_LOCK)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def write_autopilot(self, data: dict[str, Any]) -> None:
        self._write_json(self.path / AUTOPILOT, data)

    def read_autopilot(self) -> dict[str, Any] | None:
        """What the autopilot last reported, or None (never ran, or not ours)."""
        try:
            data = read_bounded(self.path / AUTOPILOT, MAX_AUTOPILOT_BYTES)
            value = None if data is None else load_json(data, AUTOPILOT)
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    # --- the processes -----------------------------------------------------------

    def register(self) -> Slot:
        """Take a new slot; it counts as alive until the process dies or releases it."""
        self.ensure()
        key = f"{os.getpid()}-{secrets.token_hex(4)}"
        mode = self._file_mode()
        fd = os.open(self._procs / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, mode)
        os.fchmod(fd, mode)  # what the umask took: the files of a group-shared directory are 0660
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: never contended
        return Slot(key, fd)

    def is_registered(self, slot: Slot) -> bool:
        """False if the directory was wiped under us (then register again)."""
        try:
            return stat.S_ISREG(os.lstat(self._procs / f"{slot.key}.lock").st_mode)
        except FileNotFoundError:
            return False

    def write_record(self, slot: Slot, record: dict[str, Any]) -> None:
        self._write_json(self._procs / f"{slot.key}.json", record)

    def release(self, slot: Slot) -> None:
        """Leave: remove the slot's files and drop its lock."""
        self._remove(slot.key)
        os.close(slot.fd)

    def records(self) -> list[dict[str, Any]]:
        """The records of the live processes, sorted by pid; dead ones are removed.
        Files that are not ours (links, odd names, too large, not JSON) are skipped."""
        try:
            info = os.lstat(self._procs)
        except FileNotFoundError:
            return []
        if directory_problem(info) is not None:
            return []
        found = []
        try:
            entries = [entry.name for _, entry in zip(range(MAX_RECORDS), os.scandir(self._procs))]
        except OSError:
            return []
        for name in entries:
            key = name[: -len(".json")]
            if not name.endswith(".json") or not _KEY.fullmatch(key):
                continue
            if not self._alive(key):
                self._remove(key)
                continue
            try:
                data = read_bounded(self._procs / name, MAX_RECORD_BYTES)
                record = None if data is None else load_json(data, name)
            except (OSError, ValueError):
                continue  # released meanwhile, or not ours
            if isinstance(record, dict) and type(record.get("pid")) is int:
                found.append(record)
        return sorted(found, key=lambda record: int(record["pid"]))

    def _alive(self, key: str) -> bool:
        try:
            fd = os.open(self._procs / f"{key}.lock", os.O_RDONLY | _OPEN_FLAGS)
        except OSError:
            return False  # gone, or a link: not a live process of ours
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return False
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
        return False

    def _remove(self, key: str) -> None:
        for suffix in (".json", ".lock"):
            try:
                os.unlink(self._procs / f"{key}{suffix}")
            except FileNotFoundError:
                pass

    def _write_json(self, path: Path, data: Any) -> None:
        """Replace ``path`` atomically through a new file of a random name
        (``O_EXCL | O_NOFOLLOW``: a link planted at that name is never written through)."""
        content = json.dumps(data, separators=(",", ":")).encode()
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        mode = self._file_mode()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN_FLAGS, mode)
        try:
            try:
                os.fchmod(fd, mode)  # what the umask took
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except BaseException:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
            raise
