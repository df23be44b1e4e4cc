"""What a policy's pods measure, per pod and fleet-wide: the operator's pure telemetry."""

from __future__ import annotations

from typing import Any

import pytest

from gctuner_operator.telemetry import AutopilotReport, PodSample, figure, fleet, percentile, sample

GOAL = {"gcTimePercent": 2.0, "memoryBytes": 536870912}


def live(totals: dict[int, int], pause_max: int = 2_000_000, autopilot: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "in_sync": True, "defaults": [700, 10, 10],
        "processes": [{"pid": pid, "pauses": {"collections": 9, "pause_ns_total": total, "pause_ns_max": pause_max}}
                      for pid, total in totals.items()],
    }
    if autopilot is not None:
        answer["goal"] = GOAL
        answer["autopilot"] = autopilot
    return answer


def autopilot(state: str = "WithinGoal", thresholds: list[int] | None = None, frozen: bool = False,
              goal: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"goal": goal or GOAL, "state": state, "reason": f"{state} because",
            "measured": {"gcTimePercent": 1.234, "longestPauseMillis": 4.5},
            "choice": {"thresholds": thresholds or [5000], "frozen": frozen}}


def test_gc_time_of_a_static_pod_is_the_growth_of_its_pause_totals_over_wall_time() -> None:
    first = sample(live({10: 1_000_000_000, 11: 0}), None, at=100.0, time="t1")
    assert first.gc_percent is None and first.longest_pause_ms == 2.0  # one read says nothing yet
    second = sample(live({10: 1_600_000_000, 11: 100_000_000, 12: 50}), first, at=130.0, time="t2")
    assert second.gc_percent == pytest.approx(2.0)  # the busiest process: 0.6 s of 30 s
    assert second.autopilot is None and second.goal is None and second.defaults == (700, 10, 10)


def test_a_restarted_process_does_not_count_backwards() -> None:
    first = sample(live({10: 5_000_000_000}), None, at=0.0, time="t1")
    assert sample(live({10: 10}), first, at=60.0, time="t2").gc_percent is None


def test_an_auto_pod_gives_its_autopilots_own_measurement_and_choice() -> None:
    got = sample(live({10: 0}, autopilot=autopilot(thresholds=[42000], frozen=True)), None, at=0.0, time="t")
    assert (got.gc_percent, got.longest_pause_ms) == (1.234, 4.5)
    assert got.autopilot == AutopilotReport("WithinGoal", "WithinGoal because", (42000,), True)


def test_a_report_on_another_goal_is_no_decision_on_this_one() -> None:
    stale = autopilot(goal={"gcTimePercent": 5.0, "memoryBytes": 536870912})
    got = sample(live({10: 0}, autopilot=stale), None, at=0.0, time="t")
    assert got.autopilot is None and got.goal == GOAL and got.gc_percent is None


@pytest.mark.parametrize("value,resolution,expected", [
    (0.0123, 0.01, 0.01), (0.004, 0.01, 0.0), (1.934, 0.01, 1.9), (26.43, 0.01, 26.0), (1234.5, 0.1, 1200.0),
    (0.26, 0.1, 0.3),
])
def test_figures_are_rounded_so_noise_writes_nothing(value: float, resolution: float, expected: float) -> None:
    assert figure(value, resolution) == expected


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile([3.0], 0.95)) == (10.0, 19.0, 3.0)


def pod_sample(gc: float | None, pause: float | None, thresholds: tuple[int, ...] | None = None,
               goal: dict[str, Any] | None = GOAL, time: str = "t") -> PodSample:
    report = AutopilotReport("WithinGoal", "", thresholds, False) if thresholds else None
    return PodSample(0.0, time, {}, gc, pause, goal, report, (700, 10, 10))


def test_the_fleet_block_gives_p50_p95_and_the_range_of_choices() -> None:
    samples = [pod_sample(0.5, 3.0, (20000,)), pod_sample(1.5, 30.0, (90000,), time="t2"),
               pod_sample(1.0, 4.0, (42000,)), pod_sample(None, None)]
    block = fleet(samples, GOAL)
    assert block == {
        "pods": 4, "gcTimePercent": {"p50": 1.0, "p95": 1.5}, "longestPauseMillis": {"p50": 4.0, "p95": 30.0},
        "thresholds": {"min": [20000], "median": [42000], "max": [90000]}, "time": "t2",
    }


def test_a_static_policy_has_no_chosen_thresholds_and_no_pods_no_block() -> None:
    block = fleet([pod_sample(0.5, 3.0, (20000,))], None)
    assert block is not None and block["thresholds"] is None
    assert fleet([], GOAL) is None
