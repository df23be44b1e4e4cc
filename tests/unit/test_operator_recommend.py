"""An Auto policy's recommendation, piece by piece (VPA's estimator, margin, floor,
confidence), and its GoalMet condition."""

from __future__ import annotations

import pytest

from gctuner_operator.goal_met import goal_met
from gctuner_operator.recommend import (
    confidence,
    duration,
    estimate,
    recommend,
    rounded,
    with_cap,
    with_floor,
    with_margin,
)
from gctuner_operator.telemetry import AutopilotReport

DEFAULTS = (700, 10, 10)


def report(threshold0: int, state: str = "WithinGoal", frozen: bool = False, reason: str = "") -> AutopilotReport:
    return AutopilotReport(state, reason, (threshold0,), frozen)


def test_the_estimator_is_the_90th_percentile_of_what_the_pods_chose() -> None:
    assert estimate(list(range(1000, 11000, 1000))) == 9000
    assert estimate([5000]) == 5000


def test_margin_rounding_floor_and_cap() -> None:
    assert with_margin(40000) == 44000
    assert rounded(46_200) == 47_000 and rounded(700) == 700 and rounded(42_000) == 42_000 and rounded(50) == 50
    assert with_floor(500, 700) == 700 and with_floor(5000, 700) == 5000
    assert with_cap(2_000_000) == 1_000_000 and with_cap(9000, 5000) == 5000


@pytest.mark.parametrize("pods,settled,expected", [
    (1, 0, "Low"), (11, 300, "Low"), (11, 600, "Medium"), (1, 86400, "Medium"), (3, 3600, "High"), (2, 7200, "Medium"),
])
def test_confidence_grows_with_time_within_the_goal_and_pods(pods: int, settled: float, expected: str) -> None:
    assert confidence(pods, settled) == expected


def test_durations_are_coarse() -> None:
    assert [duration(s) for s in (5, 61, 7300, 200000)] == ["<1m", "1m", "2h", "2d"]


def test_the_recommendation_composes_them() -> None:
    pods = [(report(t0), DEFAULTS) for t0 in (20000, 30000, 40000, 40000, 42000)]
    got = recommend(pods, settled_seconds=7200)
    assert got == {"thresholds": [47000, 10, 10], "freeze": False, "basis": "5 pods, 2h within the goal",
                   "confidence": "High"}


def test_never_below_the_interpreters_own_threshold0_and_freeze_when_most_froze() -> None:
    pods = [(report(100, frozen=True), (2000, 10, 10)), (report(150, frozen=True), DEFAULTS), (report(120), DEFAULTS)]
    got = recommend(pods, settled_seconds=None)
    assert got is not None
    assert got["thresholds"] == [2000, 10, 10] and got["freeze"] is True
    assert (got["basis"], got["confidence"]) == ("3 pods, not all within the goal yet", "Low")
    assert recommend([], 3600) is None


def test_a_free_threaded_choice_keeps_its_second_threshold() -> None:
    got = recommend([(AutopilotReport("WithinGoal", "", (9000, 0), False), (2000, 40, 0))], 60)
    assert got is not None and got["thresholds"] == [9900, 0, 0]


def test_goal_met_when_every_reporting_pod_is_within_the_goal() -> None:
    assert goal_met([("a", report(1)), ("b", report(2))]) == ("True", "WithinGoal", "2/2 pods within the goal")


def test_goal_met_false_with_the_worst_pods_state_and_its_figures() -> None:
    pods = [("a", report(1)), ("b", report(1, "Settling", reason="raising threshold0 700 -> 2800")),
            ("c", report(1, "GoalUnreachable", reason="GC 26.4% of the time (goal 2%)")), ("d", None)]
    status, reason, message = goal_met(pods)
    assert (status, reason) == ("False", "GoalUnreachable")
    assert message == "1/4 pods within the goal (1 GoalUnreachable, 2 Settling, 1 WithinGoal); c: GC 26.4% of the time (goal 2%)"


def test_a_pod_without_a_decision_is_settling_and_no_pods_is_unknown() -> None:
    assert goal_met([("a", None)]) == ("False", "Settling", "0/1 pods within the goal (1 Settling); a: no autopilot decision on this goal yet")
    assert goal_met([])[:2] == ("Unknown", "NoReports")
    assert goal_met([("a", report(1, "NoMemoryBudget")), ("b", report(1, "CannotMeasure"))])[1] == "NoMemoryBudget"
