"""The agent's per-process pieces, made on first use and re-made after fork.

A process has one collector, so it gets one :class:`GCRuntime` (whose startup
defaults must be captured once, before anything is applied), one pause
recorder (two would both run inside every collection) and one follower per
state directory, however many apps or middlewares in it use the agent.

A forked child (a gunicorn worker of a ``--preload`` master, a multiprocessing
child) inherits the parent's objects but not its threads: an
``os.register_at_fork`` hook, registered with the first follower, re-joins the
shared state as the new process. uWSGI runs that hook only with
``--py-call-osafterfork``, so under uWSGI its own post-fork hook does the same,
and its master, which serves no request, leaves the count to its workers.
Nothing happens at import time.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from pathlib import Path

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.core.config import NAMES, Config
from gctuner.core.pauses import PauseRecorder
from gctuner.core.runtime import GCRuntime
from gctuner.pod import uwsgi
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir, default_state_dir, server_process

log = logging.getLogger("gctuner")

_lock = threading.RLock()
_runtime: GCRuntime | None = None
_recorder: PauseRecorder | None = None
_members: dict[str, SharedState] = {}
_fork_hook_registered = False
_pid = os.getpid()


def process_runtime() -> GCRuntime:
    """This process's collector; its defaults are the thresholds at first call."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = GCRuntime()
        return _runtime


def process_recorder() -> PauseRecorder:
    """This process's pause recorder, installed on first use."""
    global _recorder
    with _lock:
        if _recorder is None:
            _recorder = PauseRecorder()
            _recorder.install()
        return _recorder


def follow(
    state_dir: str | os.PathLike[str] | None = None, *, recorder: PauseRecorder | None = None
) -> SharedState:
    """Make this process follow the shared state in ``state_dir``.

    Applies the current desired state now and keeps following it in a daemon
    thread; idempotent. ``None`` means :func:`default_state_dir`, one
    directory per server, private to this user, removed when the server's
    process exits cleanly. ``recorder`` adds this process's pause recording to
    what it reports. Raises ``OSError`` if the directory is unusable, so a
    misconfiguration shows at start-up, not at the first POST.
    """
    global _fork_hook_registered
    path = Path(state_dir) if state_dir is not None else default_state_dir()
    with _lock:
        key = os.path.abspath(path)
        member = _members.get(key)
        if member is None:
            member = SharedState(
                StateDir(path, private=state_dir is None), process_runtime()
            )
            _members[key] = member
            if state_dir is None and server_process()[0] == os.getpid():
                atexit.register(_remove_at_exit, member, os.getpid())
        if recorder is not None:
            member.recorder = recorder
        if not _fork_hook_registered:
            os.register_at_fork(after_in_child=_after_fork_in_child)
            uwsgi.after_fork(_after_fork_in_child)
            _fork_hook_registered = True
        if uwsgi.in_master():
            member.stop(children_follow=True)
            return member
        return member.start()


def follow_config(config: Config | None = None) -> SharedState:
    """Follow as configured (by the environment when ``config`` is None):
    the state directory, with pause recording unless it is switched off.
    What every adapter, the gunicorn hooks and the sidecar's
    ``sitecustomize`` call."""
    config = config if config is not None else Config.from_env()
    goal = goal_from_config(config)
    recorder = process_recorder() if config.record_pauses else None
    member = follow(config.state_dir, recorder=recorder)
    if goal is not None and member.desired() is None:
        member.steer(goal, timeout=0)  # the others find it published (or publish the same)
    return member


def goal_from_config(config: Config) -> Goal | None:
    """``GCTUNER_GOAL``, validated; a bad one stops the start with the reason."""
    if config.goal is None:
        return None
    try:
        return parse_goal(json.loads(config.goal))
    except (ValueError, RecursionError) as error:  # InvalidSettings is a ValueError
        raise ValueError(f"{NAMES['goal']} is not a valid goal: {error}") from None


def _remove_at_exit(member: SharedState, pid: int) -> None:
    """The server's own process leaves: its default directory goes with it
    (not in a forked worker, which inherits this handler)."""
    if os.getpid() != pid:
        return
    try:
        member.stop(timeout=0.5)
        member.state_dir.remove()
    except Exception as error:  # noqa: BLE001  (exiting anyway)
        log.warning("gctuner: cannot remove %s: %s", member.state_dir.path, error)


def step_aside() -> None:
    """This process stops counting as one of the pod's; the processes it
    forks from now on follow. For a server's master, which serves nothing."""
    with _lock:
        for member in _members.values():
            member.stop(children_follow=True)


def _after_fork_in_child() -> None:
    global _lock, _pid
    if _pid != os.getpid():  # not so when uWSGI starts worker 1 without forking
        _pid = os.getpid()
        _lock = threading.RLock()  # another thread may have held it during fork
    for member in _members.values():
        try:
            member.after_fork_in_child()
        except OSError as error:
            log.warning("gctuner: cannot follow %s after fork: %s", member.state_dir.path, error)
