"""Prometheus metrics of the collector in every process of the pod.

With its adapter :mod:`gctuner.metrics`, the only module that imports
prometheus_client: :mod:`gctuner.api.routes` imports it only when that is
installed. Nothing registers at import. A scrape lands in one process (or in
the sidecar), so the numbers come from the records every process keeps in the
state directory, refreshed every :data:`~gctuner.pod.shared.RESYNC_SECONDS`
(the answering process's own numbers as of the scrape). A scrape reads; it
never writes a record.

Each process is its own series, labelled ``pid``: summing in the agent would
make a counter drop whenever a worker is replaced, which Prometheus reads as a
reset. Aggregate in the query instead::

    sum without (pid) (rate(gctuner_gc_collections_total[5m]))

A re-spawned worker is a new ``pid``: series come and go with processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from gctuner.api.endpoint import Request, Response, json_response
from gctuner.pod.publisher import Publisher, record_generation

_STATS = (
    ("collections", "gctuner_gc_collections", "Collections of each generation"),
    ("collected", "gctuner_gc_collected_objects", "Objects each generation's collections freed"),
    ("uncollectable", "gctuner_gc_uncollectable_objects", "Objects found uncollectable"),
)


class GCCollector(Collector):
    """Collections, pauses, thresholds and frozen objects of every live process.

    ``publisher`` is whoever reads the state directory: this process's
    follower (see :func:`gctuner.pod.agent.follow_config`) or the sidecar's
    :class:`~gctuner.pod.publisher.Publisher`. Registers nowhere by itself
    (:class:`gctuner.metrics.GCCollector` is the one that does).
    """

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    def collect(self) -> Iterator[Metric]:
        desired = self.publisher.desired()
        records = self.publisher.records()
        generation = 0 if desired is None else desired.generation
        applied = sum(1 for record in records if record_generation(record) >= generation)
        processes = GaugeMetricFamily(
            "gctuner_processes",
            "Live processes of the pod, and how many applied the desired settings",
            labels=["state"],
        )
        processes.add_metric(["applied"], applied)
        processes.add_metric(["total"], len(records))
        yield processes
        if desired is not None and desired.applied_by is not None:
            yield _governed_by(desired.applied_by.policy, desired.applied_by.generation)
        yield from _per_process(records)
        if desired is not None and desired.goal is not None:
            yield from _autopilot(desired.goal.gc_time_percent, self.publisher.state_dir.read_autopilot() or {})


def _governed_by(policy: str, generation: int) -> Metric:
    """Which GCPolicy's settings the pod runs (what the operator's push said),
    so a query can join the pod's series to its policy (per-policy GC time)."""
    info = GaugeMetricFamily("gctuner_governed_by", "The GCPolicy whose settings the pod runs (always 1)",
                             labels=["policy", "policy_generation"])
    info.add_metric([policy.rpartition("/")[2], str(generation)], 1)
    return info


AUTOPILOT_STATES = ("WithinGoal", "Settling", "GoalUnreachable", "NoMemoryBudget", "CannotMeasure")


def _autopilot(goal_percent: float, report: Mapping[str, Any]) -> Iterator[Metric]:
    """What the pod's autopilot aims at, measured and chose (``mode: Auto`` only)."""
    goal = GaugeMetricFamily("gctuner_autopilot_goal_gc_time_ratio", "The goal's share of wall time in the collector")
    goal.add_metric([], goal_percent / 100)
    yield goal
    state = GaugeMetricFamily("gctuner_autopilot_state", "1 for the autopilot's current state", labels=["state"])
    for name in AUTOPILOT_STATES:
        state.add_metric([name], 1.0 if report.get("state") == name else 0.0)
    yield state
    measured = (report.get("measured") or {}).get("gcTimePercent")
    if isinstance(measured, (int, float)):
        share = GaugeMetricFamily("gctuner_autopilot_gc_time_ratio",
                                  "Share of wall time in the collector in the last window (the worst process)")
        share.add_metric([], measured / 100)
        yield share
    chosen = (report.get("choice") or {}).get("thresholds")
    if isinstance(chosen, list):
        threshold = GaugeMetricFamily("gctuner_autopilot_threshold", "Threshold the autopilot chose", labels=["generation"])
        for index, value in enumerate(chosen):
            if type(value) is int:
                threshold.add_metric([str(index)], value)
        yield threshold
    decisions = report.get("decisions")
    changes = GaugeMetricFamily("gctuner_autopilot_recent_changes", "Changes among the last decisions kept")
    changes.add_metric([], sum(1 for d in decisions if isinstance(d, dict) and d.get("changed")) if isinstance(decisions, list) else 0)
    yield changes


def _per_process(records: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["pid", "generation"]
    stats = {
        key: CounterMetricFamily(name, f"{text} since the process started", labels=labels)
        for key, name, text in _STATS
    }
    pauses = HistogramMetricFamily(
        "gctuner_gc_pause_seconds",
        "How long each collection stopped the process, since recording started",
        labels=labels,
    )
    thresholds = GaugeMetricFamily(
        "gctuner_gc_threshold", "Collector threshold in force", labels=labels
    )
    frozen = GaugeMetricFamily(
        "gctuner_gc_frozen_objects", "Objects in the permanent generation", labels=["pid"]
    )
    for record in records:
        pid = str(record["pid"])
        for index, stat in enumerate(record.get("stats") or ()):
            for key, family in stats.items():
                family.add_metric([pid, str(index)], stat.get(key, 0))
        for index, value in enumerate(record.get("thresholds") or ()):
            thresholds.add_metric([pid, str(index)], value)
        frozen.add_metric([pid], record.get("frozen") or 0)
        recorded: dict[str, Any] = record.get("pauses") or {}  # None: not recording
        for generation in recorded.get("generations", ()):
            buckets = _cumulative(recorded["buckets_ns"], generation["histogram"])
            pauses.add_metric(
                [pid, str(generation["generation"])],
                buckets,
                sum_value=generation["pause_ns_total"] / 1e9,
            )
    yield from stats.values()
    yield pauses
    yield thresholds
    yield frozen


def _cumulative(bounds_ns: list[int], counts: list[int]) -> list[tuple[str, float]]:
    """The recorder's per-bucket counts as Prometheus's cumulative ``le`` buckets."""
    total = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip([*(str(b / 1e9) for b in bounds_ns), "+Inf"], counts):
        total += count
        buckets.append((bound, total))
    return buckets


class MetricsPage:
    """``GET /metrics`` for an adapter: a private registry holding a
    :class:`GCCollector`, in the text format the scraper asks for."""

    def __init__(self, publisher: Publisher) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(GCCollector(publisher))

    def precheck(self, method: str, headers: Mapping[str, str]) -> Response | None:
        if method == "GET":
            return None
        return json_response(
            405, {"message": "only GET is supported here"}, (("Allow", "GET"),)
        )

    def handle(self, request: Request) -> Response:
        refusal = self.precheck(request.method, request.headers)
        if refusal is not None:
            return refusal
        encoder, content_type = choose_encoder(request.header("accept") or "")
        body = encoder(self.registry)
        return Response(
            200,
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
            body,
        )
