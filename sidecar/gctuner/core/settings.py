"""What a client may ask the collector to do, validated.

Pure: no I/O and no ``gc`` calls. Every way in (Flask, WSGI, ASGI, the
sidecar) and the shared state file go through :func:`parse_settings`, so a bad
payload is refused with the same words everywhere, and a tampered state file
cannot smuggle in a value that a request could not.
"""

from __future__ import annotations

import dataclasses
from typing import Any

MAX_THRESHOLD = 1_000_000
"""Upper bound of every threshold. The GCPolicy CRD enforces the same bound, so
a policy that the API server accepts is never refused by an agent."""

MAX_THRESHOLDS = 3
"""``gc.set_threshold`` takes at most three values (gen0, gen1, gen2)."""

FIELDS = ("thresholds", "freeze", "allow_disable")
"""The only keys a settings payload may have: an unknown key is a typo until
proven otherwise, and silently ignoring it would hide it."""

_EXAMPLE = '{"thresholds": [50000, 20, 100]}'


class InvalidSettings(ValueError):
    """A settings payload is refused; the message names the field and the rule."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Collector settings, as validated by :func:`parse_settings`."""

    thresholds: tuple[int, ...]
    """1 to 3 values for ``gc.set_threshold``; the ones left out keep their
    current values in each process, as ``gc.set_threshold`` does."""

    freeze: bool = False
    """Call ``gc.freeze()`` after applying: an action, not a state. ``false``
    never unfreezes, so an app's own ``gc.freeze()`` (e.g. before forking
    workers) is left alone."""

    allow_disable: bool = False
    """Confirms that ``thresholds[0] == 0`` (no automatic collection) is meant."""

    def to_json(self) -> dict[str, Any]:
        """The wire form, accepted back by :func:`parse_settings`."""
        return {
            "thresholds": list(self.thresholds),
            "freeze": self.freeze,
            "allow_disable": self.allow_disable,
        }


def parse_settings(payload: object) -> Settings:
    """Validate a decoded JSON payload; raise :class:`InvalidSettings` if refused."""
    if not isinstance(payload, dict):
        raise InvalidSettings(
            f"settings must be a JSON object such as {_EXAMPLE}, got {_kind(payload)}"
        )
    unknown = [key for key in payload if key not in FIELDS]
    if unknown:
        raise InvalidSettings(
            f"unknown field {_show(unknown[0])}; the fields are {', '.join(FIELDS)}"
        )
    if "thresholds" not in payload:
        raise InvalidSettings(
            f"thresholds is required: a list of 1 to {MAX_THRESHOLDS} integers, "
            f"as in {_EXAMPLE}"
        )
    thresholds = _thresholds(payload["thresholds"])
    freeze = _boolean(payload, "freeze")
    allow_disable = _boolean(payload, "allow_disable")
    if thresholds[0] == 0 and not allow_disable:
        raise InvalidSettings(
            "thresholds[0] = 0 disables automatic garbage collection; "
            'send "allow_disable": true as well if that is what you want'
        )
    return Settings(thresholds, freeze, allow_disable)


def _thresholds(value: object) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise InvalidSettings(
            f"thresholds must be a list of 1 to {MAX_THRESHOLDS} integers, "
            f"got {_show(value)}"
        )
    if not 1 <= len(value) <= MAX_THRESHOLDS:
        raise InvalidSettings(
            f"thresholds must have 1 to {MAX_THRESHOLDS} items, got {len(value)}"
        )
    for index, item in enumerate(value):
        # bool is an int subclass, but `true` as a threshold is a mistake.
        if type(item) is not int or not 0 <= item <= MAX_THRESHOLD:
            raise InvalidSettings(
                f"thresholds[{index}] must be an integer between 0 and "
                f"{MAX_THRESHOLD}, got {_show(item)}"
            )
    return tuple(value)


def _boolean(payload: dict[Any, Any], key: str) -> bool:
    value = payload.get(key, False)
    if not isinstance(value, bool):
        raise InvalidSettings(f"{key} must be true or false, got {_show(value)}")
    return value


def _show(value: object, limit: int = 40) -> str:
    """A short repr: an error message must stay readable and bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: object) -> str:
    names = {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), _show(value))
