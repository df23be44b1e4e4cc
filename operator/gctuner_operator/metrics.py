"""The operator's Prometheus metrics: what it pushed, what it found, how fast it converged.

Built on a registry passed in (a fresh one per test), never registered at
import time; ``serve`` exposes them over HTTP with prometheus_client's own server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_ROLLOUT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.pushes = Counter(
            "gctuner_operator_pushes", "Requests that change a pod's settings, by result.",
            ["result"], registry=registry,  # applied, restored, failed
        )
        self.push_seconds = Histogram(
            "gctuner_operator_push_duration_seconds", "Time one push to one pod took, failed ones included.",
            buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.verifications = Counter(
            "gctuner_operator_verifications", "Live reads of a pod's state, by what they found.",
            ["result"], registry=registry,  # in_place, drifted, unreachable
        )
        self.rollout_seconds = Histogram(
            "gctuner_operator_rollout_duration_seconds",
            "From a policy generation first seen to every pod it governs applied.",
            buckets=_ROLLOUT_BUCKETS, registry=registry,
        )
        self.pods = Gauge(
            "gctuner_operator_pods", "Opted-in pods governed by a policy, by state, as last written to status.",
            ["namespace", "policy", "state"], registry=registry,  # applied, failed, pending
        )


def serve(metrics: OperatorMetrics, address: str, port: int) -> None:
    """``/metrics`` on ``address:port``, in a thread of prometheus_client's own."""
    start_http_server(port, addr=address, registry=metrics.registry)
