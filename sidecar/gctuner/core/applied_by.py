"""Who asked for the settings a pod runs: the record that travels with a push.

The operator never writes to pods. Instead its POST carries, beside the
settings, which policy and generation they come from::

    {"thresholds": [50000, 20, 100], "applied_by": {"policy": "shop/web", "generation": 3}}

The agent keeps it with the desired state, stamps the time it was published,
and reports it in ``GET /tune_gc`` (and so in ``gctuner status``). A POST
without it (a person with ``curl``) clears it: the pod then runs what someone
else asked for, and an operator after a restart leaves such a pod alone when
no policy governs it. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from gctuner.core.settings import InvalidSettings

FIELD = "applied_by"
MAX_POLICY_CHARS = 317
"""``namespace/name``: a namespace (63) and an object name (253), and the slash."""


@dataclasses.dataclass(frozen=True)
class AppliedBy:
    policy: str
    """``namespace/name`` of the GCPolicy."""

    generation: int
    """The policy's ``metadata.generation`` the settings come from."""

    time: str | None = None
    """When the agent published them (set by the agent, not by the client)."""

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "generation": self.generation, "time": self.time}


def parse_applied_by(value: object) -> AppliedBy:
    """Validate the ``applied_by`` object of a POST; :class:`InvalidSettings` if refused."""
    if not isinstance(value, dict):
        raise InvalidSettings(f'{FIELD} must be an object such as {{"policy": "shop/web", "generation": 3}}')
    unknown = sorted(key for key in value if key not in ("policy", "generation", "time"))
    if unknown:
        raise InvalidSettings(f"unknown field {FIELD}.{unknown[0]}; the fields are policy, generation")
    policy, generation = value.get("policy"), value.get("generation")
    if not isinstance(policy, str) or not 0 < len(policy) <= MAX_POLICY_CHARS:
        raise InvalidSettings(f"{FIELD}.policy must be a namespace/name of at most {MAX_POLICY_CHARS} characters")
    if type(generation) is not int or not 0 <= generation < 2**63:
        raise InvalidSettings(f"{FIELD}.generation must be a non-negative integer")
    time = value.get("time")
    return AppliedBy(policy, generation, time if isinstance(time, str) and len(time) <= 64 else None)


def split_applied_by(payload: object) -> tuple[object, AppliedBy | None]:
    """The payload without ``applied_by``, and the record (None when absent)."""
    if not isinstance(payload, dict) or FIELD not in payload:
        return payload, None
    rest = {key: value for key, value in payload.items() if key != FIELD}
    return rest, parse_applied_by(payload[FIELD])
