"""The autopilot's decision, rule by rule and per collector flavour."""

from __future__ import annotations

import dataclasses

import pytest

from gctuner.autopilot import decide as d
from gctuner.autopilot.decide import Choice, decide
from gctuner.autopilot.goal import Goal
from gctuner.autopilot.memory import MemoryReading
from gctuner.autopilot.telemetry import Observation
from gctuner.core.runtime import FREE_THREADED, FREE_THREADED_RSS_GATED, GENERATIONAL, INCREMENTAL, Flavour

MiB = 2**20
LIMIT = 1000 * MiB  # budget at 80 %: 800 MiB
GOAL = Goal(gc_time_percent=2.0, memory_percent=80.0)
DEFAULTS = (700, 10, 10)
FLAVOURS = [GENERATIONAL, INCREMENTAL, FREE_THREADED, FREE_THREADED_RSS_GATED]


def seen(gc: float = 1.0, full_ms: float = 5.0, freed_per_ms: float | None = 50_000.0, age: float = 600.0) -> Observation:
    return Observation(processes=4, seconds=10.0, gc_percent=gc, gc_percent_mean=gc, longest_pause_ms=full_ms,
                       full_collections=3, full_pause_ms=full_ms, freed_per_full_ms=freed_per_ms,
                       rss_bytes=None, youngest_seconds=age)


def memory(used_mib: int, limit: int | None = LIMIT) -> MemoryReading:
    return MemoryReading(used_mib * MiB, limit, "test")


def run(observation: Observation | None, used: MemoryReading, *, t0: int = 700, frozen: bool = False,
        goal: Goal = GOAL, flavour: Flavour = GENERATIONAL, since: float = 100.0,
        defaults: tuple[int, ...] = DEFAULTS, last_raise: d.Raise | None = None,
        ceiling: int | None = None) -> d.Decision:
    return decide(observation, used, goal, Choice((t0,), frozen), flavour, defaults, since,
                  last_raise=last_raise, ceiling=ceiling)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_gc_time_over_the_goal_with_headroom_raises_threshold0_in_proportion(flavour: Flavour) -> None:
    decision = run(seen(gc=6.0), memory(300), flavour=flavour)
    assert decision.state == d.SETTLING
    assert decision.choice.threshold0 == 700 * 3  # 6 % measured / 2 % goal
    assert "raising threshold0 700 -> 2100" in decision.reason
    assert not decision.collect


def test_a_raise_is_bounded_per_step_and_by_the_goal() -> None:
    assert run(seen(gc=40.0), memory(300)).choice.threshold0 == 700 * 4  # at most x4 a step
    assert run(seen(gc=2.3), memory(300)).choice.threshold0 == int(700 * 1.25)  # at least x1.25
    capped = run(seen(gc=40.0), memory(300), t0=150_000)
    assert capped.choice.threshold0 == 200_000  # the default highest threshold0
    custom = dataclasses.replace(GOAL, max_threshold0=5_000)
    assert run(seen(gc=40.0), memory(300), goal=custom).choice.threshold0 == 2_800
    assert run(seen(gc=40.0), memory(300), goal=custom, t0=4_000).choice.threshold0 == 5_000


def test_within_the_hysteresis_band_nothing_changes() -> None:
    decision = run(seen(gc=2.15), memory(300), t0=30_000)
    assert (decision.state, decision.choice.threshold0) == (d.WITHIN_GOAL, 30_000)


def test_no_raise_during_the_cool_down() -> None:
    decision = run(seen(gc=6.0), memory(300), since=3.0)
    assert (decision.state, decision.choice.threshold0) == (d.SETTLING, 700)
    assert "waiting" in decision.reason


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_near_the_memory_budget_it_lowers_and_collects_even_over_the_gc_goal(flavour: Flavour) -> None:
    decision = run(seen(gc=6.0), memory(780), t0=40_000, flavour=flavour, since=1.0)
    assert decision.state == d.SETTLING and decision.collect
    assert decision.choice.threshold0 == 20_000
    # a free-threaded build scales threshold0 with the heap unless threshold1 is 0
    assert decision.choice.thresholds == ((20_000, 0) if flavour.heap_scaled else (20_000,))
    if flavour.rss_gated:  # 3.14t, 3.15t: a due collection may be skipped, so it collects itself
        assert "RSS gate" in decision.reason


def test_lowering_stops_at_the_floor_and_says_the_heap_is_too_large() -> None:
    decision = run(seen(gc=6.0), memory(790), t0=700)
    assert decision.state == d.UNREACHABLE and decision.collect
    assert decision.choice.threshold0 == 700  # never below the startup value, never disabled
    assert "too large" in decision.reason


def test_a_heap_that_cannot_fit_is_not_collected_into_a_stall() -> None:
    decision = run(seen(gc=35.0), memory(790), t0=10_000)
    assert decision.state == d.UNREACHABLE and not decision.collect
    assert decision.choice.threshold0 == 10_000
    assert "does not fit" in decision.reason


def test_without_headroom_memory_wins_over_gc_time() -> None:
    decision = run(seen(gc=6.0), memory(700), t0=10_000)  # 87.5 % of the budget
    assert (decision.state, decision.choice.threshold0) == (d.UNREACHABLE, 10_000)
    assert "memory wins" in decision.reason


