"""``gctuner status`` names the policy the operator applies: both rules agree.

The agent cannot import the operator, so ``gctuner.status.selection`` restates the
operator's rule (selector, priority, age, name); generated cases keep the two
from drifting apart.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gctuner.status import selection
from gctuner_operator import views

pytestmark = pytest.mark.timeout(120)

KEYS = ["app", "tier"]
VALUES = ["web", "api", "a"]

match_labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)
expression = st.one_of(
    st.fixed_dictionaries({"key": st.sampled_from(KEYS), "operator": st.sampled_from(["In", "NotIn"]),
                           "values": st.lists(st.sampled_from(VALUES), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"key": st.sampled_from(KEYS), "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
selector = st.fixed_dictionaries({}, optional={"matchLabels": match_labels,
                                               "matchExpressions": st.lists(expression, max_size=2)})
policy = st.fixed_dictionaries({
    "priority": st.integers(-2, 2),
    "created": st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]),
    "selector": selector,
    "deleting": st.booleans(),
})


def body(name: str, p: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"namespace": "shop", "name": name, "creationTimestamp": p["created"]}
    if p["deleting"]:
        meta["deletionTimestamp"] = "2026-01-03T00:00:00Z"
    return {"metadata": meta, "spec": {"thresholds": [1000], "priority": p["priority"], "selector": p["selector"]}}


@settings(max_examples=300, deadline=None)
@given(policies=st.lists(policy, max_size=4), labels=match_labels)
def test_the_same_policy_wins_as_in_the_operator(policies: list[dict[str, Any]], labels: dict[str, str]) -> None:
    bodies = [body(f"p{i}", p) for i, p in enumerate(policies)]
    pod = {"metadata": {"namespace": "shop", "name": "web-1", "labels": labels}, "status": {}}
    ours = selection.winner(bodies, pod)
    theirs = views.winner([views.PolicyView.from_body(b) for b in bodies], views.PodView.from_body(pod))
    assert (ours and ours["metadata"]["name"]) == (theirs and theirs.name)


def test_policies_of_other_namespaces_never_govern() -> None:
    other = body("p", {"priority": 0, "created": "2026-01-01T00:00:00Z", "selector": {}, "deleting": False})
    other["metadata"]["namespace"] = "elsewhere"
    assert selection.winner([other], {"metadata": {"namespace": "shop", "name": "web-1"}}) is None


@pytest.mark.parametrize("annotations,spec,expected", [
    ({}, {}, (5000, "/tune_gc")),
    ({}, {"endpoint": {"port": 8000, "path": "/gc"}}, (8000, "/gc")),
    ({"gctuner.dev/port": "9000", "gctuner.dev/path": "/x"}, {"endpoint": {"port": 8000}}, (9000, "/x")),
    ({"gctuner.dev/port": "not-a-port"}, {"endpoint": {"port": 8000}}, (8000, "/tune_gc")),
])
def test_the_endpoint_is_the_operators(annotations: dict[str, str], spec: dict[str, Any], expected: tuple[int, str]) -> None:
    pod = {"metadata": {"namespace": "shop", "name": "web-1", "annotations": annotations}}
    assert selection.endpoint(pod, {"metadata": {}, "spec": spec}) == expected
