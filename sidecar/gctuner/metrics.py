"""Prometheus metrics for an app that serves its own ``/metrics``.

``GCCollector()`` in the app, with ``GCTUNER_METRICS=0`` so the adapters do
not serve a second ``/metrics``: it makes this process follow the shared state
(as the adapters do) and registers in prometheus_client's default registry,
or in ``registry=``. The collector itself is
:class:`gctuner.api.metrics.GCCollector`; see there what it reports.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry

from gctuner.api import metrics
from gctuner.api.metrics import MetricsPage
from gctuner.pod import agent
from gctuner.pod.publisher import Publisher

__all__ = ["GCCollector", "MetricsPage"]


class GCCollector(metrics.GCCollector):
    """Collections, pauses, thresholds and frozen objects of every live process.

    ``publisher`` is whoever reads the state directory; by default this
    process's follower, started here (see :func:`gctuner.pod.agent.follow_config`).
    """

    def __init__(
        self,
        publisher: Publisher | None = None,
        *,
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        super().__init__(publisher if publisher is not None else agent.follow_config())
        if registry is not None:
            registry.register(self)
