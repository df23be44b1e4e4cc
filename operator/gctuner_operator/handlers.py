"""Every kopf registration of the operator, in one place; each a line or two.

The logic lives in plain modules (``reconciler`` and what it wires,
``gctuner.policy``) that tests use without kopf. kopf gives us the watches,
the in-memory index of policies, the finalizer, peering and the liveness
probe. Pods are not kopf's: it has no server-side label selector, so our own
watch (``pod_watch``) asks for the opted-in pods only, and ``standby``
starts it once kopf's index holds every policy (after a restart no pod is
judged before every policy is known) and lets the reconciler act only while
this replica is the active one. Every handler is ``async``: kopf runs plain
functions in a thread pool, and the reconciler's queue, timers and
dictionaries belong to the event loop.

The signatures follow kopf's handler protocols (``namespace`` may be None
for cluster-scoped objects, loggers may be adapters), so mypy checks them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from prometheus_client import CollectorRegistry

from gctuner.policy import PolicyView

from .agent_client import AgentClient
from .config import OperatorConfig
from .kube import Kube, connect
from .metrics import OperatorMetrics, serve
from .pod_watch import PodWatch
from .reconciler import Reconciler
from .resources import GROUP, PLURAL, VERSION
from .standby import Leadership, operate

OVERRIDES = "config_overrides"
"""The memo key under which ``__main__`` hands its command-line settings to ``start``."""

PEERING = "peering"
"""The memo key of ``{"name", "identity", "priority"}`` when replicas peer (``--peering``)."""

NAMESPACES = "namespaces"
"""The memo key of the namespaces watched (``--namespace``); none: the whole cluster."""


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    configure(settings)
    config = OperatorConfig.from_env(overrides=memo.get(OVERRIDES))
    metrics = OperatorMetrics(CollectorRegistry())
    if config.metrics_bind is not None:
        serve(metrics, *config.metrics_bind)
    api = await connect()
    memo.reconciler = Reconciler(
        policies=kwargs["gcpolicies"],  # kopf passes each index by its function's name
        pods={},
        agent=AgentClient(config.push_timeout, config.max_parallel),
        telemetry_agent=AgentClient(config.push_timeout, config.telemetry_parallel),
        kube=Kube(api),
        config=config,
        metrics=metrics,
    )
    peering, namespaces = memo.get(PEERING) or {}, list(memo.get(NAMESPACES) or ())
    leadership = Leadership(api, peering.get("name"), peering.get("identity", ""), peering.get("priority", 0), namespaces)
    watch = memo.pod_watch = PodWatch(api, _reconciler(memo), namespaces, retry_max=min(config.retry_max, 10.0))
    memo.operating = asyncio.create_task(
        operate(_reconciler(memo), watch, leadership, api, kwargs["gcpolicies"], namespaces), name="gctuner pods"
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    memo.operating.cancel()
    await asyncio.gather(memo.operating, return_exceptions=True)
    await _reconciler(memo).close()


@kopf.index(GROUP, VERSION, PLURAL)
async def gcpolicies(namespace: str | None, body: kopf.Body, **_: Any) -> dict[str | None, PolicyView]:
    return {namespace: PolicyView.from_body(body)}


@kopf.on.event(GROUP, VERSION, PLURAL)
async def policy_event(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    _reconciler(memo).policy_changed(namespace or "")


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def policy_deleted(
    namespace: str | None, name: str, memo: kopf.Memo, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any
) -> None:
    """The finalizer: hand the policy's pods to the next winner or their defaults first."""
    if not await _reconciler(memo).release((namespace or "", name)):
        logger.warning("some pods of %s still hold its settings; letting the deletion go on, retrying them", name)


def _reconciler(memo: kopf.Memo) -> Reconciler:
    reconciler: Reconciler = memo.reconciler
    return reconciler


def configure(settings: kopf.OperatorSettings) -> None:
    """Our names on everything kopf stores, and no Event per handler run."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    # kopf logs every pod event handled; our own log says what happened to which pod.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
