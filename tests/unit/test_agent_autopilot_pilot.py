"""The autopilot's loop: election through the state directory, decisions
published as generations, takeover, and a client's change never overwritten."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from agent_support import FakeGC

from gctuner.autopilot.goal import parse_goal
from gctuner.autopilot.memory import MemoryReading
from gctuner.core.runtime import GCRuntime
from gctuner.core.settings import Settings
from gctuner.pod.pilot import ELECTION_SECONDS, WINDOW_SECONDS, Pilot
from gctuner.pod.publisher import Publisher
from gctuner.pod.statedir import StateDir

pytestmark = pytest.mark.timeout(60)

GOAL = parse_goal({"gcTimePercent": 2, "memoryPercent": 80})
MiB = 2**20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Pod:
    """A state directory, a stand-in process record per pid, and pilots on a shared clock."""

    def __init__(self, path: Path) -> None:
        self.state = StateDir(path)
        self.clock = Clock()
        self.used = 300 * MiB
        self.slots = {pid: self.state.register() for pid in (11, 12)}
        self.pause_ns = 0
        self.reported = self.clock.now

    def pilot(self) -> Pilot:
        runtime = GCRuntime(FakeGC((700, 10, 10)), free_threaded=False)  # the flavour under test, on any build
        return Pilot(self.state, runtime, clock=self.clock, wallclock=self.clock,
                     memory=lambda: MemoryReading(self.used, 1000 * MiB, "test"))

    def report(self, gc_percent: float, generation: int = 0) -> None:
        """Both processes rewrite their records: ``gc_percent`` of the time since the last ones."""
        self.pause_ns += int(gc_percent / 100 * (self.clock.now - self.reported) * 1e9)
        self.reported = self.clock.now
        for pid, slot in self.slots.items():
            generations = [{"collections": 10, "collected": 0, "pause_ns_total": self.pause_ns if g == 0 else 0,
                            "histogram": [10, 0]} for g in range(3)]
            self.state.write_record(slot, {"pid": pid, "generation": generation, "thresholds": [700, 10, 10],
                                           "at": self.clock.now, "uptime": 600, "rss": None,
                                           "pauses": {"buckets_ns": [1_000_000], "generations": generations}})

    def desired(self) -> Any:
        return self.state.read_desired()


@pytest.fixture
def pod(tmp_path: Path) -> Pod:
    return Pod(tmp_path / "state")


def test_one_process_steers_and_another_takes_over_when_it_goes(pod: Pod) -> None:
    Publisher(pod.state).steer(GOAL, timeout=0)
    first, second = pod.pilot(), pod.pilot()
    first.step(pod.desired())
    second.step(pod.desired())
    assert first.leading and not second.leading
    first.resign()  # as the kernel does when the process dies
    second.step(pod.desired())
    assert not second.leading, "it tries once a second, not at every tick"
    pod.clock.now += ELECTION_SECONDS
    second.step(pod.desired())
    assert second.leading


def test_gc_time_over_the_goal_is_published_as_a_new_generation(pod: Pod) -> None:
    Publisher(pod.state).steer(GOAL, timeout=0)
    pilot = pod.pilot()
    pod.report(0.0)
    pilot.step(pod.desired())  # elected: the window starts
    pod.clock.now += WINDOW_SECONDS + 10  # past the cool-down of the takeover as well
    pod.report(8.0)
    before = pod.desired()
    pilot.step(before)
    after = pod.desired()
    assert after.generation == before.generation + 1 and after.pilot and after.goal == GOAL
    assert after.settings == Settings((700 * 4,))
    report = pod.state.read_autopilot()
    assert report is not None and report["state"] == "Settling" and "raising threshold0 700 -> 2800" in report["reason"]
    assert report["measured"]["gcTimePercent"] == pytest.approx(8.0, rel=0.01)
    assert [d["thresholds"] for d in report["decisions"]] == [[2800]]


def test_a_client_change_made_meanwhile_is_never_overwritten(pod: Pod) -> None:
    publisher = Publisher(pod.state)
    publisher.steer(GOAL, timeout=0)
    pilot = pod.pilot()
    pod.report(0.0)
    pilot.step(pod.desired())
    pod.clock.now += WINDOW_SECONDS + 10
    pod.report(8.0)
    seen = pod.desired()
    publisher.publish(Settings((50_000,)), timeout=0)  # a Static policy arrives while it decides
    pilot.step(seen)
    assert pod.desired().settings == Settings((50_000,)) and pod.desired().goal is None
    pilot.step(pod.desired())
    assert not pilot.leading, "no goal, no autopilot"


def test_the_same_goal_again_keeps_what_the_autopilot_found(pod: Pod) -> None:
    publisher = Publisher(pod.state)
    publisher.steer(GOAL, timeout=0)
    pod.state.publish(Settings((9000,)), "t", goal=GOAL, pilot=True)
    generation = pod.desired().generation
    publisher.steer(GOAL, timeout=0)  # the operator verifying, or restarted
    assert pod.desired().generation == generation
    publisher.steer(parse_goal({"gcTimePercent": 5}), timeout=0)  # a new goal starts from there
    assert pod.desired().settings == Settings((9000,)) and pod.desired().goal.gc_time_percent == 5


def test_a_takeover_reads_back_the_history_and_the_freeze(pod: Pod) -> None:
    Publisher(pod.state).steer(GOAL, timeout=0)
    pod.state.write_autopilot({"frozen": True, "decisions": [{"state": "Settling", "reason": "r", "thresholds": [1]}]})
    pilot = pod.pilot()
    pod.report(0.0)
    pilot.step(pod.desired())
    pod.clock.now += WINDOW_SECONDS
    pod.report(1.0)
    pilot.step(pod.desired())
    report = pod.state.read_autopilot()
    assert report is not None and report["frozen"] is True
    assert [d["state"] for d in report["decisions"]] == ["Settling", "WithinGoal"]


def test_a_garbage_autopilot_file_is_ignored(pod: Pod) -> None:
    (pod.state.path / "autopilot.json").write_text("[" * 100_000)
    assert pod.state.read_autopilot() is None
    (pod.state.path / "autopilot.json").write_text(json.dumps({"x": "y" * 300_000}))
    assert pod.state.read_autopilot() is None


def test_metrics_say_what_the_autopilot_aims_at_measured_and_chose(pod: Pod) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from gctuner.api.metrics import GCCollector

    Publisher(pod.state).steer(GOAL, timeout=0)
    pod.state.write_autopilot({"state": "Settling", "measured": {"gcTimePercent": 4.0},
                               "choice": {"thresholds": [2800]}, "decisions": [{"changed": True}]})
    registry = CollectorRegistry()
    registry.register(GCCollector(Publisher(pod.state)))
    text = generate_latest(registry).decode()
    assert "gctuner_autopilot_goal_gc_time_ratio 0.02" in text
    assert 'gctuner_autopilot_state{state="Settling"} 1.0' in text
    assert "gctuner_autopilot_gc_time_ratio 0.04" in text
    assert 'gctuner_autopilot_threshold{generation="0"} 2800.0' in text


def test_after_a_change_the_next_window_waits_for_every_process_to_apply_it(pod: Pod) -> None:
    Publisher(pod.state).steer(GOAL, timeout=0)
    pilot = pod.pilot()
    pod.report(0.0)
    pilot.step(pod.desired())  # a new goal: measuring starts at once, no cool-down
    pod.clock.now += WINDOW_SECONDS
    pod.report(8.0)
    pilot.step(pod.desired())
    raised = pod.desired()
    assert raised.settings == Settings((2800,)), "no cool-down for a new goal"
    pod.clock.now += WINDOW_SECONDS + 1
    pod.report(8.0)  # the processes still report the old generation: this is not the new setting's window
    pilot.step(pod.desired())
    assert pod.desired().generation == raised.generation
    pod.report(8.0, generation=raised.generation)  # applied everywhere: the window starts now
    pilot.step(pod.desired())
    pod.clock.now += WINDOW_SECONDS
    pod.report(7.9, generation=raised.generation)  # the raise did not help
    pilot.step(pod.desired())
    report = pod.state.read_autopilot()
    assert report is not None and report["state"] == "GoalUnreachable" and report["ceiling"] == 700
    assert pod.desired().settings == Settings((700,)), "the cheaper setting is held"


def test_metrics_name_the_policy_the_pod_runs(pod: Pod) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from gctuner.api.metrics import GCCollector
    from gctuner.core.applied_by import AppliedBy

    pod.state.publish(Settings((50_000,)), "t", applied_by=AppliedBy("shop/web", 3))
    registry = CollectorRegistry()
    registry.register(GCCollector(Publisher(pod.state)))
    assert 'gctuner_governed_by{policy="web",policy_generation="3"} 1.0' in generate_latest(registry).decode()
