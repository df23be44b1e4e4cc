"""Small immutable views of GCPolicies and opted-in pods: what the operator needs.

kopf's indexes keep one of these per object instead of the whole body, so
the memory held per pod stays small (a cluster may hold thousands), and the
reconciler works on plain values that tests build without a cluster.
No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gctuner.core.settings import Settings
from gctuner.status.selection import (  # the agent's: one rule for the operator and `gctuner status`
    APPLIED_ANNOTATION,
    DEFAULT_PATH,
    DEFAULT_PORT,
    ENABLED_LABEL,  # noqa: F401  (re-exported for the reconciler)
    PATH_ANNOTATION,
    PORT_ANNOTATION,
    selector_matches,
)

GROUP = "gctuner.dev"
VERSION = "v1alpha1"
PLURAL = "gcpolicies"

Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Endpoint:
    port: int = DEFAULT_PORT
    path: str = DEFAULT_PATH


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = "token"


@dataclass(frozen=True)
class PolicyView:
    namespace: str
    name: str
    uid: str
    generation: int
    created: str  # RFC 3339; sorts in time order as a string
    priority: int
    selector: Mapping[str, Any]
    settings: Settings
    endpoint: Endpoint
    token_ref: SecretRef | None
    deleting: bool
    conditions: tuple[Mapping[str, Any], ...] = ()

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PolicyView:
        meta, spec = body["metadata"], body.get("spec", {})
        endpoint = spec.get("endpoint") or {}
        token = spec.get("tokenSecretRef")
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            created=meta.get("creationTimestamp", ""),
            priority=int(spec.get("priority", 0)),
            selector=spec.get("selector") or {},
            settings=Settings(
                thresholds=tuple(spec["thresholds"]),
                freeze=bool(spec.get("freeze", False)),
                allow_disable=bool(spec.get("allowDisable", False)),
            ),
            endpoint=Endpoint(int(endpoint.get("port", DEFAULT_PORT)), endpoint.get("path", DEFAULT_PATH)),
            token_ref=SecretRef(token["name"], token.get("key", "token")) if token else None,
            deleting=bool(meta.get("deletionTimestamp")),
            conditions=tuple((body.get("status") or {}).get("conditions") or ()),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self.selector, labels)


@dataclass(frozen=True)
class PodView:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ip: str | None
    ready: bool
    restarts: int
    port: int | None  # from the gctuner.dev/port annotation
    path: str | None  # from the gctuner.dev/path annotation
    applied: Mapping[str, Any] | None = field(default=None, compare=False)  # gctuner.dev/applied

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def reachable(self) -> bool:
        """Running, ready and addressed: worth a push."""
        return self.ready and bool(self.ip)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> PodView:
        meta, status = body["metadata"], body.get("status") or {}
        annotations = meta.get("annotations") or {}
        conditions = status.get("conditions") or []
        ready = status.get("phase") == "Running" and not meta.get("deletionTimestamp") and any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
        )
        port = annotations.get(PORT_ANNOTATION)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            labels=dict(meta.get("labels") or {}),
            ip=status.get("podIP"),
            ready=ready,
            restarts=sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or []),
            port=int(port) if port and port.isdigit() else None,
            path=annotations.get(PATH_ANNOTATION),
            applied=_parse_applied(annotations.get(APPLIED_ANNOTATION)),
        )

    def endpoint(self, default: Endpoint) -> Endpoint:
        """The pod's annotations override the policy's endpoint."""
        return Endpoint(self.port or default.port, self.path or default.path)


def _parse_applied(raw: str | None) -> Mapping[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None  # someone edited it by hand: treat as unknown, verify live
    return value if isinstance(value, dict) else None


def precedence(policy: PolicyView) -> tuple[int, str, str]:
    """Sort key: highest priority first, then the oldest, then the name."""
    return (-policy.priority, policy.created, policy.name)


def winner(policies: Any, pod: PodView) -> PolicyView | None:
    """The policy that governs ``pod``, ignoring policies being deleted."""
    candidates = [p for p in policies if not p.deleting and p.matches(pod.labels)]
    return min(candidates, key=precedence, default=None)
