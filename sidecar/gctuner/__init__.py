"""gctuner: tune CPython's garbage collector at runtime, in every process of a pod.

The public surface. Adapters live in their own modules so that importing
``gctuner`` imports no web framework nor prometheus_client:
``gctuner.flask.GCTuner``, ``gctuner.wsgi.GCTunerMiddleware``,
``gctuner.asgi.GCTunerMiddleware``, the ``gctuner.gunicorn`` hooks,
``gctuner.metrics.GCCollector``, and the ``gctuner`` command (``gctuner.cli.main``).
"""

from __future__ import annotations

from gctuner.api.endpoint import Request, Response, TuneEndpoint
from gctuner.core.config import NAMES, Config
from gctuner.core.pauses import PauseRecorder
from gctuner.core.runtime import Flavour, GCRuntime
from gctuner.core.settings import MAX_THRESHOLD, InvalidSettings, Settings, parse_settings
from gctuner.pod.agent import follow, follow_config, step_aside
from gctuner.pod.publisher import Publisher
from gctuner.pod.shared import Rollout, SharedState
from gctuner.pod.statedir import StateDir, StateDirError

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
