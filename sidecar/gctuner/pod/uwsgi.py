"""What the agent needs from uWSGI, when it runs inside one.

uWSGI loads the app in its first process, then forks the workers without
running Python's at-fork hooks (unless ``--py-call-osafterfork``), so a
follower started at import would never re-join in the workers. uWSGI offers
its own post-fork hook instead; this module uses it, and tells the agent when
it runs in the master, which serves no request and so should not count.

Outside uWSGI every function here does nothing: the ``uwsgi`` module exists
only inside the server, which has imported it before it loads any app.
``--enable-threads`` is required, or the follower thread never runs.
"""

from __future__ import annotations

import sys
from typing import Callable, Protocol, cast


class _Server(Protocol):
    """What we use of the ``uwsgi`` module, which the server builds in (no stubs)."""

    post_fork_hook: Callable[[], None]

    def worker_id(self) -> int: ...

    def masterpid(self) -> int: ...


OSAFTERFORK = "py-call-osafterfork"
FOLLOW_PROBLEM = (
    "this process is the uWSGI master: it follows, yet serves no request, and "
    "the workers it forks never run Python's at-fork hooks, so they never follow; "
    f"start uWSGI with --{OSAFTERFORK} (and --enable-threads)"
)


def _server() -> _Server | None:
    module = sys.modules.get("uwsgi")
    return cast("_Server", module) if hasattr(module, "worker_id") else None


def in_master() -> bool:
    """True in the process that loads the app before forking the workers
    (it becomes worker 1 when uWSGI runs without ``--master``)."""
    server = _server()
    return server is not None and server.worker_id() == 0


def calls_python_after_fork(server: object) -> bool:
    """True if uWSGI runs Python's at-fork hooks in its workers (``--py-call-osafterfork``)."""
    options = getattr(server, "opt", None)
    if not isinstance(options, dict):
        return False
    value = options.get(OSAFTERFORK, options.get(OSAFTERFORK.encode()))
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


def follow_problem() -> str | None:
    """Why this process's record must not count as applied, or None.

    A process that started following before uWSGI made its module (the
    sidecar's ``sitecustomize``, at interpreter start) did not step aside in
    the master; without ``--py-call-osafterfork`` its workers never re-join,
    and the master alone would answer "1 of 1 applied".
    """
    server = _server()
    if server is None or server.worker_id() != 0 or calls_python_after_fork(server):
        return None
    return FOLLOW_PROBLEM


def after_fork(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every worker once it is forked (and respawned).

    With a master, through ``uwsgidecorators.postfork``, the chain apps use
    too (its import would replace a hook set by hand); without one, or where
    the distribution ships uWSGI without that module, by chaining
    ``uwsgi.post_fork_hook`` directly.
    """
    server = _server()
    if server is None:
        return
    if server.masterpid():
        try:
            from uwsgidecorators import postfork
        except ImportError:
            pass
        else:
            postfork(callback)
            return
    previous: Callable[[], None] | None = getattr(server, "post_fork_hook", None)

    def hook() -> None:
        callback()
        if previous is not None:
            previous()

    server.post_fork_hook = hook
