"""A policy's status and the live checks: the operator's pure decisions."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from test_policy import auto_policy, pod, policy

from gctuner.core.settings import Settings
from gctuner_operator import status
from gctuner_operator.pod_reconciler import live_matches
from gctuner_operator.telemetry import AutopilotReport, PodSample


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


def test_live_state_follows_a_goal_by_the_goal_and_in_sync_not_by_thresholds() -> None:
    goal = auto_policy().goal
    assert goal is not None
    steering = {"in_sync": True, "goal": goal.to_json(), "desired": {"thresholds": [9000]},
                "processes": [{"thresholds": [9000, 10, 10]}]}
    assert live_matches(steering, goal)
    assert not live_matches({**steering, "in_sync": False}, goal)
    assert not live_matches({**steering, "goal": {"gcTimePercent": 5.0}}, goal)
    static = Settings((9000,))
    assert not live_matches(steering, static)  # a Static push must end the goal
    assert not live_matches(steering, None)


def auto_sample(state: str, threshold0: int, goal: Mapping[str, Any] | None, gc: float = 1.0) -> PodSample:
    return PodSample(0.0, "2026-01-01T00:00:00Z", {}, gc, 3.0, goal,
                     AutopilotReport(state, f"{state}: GC {gc}%", (threshold0,), False), (700, 10, 10))


def test_an_auto_policy_gets_telemetry_a_recommendation_and_goal_met() -> None:
    p = auto_policy()
    assert p.goal is not None
    goal = p.goal.to_json()
    pods = [pod("a"), pod("b"), pod("c")]
    samples = {("shop", "a"): auto_sample("WithinGoal", 20000, goal), ("shop", "b"): auto_sample("WithinGoal", 40000, goal)}
    result = status.compute(p, [p], pods, {}, samples)
    assert result["telemetry"]["pods"] == 2
    assert result["telemetry"]["thresholds"] == {"min": [20000], "median": [20000], "max": [40000]}
    assert result["recommendation"] == {"thresholds": [44000, 10, 10], "freeze": False,
                                        "basis": "2 pods, <1m within the goal", "confidence": "Low"}
    ready, met = result["conditions"]
    assert ready["type"] == "Ready" and (met["type"], met["status"], met["reason"]) == ("GoalMet", "True", "WithinGoal")

    samples[("shop", "c")] = auto_sample("GoalUnreachable", 200000, goal, gc=26.4)
    met = status.compute(p, [p], pods, {}, samples)["conditions"][1]
    assert (met["status"], met["reason"]) == ("False", "GoalUnreachable")
    assert "2/3 pods within the goal" in met["message"] and "c: GoalUnreachable: GC 26.4%" in met["message"]


def test_the_fleet_has_been_within_the_goal_since_goal_met_turned_true() -> None:
    p = auto_policy()
    assert p.goal is not None
    since = {"type": "GoalMet", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}
    p = dataclasses.replace(p, status={"conditions": [since]})
    samples = {("shop", x): auto_sample("WithinGoal", 20000, p.goal.to_json()) for x in "abc"}
    result = status.compute(p, [p], [pod(x) for x in "abc"], {}, samples)
    assert result["conditions"][1]["lastTransitionTime"] == "2020-01-01T00:00:00Z"
    assert result["recommendation"]["confidence"] == "High" and result["recommendation"]["basis"].endswith("d within the goal")


def test_a_static_policy_gets_telemetry_and_no_recommendation_nor_goal_met() -> None:
    p = policy()
    samples = {("shop", "a"): PodSample(0.0, "t", {}, 0.5, 2.0, None, None, (700, 10, 10))}
    result = status.compute(p, [p], [pod("a")], {}, samples)
    assert result["telemetry"]["gcTimePercent"] == {"p50": 0.5, "p95": 0.5}
    assert result["recommendation"] is None and result["telemetry"]["thresholds"] is None  # null: removed by the merge patch
    assert [c["type"] for c in result["conditions"]] == ["Ready"]
    assert status.compute(p, [p], [pod("a")], {})["telemetry"] is None
