"""Which GCPolicy governs a pod, and what it asks: the one model. No I/O here.

The operator (which pushes) and ``gctuner status`` (which reports) both
judge pods with these views, built from the raw API bodies that kopf hands
the operator and that ``kubectl get -o json`` prints, so the two cannot
disagree on which policy wins, where a pod's agent answers, or whether a pod
is worth a push. It lives in the agent's package, standard library only,
because the agent must never import the operator; the operator imports it.

A policy's settings (``mode: Static``) go through the agent's own validation
(:func:`gctuner.core.settings.parse_settings`), its goal (``mode: Auto``)
through :func:`gctuner.autopilot.goal.parse_goal`: a spec that an agent would
refuse is refused here, in the agent's words, before anything is pushed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gctuner.autopilot.goal import Goal, parse_goal
from gctuner.core.settings import InvalidSettings, Settings, parse_settings

ENABLED_LABEL = "gctuner.dev/enabled"
PORT_ANNOTATION = "gctuner.dev/port"
PATH_ANNOTATION = "gctuner.dev/path"
DEFAULT_PORT = 5000
DEFAULT_PATH = "/tune_gc"

Key = tuple[str, str]  # (namespace, name)
Body = Mapping[str, Any]

STATIC, AUTO = "Static", "Auto"
"""``spec.mode``: the thresholds given, or a goal every pod's autopilot steers to."""

SPEC_TO_PAYLOAD = {"thresholds": "thresholds", "freeze": "freeze", "allowDisable": "allow_disable"}
"""The spec fields that become the agent's settings payload, spec name to payload name."""


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A standard LabelSelector; the empty selector matches every pod."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def policy_settings(spec: Mapping[str, Any]) -> Settings:
    """What a policy's spec asks the agents to apply; :class:`InvalidSettings` if they would refuse it."""
    return parse_settings({wire: spec[name] for name, wire in SPEC_TO_PAYLOAD.items() if name in spec})


def policy_goal(spec: Mapping[str, Any]) -> Goal:
    """What an Auto policy's spec asks the autopilots to steer to; :class:`InvalidSettings` if they would refuse it."""
    return parse_goal(spec.get("goal"))


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
    """A GCPolicy as far as choosing and pushing goes: small, so indexes stay small."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: str  # RFC 3339; sorts in time order as a string
    priority: int
    selector: Mapping[str, Any]
    settings: Settings | None  # Static; None in Auto or when the spec is refused (see ``refused``)
    endpoint: Endpoint
    token_ref: SecretRef | None
    deleting: bool
    refused: str | None = None  # why an agent would refuse the spec, in the agent's words
    mode: str = STATIC
    goal: Goal | None = None  # Auto; None in Static or when the spec is refused
    status: Mapping[str, Any] = field(default_factory=dict, compare=False)  # as the operator last wrote it

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def conditions(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(self.status.get("conditions") or ())

    @property
    def auto(self) -> bool:
        return self.mode == AUTO

    @property
    def wanted(self) -> Settings | Goal | None:
        """What the pods it governs are given: its settings (Static) or its goal (Auto); None if refused."""
        return self.goal if self.auto else self.settings

    def payload(self) -> dict[str, Any] | None:
        """The body of the push: ``{"goal": ...}`` in Auto, the settings in Static; None if refused."""
        if self.goal is not None:
            return {"goal": self.goal.to_json()}
        return None if self.settings is None else self.settings.to_json()

    @classmethod
    def from_body(cls, body: Body) -> PolicyView:
        meta, spec = body["metadata"], body.get("spec") or {}
        endpoint = spec.get("endpoint") or {}
        token = spec.get("tokenSecretRef")
        mode = AUTO if spec.get("mode") == AUTO else STATIC
        settings: Settings | None = None
        goal: Goal | None = None
        refused: str | None = None
        try:
            if mode == AUTO:
                goal = policy_goal(spec)
            else:
                settings = policy_settings(spec)
        except InvalidSettings as error:
            refused = str(error)
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            created=meta.get("creationTimestamp", ""),
            priority=int(spec.get("priority", 0)),
            selector=spec.get("selector") or {},
            settings=settings,
            endpoint=Endpoint(int(endpoint.get("port", DEFAULT_PORT)), endpoint.get("path", DEFAULT_PATH)),
            token_ref=SecretRef(token["name"], token.get("key", "token")) if token else None,
            deleting=bool(meta.get("deletionTimestamp")),
            refused=refused,
            mode=mode,
            goal=goal,
            status=dict(body.get("status") or {}),
        )

    def matches(self, labels: Mapping[str, str]) -> bool:
        return selector_matches(self.selector, labels)


@dataclass(frozen=True)
class PodView:
    """An opted-in pod as far as choosing and pushing goes."""

    namespace: str
    name: str
    labels: Mapping[str, str]
    ip: str | None
    ready: bool  # Running, Ready and not being deleted
    restarts: int
    port: int | None  # from the gctuner.dev/port annotation
    path: str | None  # from the gctuner.dev/path annotation

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def reachable(self) -> bool:
        """Running, ready and addressed: worth a push, and worth a live read."""
        return self.ready and bool(self.ip)

    @classmethod
    def from_body(cls, body: Body) -> PodView:
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
        )

    def endpoint(self, policy: PolicyView | None) -> Endpoint:
        """Where the agent answers: the pod's annotations, else the policy's endpoint, else the default."""
        default = policy.endpoint if policy is not None else Endpoint()
        return Endpoint(self.port or default.port, self.path or default.path)


def precedence(policy: PolicyView) -> tuple[int, str, str]:
    """Sort key: highest priority first, then the oldest, then the name."""
    return (-policy.priority, policy.created, policy.name)


def winner(policies: Iterable[PolicyView], pod: PodView) -> PolicyView | None:
    """The policy of the pod's namespace that governs it; policies being deleted govern nothing."""
    candidates = [
        p for p in policies if p.namespace == pod.namespace and not p.deleting and p.matches(pod.labels)
    ]
    return min(candidates, key=precedence, default=None)

