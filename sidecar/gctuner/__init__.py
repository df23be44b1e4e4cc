"""gctuner: tune CPython's garbage collector at runtime, in every process of a pod.

The public surface. Adapters live in their own modules so that importing
``gctuner`` imports no web framework nor prometheus_client:
``gctuner.flask.GCTuner``, ``gctuner.wsgi.GCTunerMiddleware``,
``gctuner.asgi.GCTunerMiddleware``, the ``gctuner.gunicorn`` hooks,
``gctuner.metrics.GCCollector``, and the ``gctuner`` command (``gctuner.cli``).
"""

from __future__ import annotations

from .agent import follow, follow_config, step_aside
from .config import NAMES, Config
from .endpoint import Request, Response, TuneEndpoint
from .pauses import PauseRecorder
from .publisher import Publisher
from .runtime import Flavour, GCRuntime
from .settings import MAX_THRESHOLD, InvalidSettings, Settings, parse_settings
from .shared import Rollout, SharedState
from .statedir import StateDir, StateDirError

__all__ = [
    "MAX_THRESHOLD",
    "NAMES",
    "Config",
    "Flavour",
    "GCRuntime",
    "InvalidSettings",
    "PauseRecorder",
    "Publisher",
    "Request",
    "Response",
    "Rollout",
    "Settings",
    "SharedState",
    "StateDir",
    "StateDirError",
    "TuneEndpoint",
    "follow",
    "follow_config",
    "parse_settings",
    "step_aside",
]
