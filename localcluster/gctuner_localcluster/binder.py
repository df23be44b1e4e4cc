"""The scheduler's one job, for a single node: bind every unscheduled pod to it.

A pod that names another scheduler, has scheduling gates or is being deleted
is left alone, as kube-scheduler would leave it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from .kubeapi import ApiError, KubeApi, Reflector

log = logging.getLogger("kubelet")
Json = dict[str, Any]
UNSCHEDULED = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed"


class Binder:
    """Watches unscheduled pods and binds them through ``pods/binding``."""

    def __init__(self, api: KubeApi, node_name: str) -> None:
        self._api = api
        self._node = node_name
        self._binding: dict[str, asyncio.Task] = {}  # by pod uid: one attempt at a time

    async def run(self) -> None:
        try:
            await Reflector(self._api, "/api/v1/pods", {"fieldSelector": UNSCHEDULED},
                            self._on_list, self._on_event).run()
        finally:
            tasks = list(self._binding.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_list(self, pods: list[Json]) -> None:
        for pod in pods:
            self._consider(pod)

    def _on_event(self, kind: str, pod: Json) -> None:
        if kind != "DELETED":
            self._consider(pod)

    def _consider(self, pod: Json) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        if (spec.get("nodeName") or meta.get("deletionTimestamp") or spec.get("schedulingGates")
                or spec.get("schedulerName", "default-scheduler") != "default-scheduler"
                or meta["uid"] in self._binding):
            return
        self._binding[meta["uid"]] = asyncio.create_task(self._bind(meta))

    async def _bind(self, meta: Mapping) -> None:
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding"
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self._node}}
        delay = 0.5
        try:
            while True:
                try:
                    await self._api.request("POST", path, body=body)
                    return
                except ApiError as exc:
                    if exc.status in (404, 409):  # gone, or bound meanwhile
                        return
                    log.warning("%s/%s: binding failed: %s", meta["namespace"], meta["name"], exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        finally:
            self._binding.pop(meta["uid"], None)