def test_an_unreachable_goal_holds_the_highest_setting_and_gives_the_figures() -> None:
    decision = run(seen(gc=26.0), memory(300), t0=200_000)
    assert (decision.state, decision.choice.threshold0) == (d.UNREACHABLE, 200_000)
    assert "GC 26.0% of the time (goal 2%)" in decision.reason


def test_long_full_pauses_on_a_surviving_heap_freeze_it_once_after_warm_up() -> None:
    goal = dataclasses.replace(GOAL, max_pause_millis=50)
    frozen = run(seen(gc=1.0, full_ms=100.0, freed_per_ms=30.0), memory(300), goal=goal, t0=50_000)
    assert frozen.freeze and frozen.choice.frozen and frozen.state == d.SETTLING
    again = run(seen(gc=1.0, full_ms=100.0, freed_per_ms=30.0), memory(300), goal=goal, t0=50_000, frozen=True)
    assert not again.freeze and again.state == d.UNREACHABLE
    young = run(seen(gc=1.0, full_ms=100.0, freed_per_ms=30.0, age=5.0), memory(300), goal=goal)
    assert not young.freeze and "warm up" in young.reason
    garbage = run(seen(gc=1.0, full_ms=100.0, freed_per_ms=90_000.0), memory(300), goal=goal)
    assert not garbage.freeze and "keep garbage alive" in garbage.reason


def test_it_falls_back_to_the_startup_defaults_when_it_cannot_measure() -> None:
    blind = run(None, memory(300), t0=50_000)
    assert (blind.state, blind.choice.thresholds) == (d.CANNOT_MEASURE, (700,))
    no_use = run(seen(gc=6.0), MemoryReading(None, LIMIT, "test"), t0=50_000)
    assert (no_use.state, no_use.choice.thresholds) == (d.CANNOT_MEASURE, (700,))


def test_no_limit_and_no_bytes_is_no_budget_never_a_guess() -> None:
    decision = run(seen(gc=6.0), memory(300, limit=None), t0=50_000, defaults=(2000, 10, 10))
    assert (decision.state, decision.choice.thresholds) == (d.NO_BUDGET, (2000,))
    in_bytes = dataclasses.replace(GOAL, memory_percent=None, memory_bytes=500 * MiB)
    assert run(seen(gc=6.0), memory(300, limit=None), goal=in_bytes).state == d.SETTLING


def test_the_rss_of_the_processes_stands_in_for_a_cgroup() -> None:
    in_bytes = dataclasses.replace(GOAL, memory_percent=None, memory_bytes=500 * MiB)
    observation = dataclasses.replace(seen(gc=6.0), rss_bytes=490 * MiB)
    decision = run(observation, MemoryReading(None, None, "no cgroup"), goal=in_bytes, t0=4_000)
    assert decision.collect and decision.choice.threshold0 == 2_000


@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f.name)
def test_the_choice_never_leaves_the_bounds(flavour: Flavour) -> None:
    goal = dataclasses.replace(GOAL, min_threshold0=1_000, max_threshold0=20_000)
    for gc in (0.0, 1.0, 3.0, 10.0, 45.0):
        for used in (100, 700, 790, 1000):
            for t0 in (100, 1_000, 5_000, 20_000, 900_000):
                choice = run(seen(gc=gc), memory(used), goal=goal, t0=t0, flavour=flavour).choice
                assert 1_000 <= choice.threshold0 <= 20_000


def test_relaxed_free_threaded_choice_turns_heap_scaling_back_on() -> None:
    decision = run(seen(gc=6.0), memory(300), flavour=FREE_THREADED, defaults=(2000, 10, 0))
    assert decision.choice.thresholds == (6000, 10)


def test_a_raise_that_did_not_lower_gc_time_is_undone_and_becomes_the_ceiling() -> None:
    """A workload whose garbage costs the same at any rate (the churn benchmark's
    finding): the cheaper setting is held, not raised on to the maximum."""
    undone = run(seen(gc=20.0), memory(300), t0=40_000, last_raise=d.Raise(10_000, 21.0))
    assert (undone.state, undone.choice.threshold0, undone.ceiling) == (d.UNREACHABLE, 10_000, 10_000)
    assert "did not lower the GC time (21.0% -> 20.0%)" in undone.reason
    held = run(seen(gc=20.0), memory(300), t0=10_000, ceiling=10_000)
    assert (held.state, held.choice.threshold0) == (d.UNREACHABLE, 10_000)
    helped = run(seen(gc=8.0), memory(300), t0=40_000, last_raise=d.Raise(10_000, 21.0))
    assert helped.choice.threshold0 == 160_000 and helped.ceiling is None  # it worked: raise on


def test_full_collections_that_dominate_on_a_surviving_heap_are_frozen_without_a_pause_goal() -> None:
    observation = dataclasses.replace(seen(gc=6.0, full_ms=100.0, freed_per_ms=30.0), full_share=0.8)
    decision = run(observation, memory(300), t0=10_000)
    assert decision.freeze and decision.choice.frozen and decision.choice.threshold0 == 10_000
    garbage = dataclasses.replace(seen(gc=6.0, full_ms=100.0, freed_per_ms=90_000.0), full_share=0.8)
    assert not run(garbage, memory(300), t0=10_000).freeze
