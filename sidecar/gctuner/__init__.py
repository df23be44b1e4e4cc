"""gctuner: tune CPython's garbage collector at runtime, in every process of a pod.

The public surface. Adapters live in their own modules so that importing
``gctuner`` imports no web framework: ``gctuner.flask.GCTuner`` for Flask.
"""

from __future__ import annotations

from .agent import follow
from .config import NAMES, Config
from .endpoint import Request, Response, TuneEndpoint
from .pauses import PauseRecorder
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
    "Request",
    "Response",
    "Rollout",
    "Settings",
    "SharedState",
    "StateDir",
    "StateDirError",
    "TuneEndpoint",
    "follow",
    "parse_settings",
]
