"""A policy's status and the live checks: the operator's pure decisions."""

from __future__ import annotations

from test_policy import pod, policy

from gctuner.core.settings import Settings
from gctuner_operator import status
from gctuner_operator.applied import same_record
from gctuner_operator.pod_reconciler import live_matches


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
