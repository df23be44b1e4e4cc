"""The agent's configuration: typed fields, their defaults, and their names.

Every adapter reads the same names: environment variables for WSGI, ASGI and
the sidecar, the same keys in ``app.config`` for Flask. They are all in
:data:`NAMES`, so that there is one list to document and to grep for.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any

NAMES = {
    "token": "GCTUNER_TOKEN",
    "token_file": "GCTUNER_TOKEN_FILE",
    "allow_unauthenticated": "GCTUNER_ALLOW_UNAUTHENTICATED",
    "state_dir": "GCTUNER_STATE_DIR",
    "max_body_bytes": "GCTUNER_MAX_BODY_BYTES",
    "apply_timeout": "GCTUNER_APPLY_TIMEOUT",
    "record_pauses": "GCTUNER_RECORD_PAUSES",
    "path": "GCTUNER_PATH",
    "metrics": "GCTUNER_METRICS",
    "freeze_after_preload": "GCTUNER_FREEZE_AFTER_PRELOAD",
    "goal": "GCTUNER_GOAL",
}
"""Config field -> environment variable (and Flask config key)."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclasses.dataclass(frozen=True)
class Config:
    """How one agent endpoint behaves."""

    token: str | None = dataclasses.field(default=None, repr=False)
    """Bearer token that POST and DELETE must present (``GCTUNER_TOKEN``).
    When a token is configured it is always required. Kept out of ``repr``,
    so logging a Config never logs the token."""

    token_file: str | None = None
    """File holding the token, e.g. a mounted Secret (``GCTUNER_TOKEN_FILE``).
    Re-read whenever the file changes, so a rotated Secret applies without a
    restart. Takes precedence over ``token``."""

    allow_unauthenticated: bool = False
    """With no token configured, accept changes from anyone
    (``GCTUNER_ALLOW_UNAUTHENTICATED=1``): for local development only.
    Without it and without a token, changes are refused with 403."""

    state_dir: str | None = None
    """Directory shared by the processes of the pod (``GCTUNER_STATE_DIR``);
    default ``<tmp>/gctuner-<process group>``. Set it to a shared volume when
    the sidecar writes the state for an app container."""

    max_body_bytes: int = 4096
    """Larger request bodies are refused with 413 (``GCTUNER_MAX_BODY_BYTES``);
    a settings payload is a few dozen bytes."""

    apply_timeout: float = 2.0
    """Seconds a POST or DELETE waits for every process to apply the change
    (``GCTUNER_APPLY_TIMEOUT``); the answer then says how many did."""

    record_pauses: bool = True
    """Record GC collections and pause times via ``gc.callbacks``
    (``GCTUNER_RECORD_PAUSES``)."""

    path: str = "/tune_gc"
    """URL path of the endpoint (``GCTUNER_PATH``)."""

    metrics: bool = True
    """Serve ``GET /metrics`` when prometheus_client is installed
    (``GCTUNER_METRICS``). Switch it off when the app serves its own
    ``/metrics``, and register :class:`gctuner.metrics.GCCollector` there."""

    freeze_after_preload: bool = False
    """gunicorn hooks only (``GCTUNER_FREEZE_AFTER_PRELOAD``): with
    ``--preload``, keep the collector off while the master imports the app and
    ``gc.freeze()`` it before each fork, so the workers share its memory."""

    goal: str | None = None
    """An autopilot goal as JSON (``GCTUNER_GOAL``), e.g.
    ``{"gcTimePercent": 2, "memoryPercent": 80}``: a service steers its own
    collector without the operator. Published when the pod has no desired
    state yet, so a policy or a POST later takes precedence."""

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"{NAMES['max_body_bytes']} must be at least 1")
        if self.apply_timeout < 0:
            raise ValueError(f"{NAMES['apply_timeout']} must not be negative")
        if not self.path.startswith("/"):
            raise ValueError(f"{NAMES['path']} must start with '/', got {self.path!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Config:
        """Read the names in :data:`NAMES`; strings are parsed, typed values
        (from a Flask config) are taken as they are; missing or None means default."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        given: dict[str, Any] = {}
        for name, key in NAMES.items():
            value = values.get(key)
            value = None if value is None else _convert(key, fields[name].default, value)
            if value is not None:
                given[name] = value
        return cls(**given)

    @classmethod
    def with_options(
        cls, options: Mapping[str, Any], base: Mapping[str, Any], owner: str
    ) -> Config:
        """An adapter's keyword ``options`` (field names) over ``base`` (the
        names in :data:`NAMES`, e.g. the environment)."""
        check_options(options, owner)
        values = {**base, **{NAMES[name]: value for name, value in options.items()}}
        return cls.from_mapping(values)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """The configuration named by the environment (``os.environ`` by default)."""
        return cls.from_mapping(os.environ if environ is None else environ)


def check_options(options: Mapping[str, Any], owner: str) -> None:
    """Refuse a misspelt keyword option at once, naming the valid ones."""
    unknown = sorted(set(options) - set(NAMES))
    if unknown:
        raise TypeError(
            f"unknown {owner} option {unknown[0]!r}; the options are {', '.join(NAMES)}"
        )


def _convert(key: str, default: Any, value: Any) -> Any:
    """Coerce ``value`` to the type of the field's default; errors name the key
    but never repeat a value that could be a token."""
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValueError(f"{key} must be 1/true/yes/on or 0/false/no/off, got {value!r}")
    if isinstance(default, (int, float)):
        kind = type(default)
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number, got {value!r}") from None
    text = str(value)
    return text if text.strip() else None  # an empty variable is an unset one
