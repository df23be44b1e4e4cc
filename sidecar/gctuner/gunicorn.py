"""gunicorn server hooks: ``gunicorn -c python:gctuner.gunicorn app:app``.

Or, in your own ``gunicorn.conf.py``::

    from gctuner.gunicorn import post_worker_init, pre_fork, when_ready

(calling them from your own hooks of the same names if you have some).

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
from typing import Any

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


if _freezing():
    gc.disable()  # gunicorn reads this module before --preload imports the app
