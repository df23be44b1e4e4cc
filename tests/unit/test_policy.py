"""The one policy model (``gctuner.policy``): which policy governs a pod, where its
agent answers, whether it is worth a push, and what the policy asks.

The operator and ``gctuner status`` both judge pods with it, so these are the
only tests of the rule.
"""

from __future__ import annotations

from typing import Any

import pytest

from gctuner.autopilot.goal import Goal
from gctuner.core.settings import Settings
from gctuner.policy import (
    Endpoint,
    PodView,
    PolicyView,
    SecretRef,
    selector_matches,
    winner,
)


def policy(name: str = "web", priority: int = 0, created: str = "2026-01-01T00:00:00Z", selector: Any = None,
           thresholds: tuple[int, ...] = (50000, 20, 100), deleting: bool = False, namespace: str = "shop",
           **spec: Any) -> PolicyView:
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "uid": name, "generation": 1, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return PolicyView.from_body({"metadata": meta, "spec": {"thresholds": list(thresholds), "priority": priority,
                                                            "selector": selector or {}, **spec}})


def auto_policy(name: str = "web", goal: Any = None, **spec: Any) -> PolicyView:
    """An Auto policy: a goal, no thresholds."""
    meta = {"namespace": "shop", "name": name, "uid": name, "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"}
    goal = goal if goal is not None else {"gcTimePercent": 2, "memoryBytes": 512 * 2**20}
    return PolicyView.from_body({"metadata": meta, "spec": {"mode": "Auto", "goal": goal, "selector": {}, **spec}})


def pod_body(name: str = "web-1", labels: Any = None, ready: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"namespace": "shop", "name": name, "labels": labels or {"app": "web"}},
        "status": {"phase": "Running", "podIP": "127.0.1.1",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }
    for key, value in extra.items():
        body["metadata" if key in ("annotations", "deletionTimestamp") else "status"][key] = value
    return body


def pod(name: str = "web-1", labels: Any = None, ready: bool = True) -> PodView:
    return PodView.from_body(pod_body(name, labels, ready))


