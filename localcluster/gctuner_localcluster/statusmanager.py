"""Pod status writes: one in flight per pod, coalesced, only when something changed.

A thousand pods flip state at once when a benchmark starts; each change only
marks its pod dirty, and a few writers patch ``pods/status`` with what the
pod looks like by then, so many changes of one pod become one write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from .kubeapi import STRATEGIC_PATCH, ApiError, KubeApi
from .podworker import PodWorker

log = logging.getLogger("kubelet")


class StatusManager:
    """Writes the status of dirty pods with ``writers`` concurrent writers."""

    def __init__(self, api: KubeApi, workers: Mapping[str, PodWorker], writers: int = 8) -> None:
        self._api = api
        self._workers = workers  # the kubelet's, by uid; read only here
        self._writers = writers
        self._dirty: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._retries: set[asyncio.Task] = set()

    def mark_dirty(self, uid: str) -> None:
        if uid not in self._queued:
            self._queued.add(uid)
            self._dirty.put_nowait(uid)

    async def run(self) -> None:
        try:
            await asyncio.gather(*(self._write_loop() for _ in range(self._writers)))
        finally:
            for task in self._retries:
                task.cancel()

    async def _write_loop(self) -> None:
        """A pod stays queued while its write is in flight, so no other writer can
        send an older status after a newer one; what changed meanwhile is written next."""
        while True:
            uid = await self._dirty.get()
            try:
                while (worker := self._workers.get(uid)) is not None and not worker.retiring:
                    status = worker.status(time.time())
                    if status == worker.last_sent or not await self._write(worker, status):
                        break
            finally:
                self._queued.discard(uid)

    async def _write(self, worker: PodWorker, status: dict) -> bool:
        try:
            await self._api.request(
                "PATCH", f"/api/v1/namespaces/{worker.namespace}/pods/{worker.name}/status",
                body={"metadata": {"uid": worker.uid}, "status": status}, content_type=STRATEGIC_PATCH,
            )
        except ApiError as exc:
            if exc.status not in (404, 409):  # else gone: its DELETED event retires the worker
                self._retry(worker, exc)
            return False
        worker.last_sent, worker.write_failures = status, 0
        return True

    def _retry(self, worker: PodWorker, exc: ApiError) -> None:
        """Retry with a growing delay; say so once, not once per pod per second while the API is away."""
        worker.write_failures += 1
        if worker.write_failures == 1:
            log.warning("%s: status update failed (%s); retrying", worker.label, exc)
        task = asyncio.create_task(self._later(worker.uid, min(0.5 * 2 ** worker.write_failures, 10.0)))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _later(self, uid: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.mark_dirty(uid)
