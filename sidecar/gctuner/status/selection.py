"""Which GCPolicy governs a pod, for ``gctuner status``. No I/O here.

The operator's rule (``gctuner_operator.views.winner``) on the JSON that
``kubectl get -o json`` prints: a standard label selector, then the highest
priority, the oldest policy, the name; a policy being deleted governs
nothing. The agent must not import the operator, so the operator imports the
selector and the label and annotation names from here; the winner is
restated on raw JSON, and ``tests/unit/test_status_selection.py`` checks
that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

ENABLED_LABEL = "gctuner.dev/enabled"
APPLIED_ANNOTATION = "gctuner.dev/applied"
PORT_ANNOTATION = "gctuner.dev/port"
PATH_ANNOTATION = "gctuner.dev/path"
DEFAULT_PORT = 5000
DEFAULT_PATH = "/tune_gc"

Body = Mapping[str, Any]


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


def precedence(policy: Body) -> tuple[int, str, str]:
    """Sort key: highest priority first, then the oldest, then the name."""
    meta, spec = policy["metadata"], policy.get("spec") or {}
    return (-int(spec.get("priority", 0)), meta.get("creationTimestamp", ""), meta["name"])


def winner(policies: Iterable[Body], pod: Body) -> Body | None:
    """The policy of the pod's namespace that governs it, or None."""
    meta = pod["metadata"]
    labels = meta.get("labels") or {}
    candidates = [
        p for p in policies
        if p["metadata"].get("namespace") == meta.get("namespace")
        and not p["metadata"].get("deletionTimestamp")
        and selector_matches((p.get("spec") or {}).get("selector") or {}, labels)
    ]  # fmt: skip
    return min(candidates, key=precedence, default=None)


def endpoint(pod: Body, policy: Body | None) -> tuple[int, str]:
    """Where the pod's agent answers: its annotations, else the policy's endpoint."""
    annotations = pod["metadata"].get("annotations") or {}
    spec_endpoint = ((policy or {}).get("spec") or {}).get("endpoint") or {}
    port = annotations.get(PORT_ANNOTATION, "")
    return (
        int(port) if port.isdigit() else int(spec_endpoint.get("port", DEFAULT_PORT)),
        annotations.get(PATH_ANNOTATION) or spec_endpoint.get("path", DEFAULT_PATH),
    )