@pytest.mark.parametrize("selector,labels,expected", [
    ({}, {}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "api"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["a"]}]}, {"tier": "a"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": ""}, False),
    ({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"app": "web"}, False),
])
def test_label_selector(selector: Any, labels: Any, expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_highest_priority_then_oldest_then_name_wins() -> None:
    old, young = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
    a, b, c = policy("a", 0, young), policy("b", 0, old), policy("c", 5, young)
    assert winner([a, b, c], pod()) is c
    assert winner([a, b], pod()) is b
    assert winner([policy("z", 0, old), policy("y", 0, old)], pod()).name == "y"  # type: ignore[union-attr]


def test_policies_being_deleted_not_matching_or_elsewhere_never_win() -> None:
    assert winner([policy("a", deleting=True)], pod()) is None
    assert winner([policy("a", selector={"matchLabels": {"app": "api"}})], pod()) is None
    assert winner([policy("a", namespace="elsewhere")], pod()) is None
    assert winner([], pod()) is None


@pytest.mark.parametrize("annotations,spec,expected", [
    ({}, {}, Endpoint(5000, "/tune_gc")),
    ({}, {"endpoint": {"port": 8000, "path": "/gc"}}, Endpoint(8000, "/gc")),
    ({"gctuner.dev/port": "9000", "gctuner.dev/path": "/x"}, {"endpoint": {"port": 8000}}, Endpoint(9000, "/x")),
    ({"gctuner.dev/port": "not-a-port"}, {"endpoint": {"port": 8000}}, Endpoint(8000, "/tune_gc")),
])
def test_the_pods_annotations_override_the_policys_endpoint(
    annotations: dict[str, str], spec: dict[str, Any], expected: Endpoint
) -> None:
    view = PodView.from_body(pod_body(annotations=annotations))
    assert view.endpoint(policy(**spec)) == expected


def test_a_pod_no_policy_governs_answers_at_the_default_or_its_annotations() -> None:
    assert pod().endpoint(None) == Endpoint(5000, "/tune_gc")
    assert PodView.from_body(pod_body(annotations={"gctuner.dev/port": "7000"})).endpoint(None) == Endpoint(7000, "/tune_gc")


@pytest.mark.parametrize("body,reachable", [
    (pod_body(), True),
    (pod_body(ready=False), False),
    (pod_body(phase="Pending"), False),
    (pod_body(podIP=None), False),
    (pod_body(deletionTimestamp="2026-01-02T00:00:00Z"), False),
    ({"metadata": {"namespace": "shop", "name": "new"}}, False),
])
def test_only_running_ready_addressed_pods_are_reachable(body: dict[str, Any], reachable: bool) -> None:
    assert PodView.from_body(body).reachable is reachable


def test_restarts_are_summed_over_containers() -> None:
    body = pod_body(containerStatuses=[{"restartCount": 2}, {"restartCount": 1}, {}])
    assert PodView.from_body(body).restarts == 3


def test_the_spec_becomes_the_agents_settings() -> None:
    p = policy(thresholds=(0, 10), freeze=True, allowDisable=True, tokenSecretRef={"name": "gct"})
    assert p.settings == Settings((0, 10), freeze=True, allow_disable=True)
    assert p.refused is None and p.token_ref == SecretRef("gct", "token")
    assert policy().settings == Settings((50000, 20, 100))


@pytest.mark.parametrize("spec,words", [
    ({"thresholds": [0]}, "allow_disable"),  # the agent's own words
    ({"thresholds": []}, "1 to 3 items"),
    ({"thresholds": [2_000_000]}, "between 0 and 1000000"),
    ({"thresholds": [1], "freeze": "yes"}, "freeze must be true or false"),
    ({}, "thresholds is required"),
])
def test_a_spec_the_agent_would_refuse_is_refused_here_in_its_words(spec: dict[str, Any], words: str) -> None:
    view = PolicyView.from_body({"metadata": {"namespace": "shop", "name": "bad"}, "spec": spec})
    assert view.settings is None
    assert view.refused is not None and words in view.refused


def test_the_policys_status_is_kept_with_its_conditions() -> None:
    ready = {"type": "Ready", "status": "True"}
    view = PolicyView.from_body({"metadata": {"namespace": "shop", "name": "p"}, "spec": {"thresholds": [1]},
                                 "status": {"appliedPods": 2, "conditions": [ready]}})
    assert view.status["appliedPods"] == 2 and view.conditions == (ready,)



def test_an_auto_policy_asks_for_its_goal_and_no_settings() -> None:
    view = auto_policy(goal={"gcTimePercent": 2, "memoryPercent": 80})
    assert (view.mode, view.auto, view.settings, view.refused) == ("Auto", True, None, None)
    assert view.goal == Goal(gc_time_percent=2.0, memory_percent=80.0)
    assert view.wanted is view.goal
    assert view.payload() == {"goal": {"gcTimePercent": 2.0, "memoryPercent": 80.0}}
    assert policy().mode == "Static" and policy().goal is None and policy().payload() == Settings((50000, 20, 100)).to_json()


@pytest.mark.parametrize("goal,words", [
    ({"memoryPercent": 80}, "goal.gcTimePercent is required"),
    ({"gcTimePercent": 80}, "between 0.1 and 50"),
    ({"gcTimePercent": 2, "minThreshold0": 9000, "maxThreshold0": 1000}, "must not be above"),
    (None, "goal must be a JSON object"),
])
def test_a_goal_the_agent_would_refuse_is_refused_here_in_its_words(goal: Any, words: str) -> None:
    spec: dict[str, Any] = {"mode": "Auto"} if goal is None else {"mode": "Auto", "goal": goal}
    view = PolicyView.from_body({"metadata": {"namespace": "shop", "name": "bad"}, "spec": spec})
    assert view.goal is None and view.wanted is None and view.payload() is None
    assert view.refused is not None and words in view.refused


def test_the_winner_rule_does_not_look_at_the_mode() -> None:
    static, auto = policy("static", 0, "2026-02-01T00:00:00Z"), auto_policy("auto")
    assert winner([static, auto], pod()) is auto  # the older one
