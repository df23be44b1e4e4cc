"""The operator's settings: typed, defaulted, documented, read once at startup.

Read in the startup handler (not at import time), so environment overrides
set in the Deployment always reach them. Every field has one environment
variable, named in ``ENVIRONMENT``; command-line flags arrive as overrides
(``from_env(overrides=...)``), never by editing ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting that cannot work; the message names the variable and what it needs."""


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
    """First retry delay after a failed push; doubles per attempt (jittered)."""

    retry_max: float = 60.0
    """Upper bound of every retry delay, and the delay of a push the agent refused (4xx)."""

    telemetry_interval: float = 60.0
    """Seconds between reads of every governed pod's measurements (GC time,
    pauses, what its autopilot chose) for ``status.telemetry``, the
    recommendation and GoalMet; a live check of a pod meanwhile counts as one."""

    telemetry_parallel: int = 8
    """Pods read for telemetry at the same time, on connections of their own:
    telemetry never takes a push's place."""

    status_interval: float = 0.5
    """Status is written at most this often per policy: once per rollout, not per pod."""

    release_timeout: float = 20.0
    """How long a deleted policy's finalizer waits for its pods to be handed
    over before it lets the deletion go on (the pods keep being retried)."""

    metrics_address: str | None = None
    """``HOST:PORT`` to serve Prometheus metrics on (e.g. ``0.0.0.0:9090``); none when unset."""

    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token for agents when a policy names no tokenSecretRef; never logged.
    Also read from the file that ``GCTUNER_TOKEN_FILE`` names."""

    def __post_init__(self) -> None:
        for name in ("verify_interval", "push_timeout", "retry_base", "retry_max", "status_interval", "max_parallel",
                     "telemetry_interval", "telemetry_parallel"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{ENVIRONMENT[name]} must be greater than 0, got {getattr(self, name)!r}")
        if self.release_timeout < 0:
            raise ConfigError(f"{ENVIRONMENT['release_timeout']} must not be negative, got {self.release_timeout!r}")
        if self.retry_base > self.retry_max:
            raise ConfigError(
                f"{ENVIRONMENT['retry_base']} ({self.retry_base:g}) must not exceed "
                f"{ENVIRONMENT['retry_max']} ({self.retry_max:g})"
            )
        if self.metrics_address is not None:
            self.metrics_bind  # noqa: B018  (validates)

    @property
    def metrics_bind(self) -> tuple[str, int] | None:
        """``metrics_address`` as (host, port); an empty host means every interface."""
        if self.metrics_address is None:
            return None
        host, _, port = self.metrics_address.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(
                f"{ENVIRONMENT['metrics_address']} (or --metrics) must be HOST:PORT such as 0.0.0.0:9090, "
                f"got {self.metrics_address!r}"
            )
        return (host or "0.0.0.0", int(port))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] = os.environ, overrides: Mapping[str, Any] | None = None
    ) -> OperatorConfig:
        """The ``ENVIRONMENT`` variables, then ``overrides`` (command-line flags) on top."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENVIRONMENT[f.name])
            if raw:
                values[f.name] = _convert(f.name, raw, type(f.default) if f.default is not None else str)
        if "token" not in values and environ.get(TOKEN_FILE):
            values["token"] = Path(environ[TOKEN_FILE]).read_text().strip() or None
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        return cls(**values)


ENVIRONMENT = {
    "verify_interval": "GCTUNER_VERIFY_INTERVAL",
    "push_timeout": "GCTUNER_PUSH_TIMEOUT",
    "max_parallel": "GCTUNER_MAX_PARALLEL",
    "retry_base": "GCTUNER_RETRY_BASE",
    "retry_max": "GCTUNER_RETRY_MAX",
    "telemetry_interval": "GCTUNER_TELEMETRY_INTERVAL",
    "telemetry_parallel": "GCTUNER_TELEMETRY_PARALLEL",
    "status_interval": "GCTUNER_STATUS_INTERVAL",
    "release_timeout": "GCTUNER_RELEASE_TIMEOUT",
    "metrics_address": "GCTUNER_METRICS_ADDRESS",
    "token": "GCTUNER_TOKEN",
}
"""Each field's environment variable: the one place these names are spelled."""

TOKEN_FILE = "GCTUNER_TOKEN_FILE"
"""A file holding the token (a mounted Secret), read when ``GCTUNER_TOKEN`` is unset."""


def _convert(name: str, raw: str, kind: type) -> Any:
    try:
        return kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number" if kind is float else "a string"
        raise ConfigError(f"{ENVIRONMENT[name]} must be {what}, got {raw!r}") from None
