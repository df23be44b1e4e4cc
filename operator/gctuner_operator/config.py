"""The operator's settings: typed, defaulted, documented, read once at startup.

Read in the startup handler (not at import time), so environment overrides
set in the Deployment always reach them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    verify_interval: float = 60.0
    """Seconds between live checks of every pod (GET /tune_gc): finds processes
    that restarted with the defaults or were changed by hand."""

    push_timeout: float = 5.0
    """Seconds one request to an agent may take, connect included; a slow pod
    never delays the others."""

    max_parallel: int = 64
    """Pods pushed or verified at the same time."""

    retry_base: float = 1.0
    """First retry delay after a failed push; doubles per attempt."""

    retry_max: float = 60.0
    """Upper bound of the retry delay."""

    status_interval: float = 0.5
    """Status is written at most this often per policy: once per rollout, not per pod."""

    release_timeout: float = 20.0
    """How long a deleted policy's finalizer waits for its pods to be handed
    over before it lets the deletion go on (the pods keep being retried)."""

    metrics_address: str | None = None
    """``HOST:PORT`` to serve Prometheus metrics on (e.g. ``0.0.0.0:9090``); none when unset."""

    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token for agents when a policy names no tokenSecretRef; never logged."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> OperatorConfig:
        """``GCTUNER_*`` variables; the token from GCTUNER_TOKEN or GCTUNER_TOKEN_FILE."""
        token = environ.get("GCTUNER_TOKEN")
        if not token and environ.get("GCTUNER_TOKEN_FILE"):
            token = Path(environ["GCTUNER_TOKEN_FILE"]).read_text().strip()
        return cls(
            verify_interval=float(environ.get("GCTUNER_VERIFY_INTERVAL", cls.verify_interval)),
            push_timeout=float(environ.get("GCTUNER_PUSH_TIMEOUT", cls.push_timeout)),
            max_parallel=int(environ.get("GCTUNER_MAX_PARALLEL", cls.max_parallel)),
            retry_base=float(environ.get("GCTUNER_RETRY_BASE", cls.retry_base)),
            retry_max=float(environ.get("GCTUNER_RETRY_MAX", cls.retry_max)),
            release_timeout=float(environ.get("GCTUNER_RELEASE_TIMEOUT", cls.release_timeout)),
            metrics_address=environ.get("GCTUNER_METRICS_ADDRESS") or None,
            token=token or None,
        )
