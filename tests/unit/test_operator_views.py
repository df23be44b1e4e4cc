"""Selectors, precedence and status: the operator's pure decisions."""

from __future__ import annotations

from typing import Any

import pytest

from gctuner.core.settings import Settings
from gctuner_operator import status
from gctuner_operator.reconciler import live_matches, same_record
from gctuner_operator.views import PodView, PolicyView, selector_matches, winner


def policy(name: str = "web", priority: int = 0, created: str = "2026-01-01T00:00:00Z", selector: Any = None,
           thresholds: tuple[int, ...] = (50000, 20, 100), deleting: bool = False) -> PolicyView:
    meta: dict[str, Any] = {"namespace": "shop", "name": name, "uid": name, "generation": 1, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return PolicyView.from_body({"metadata": meta, "spec": {"thresholds": list(thresholds), "priority": priority,
                                                            "selector": selector or {}}})


def pod(name: str = "web-1", labels: Any = None, ready: bool = True) -> PodView:
    return PodView.from_body({
        "metadata": {"namespace": "shop", "name": name, "labels": labels or {"app": "web"}},
        "status": {"phase": "Running", "podIP": "127.0.1.1",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    })


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
])
def test_label_selector(selector: Any, labels: Any, expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_highest_priority_then_oldest_then_name_wins() -> None:
    old, young = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
    a, b, c = policy("a", 0, young), policy("b", 0, old), policy("c", 5, young)
    assert winner([a, b, c], pod()) is c
    assert winner([a, b], pod()) is b
    assert winner([policy("z", 0, old), policy("y", 0, old)], pod()).name == "y"


def test_policies_being_deleted_or_not_matching_never_win() -> None:
    assert winner([policy("a", deleting=True)], pod()) is None
    assert winner([policy("a", selector={"matchLabels": {"app": "api"}})], pod()) is None


def test_status_counts_applied_failed_and_pods_governed_elsewhere() -> None:
    low, high = policy("low"), policy("high", priority=1, selector={"matchLabels": {"tier": "gold"}})
    pods = [pod("a"), pod("b"), pod("c"), pod("d", labels={"app": "web", "tier": "gold"})]
    outcomes = {
        ("shop", "a"): status.Outcome(low.key, 1, low.settings, ok=True),
        ("shop", "b"): status.Outcome(low.key, 1, low.settings, ok=False, reason="Timeout", message="slow", since="t"),
    }
    result = status.compute(low, [low, high], pods, outcomes)
    assert (result["matchedPods"], result["appliedPods"], result["failedPods"], result["governedElsewherePods"]) == (4, 1, 1, 1)
    assert result["failures"] == [{"pod": "b", "reason": "Timeout", "message": "slow", "since": "t"}]
    ready = result["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "PartiallyApplied")
    assert "b (Timeout)" in ready["message"]


def test_status_is_ready_when_every_governed_pod_applied() -> None:
    p = policy()
    outcomes = {("shop", "a"): status.Outcome(p.key, 1, p.settings, ok=True)}
    ready = status.compute(p, [p], [pod("a")], outcomes)["conditions"][0]
    assert (ready["status"], ready["reason"], ready["message"]) == ("True", "Applied", "1/1 pods applied")


def test_failures_are_capped_at_ten() -> None:
    p = policy()
    pods = [pod(f"p{i}") for i in range(25)]
    outcomes = {x.key: status.Outcome(p.key, 1, p.settings, ok=False, reason="Unreachable", since="t") for x in pods}
    result = status.compute(p, [p], pods, outcomes)
    assert result["failedPods"] == 25 and len(result["failures"]) == 10


def test_live_state_matches_only_when_every_process_follows() -> None:
    want = Settings((50000, 20))
    good = {"in_sync": True, "desired": want.to_json(), "processes": [{"thresholds": [50000, 20, 10]}] * 2}
    assert live_matches(good, want)
    assert not live_matches({**good, "in_sync": False}, want)
    assert not live_matches({**good, "processes": [{"thresholds": [700, 10, 10]}]}, want)
    assert live_matches({"in_sync": True, "desired": None, "processes": []}, None)
    assert not live_matches(good, None)


def test_annotation_time_alone_does_not_count_as_a_change() -> None:
    record = {"policy": "web", "generation": 2, "settings": {"thresholds": [1]}, "time": "now"}
    assert same_record({**record, "time": "earlier"}, record)
    assert not same_record({**record, "generation": 1}, record)
    assert same_record(None, None) and not same_record(record, None)
