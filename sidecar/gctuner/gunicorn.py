"""gunicorn server hooks: ``gunicorn -c python:gctuner.gunicorn app:app``.

``-c`` names one configuration, so it would replace the app's own
``gunicorn.conf.py`` (which gunicorn reads only when no ``-c`` is given).
Given as ``-c python:gctuner.gunicorn`` (on the command line or in
``GUNICORN_CMD_ARGS``), this module therefore reads ``./gunicorn.conf.py``
itself when there is one: its settings (``workers``, ``bind``, ...) apply, its
other hooks stay, and its ``when_ready``, ``pre_fork`` and ``post_worker_init``
run first, then ours.

Or keep your own ``-c``, and in your configuration::

    from gctuner.gunicorn import *  # when_ready, pre_fork, post_worker_init

(if you define hooks of those names, call ``gctuner.gunicorn.pre_fork(server,
worker)`` and the others from them).

- Every worker follows the shared state once it has loaded the app, so an
  app with no gctuner code in it is tuned too (the route can then come from
  the sidecar), and a worker re-spawned after ``--max-requests`` starts with
  the current settings.
- The master serves no request, so it does not count as one of the pod's
  processes, even when ``--preload`` made it create the app's endpoint.
- With ``GCTUNER_FREEZE_AFTER_PRELOAD=1`` and ``--preload``, the
  copy-on-write recipe of CPython's ``gc.freeze`` documentation: the
  collector is disabled as soon as gunicorn reads this configuration (before
  the master imports the app, so no collection frees holes in pages the
  workers will share), everything is frozen right before each fork, and the
  collector is enabled again just before it, so the worker starts with it on. Frozen objects are never
  scanned again, so a worker's collections no longer write to the pages it
  shares with the master.

Configuration comes from the environment (:data:`gctuner.core.config.NAMES`).
"""

from __future__ import annotations

import gc
import os
import runpy
import shlex
import sys
from collections.abc import Sequence
from typing import Any, Callable

from gctuner.core.config import Config
from gctuner.pod import agent

__all__ = ["post_worker_init", "pre_fork", "when_ready"]


def _freezing() -> bool:
    return Config.from_env().freeze_after_preload


def when_ready(server: Any) -> None:
    """Master, listening, before the first fork: leave the count to the workers."""
    agent.step_aside()


def pre_fork(server: Any, worker: Any) -> None:
    """Master, right before each fork: freeze what the worker will share."""
    if _freezing():
        if server.cfg.preload_app:
            gc.freeze()
        gc.enable()  # in the worker, and in the master: its later garbage is its own


def post_worker_init(worker: Any) -> None:
    """Worker, app loaded: follow (after the app, so that thresholds it sets
    at import are its startup defaults, which a DELETE restores)."""
    agent.follow_config()


HOOKS = ("when_ready", "pre_fork", "post_worker_init")
APP_CONFIG = "gunicorn.conf.py"
"""The app's own configuration, where gunicorn looks for it: the working directory."""
SELF = "python:gctuner.gunicorn"


def named_as_config(argv: Sequence[str], cmd_args: str) -> bool:
    """Is this module gunicorn's ``-c`` (``GUNICORN_CMD_ARGS`` first, then
    the command line, as gunicorn reads them; the last one wins)?"""
    named = None
    words = [*shlex.split(cmd_args), *argv]
    for index, word in enumerate(words):
        if word in ("-c", "--config") and index + 1 < len(words):
            named = words[index + 1]
        elif word.startswith("--config="):
            named = word[len("--config="):]
        elif word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            named = word[2:]
    return named == SELF


def compose(app_config: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The app's settings and hooks, with ours chained after its hooks of the same names."""
    composed = {name: value for name, value in app_config.items() if not name.startswith("_")}
    for name in HOOKS:
        mine, theirs = ours[name], app_config.get(name)
        composed[name] = mine if theirs is None or theirs is mine else _chain(theirs, mine)
    return composed


def _chain(first: Callable[..., Any], then: Callable[..., Any]) -> Callable[..., None]:
    """``first`` then ``then``, taking as many arguments as gunicorn checks a hook takes."""
    if then is pre_fork:
        def hook2(server: Any, worker: Any) -> None:
            first(server, worker)
            then(server, worker)

        return hook2

    def hook(server_or_worker: Any) -> None:
        first(server_or_worker)
        then(server_or_worker)

    return hook


def _load_app_config() -> None:
    path = os.path.join(os.getcwd(), APP_CONFIG)
    if not named_as_config(sys.argv[1:], os.environ.get("GUNICORN_CMD_ARGS", "")) or not os.path.isfile(path):
        return
    app_config = runpy.run_path(path, run_name="__config__")  # as gunicorn runs it
    globals().update(compose(app_config, {name: globals()[name] for name in HOOKS}))


if _freezing():
    gc.disable()  # gunicorn reads this module before --preload imports the app
_load_app_config()
