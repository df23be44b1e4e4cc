"""A small kubelet that runs pods as local processes, for a cluster without containers.

``python -m gctuner_localcluster.kubelet --kubeconfig PATH --state-dir DIR``

It registers a Node, binds unscheduled pods to it (there is no scheduler),
runs each pod bound to it (``podworker``), reports pod status through
``pods/status`` only when something changed, and on deletion stops the
processes and removes the pod.  SIGTERM or SIGINT stops every pod process
before it exits.  The operator, the agent and kubectl see what a real
kubelet would show them; see DESIGN.md, "A real cluster on one machine".
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from .binder import Binder
from .kubeapi import ApiError, KubeApi, Reflector
from .node import NodeReporter
from .orphans import reap_orphans
from .podenv import ConfigError, decode_object_data
from .podprocess import Timing
from .podstatus import IpAllocator
from .podworker import PodWorker
from .statusmanager import StatusManager

log = logging.getLogger("kubelet")
Json = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
_KIND_PATH = {"secret": "secrets", "configmap": "configmaps"}
_TIMING = Timing()  # frozen: one default for every kubelet


class Kubelet:
    """Node registration, binding, pod lifecycle and status reporting for one node."""

    def __init__(
        self, api: KubeApi, http: aiohttp.ClientSession, *, node_name: str, state_dir: Path,
        repo_root: Path, venv_bin: str, ips: IpAllocator, timing: Timing = _TIMING,
    ) -> None:
        self._api, self._http = api, http
        self.node_name = node_name
        self._state_dir, self._repo_root, self._venv_bin = state_dir, repo_root, venv_bin
        self._timing = timing
        self._ips = ips
        self._workers: dict[str, PodWorker] = {}  # by uid: a re-created pod of the same name is another pod
        self._object_cache: dict[tuple[str, str, str], dict[str, str] | None] = {}
        self._statuses = StatusManager(api, self._workers)
        self._deleting: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    # --- running -----------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then stop every pod process."""
        (self._state_dir / "pids").mkdir(parents=True, exist_ok=True)
        orphans = reap_orphans(self._state_dir / "pids")
        if orphans:
            log.warning("killed %d process groups left by a previous kubelet", orphans)
        reporter = NodeReporter(self._api, self.node_name, self._state_dir)
        loops = [
            self._spawn(reporter.run()),
            self._spawn(Binder(self._api, self.node_name).run()),
            self._spawn(Reflector(
                self._api, "/api/v1/pods", {"fieldSelector": f"spec.nodeName={self.node_name}"},
                self._sync_pods, self._on_pod,
            ).run()),
            self._spawn(self._statuses.run()),
        ]
        await stop.wait()
        workers = list(self._workers.values())  # before cancelling deletions that would forget them
        log.info("stopping %d pods", len(workers))
        for task in (*loops, *self._tasks):
            task.cancel()
        await asyncio.gather(*loops, *self._tasks, return_exceptions=True)
        grace = min(3.0, self._timing.grace_cap)  # the harness waits 10 s for us at most
        await asyncio.gather(
            *(worker.stop(grace) for worker in workers), reporter.mark_stopped(),
            return_exceptions=True,
        )

    def _spawn(self, coro: Coroutine) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error", exc_info=task.exception())

    # --- pods bound to this node --------------------------------------------------------

    def _sync_pods(self, pods: list[Json]) -> None:
        """After a (re)list: stop what vanished while we were not watching, then catch up."""
        present = {pod["metadata"]["uid"] for pod in pods}
        for worker in list(self._workers.values()):
            if worker.uid not in present:
                self._retire(worker, delete=False)
        for pod in pods:
            self._on_pod("ADDED", pod)

    def _on_pod(self, kind: str, pod: Json) -> None:
        meta = pod["metadata"]
        meta.pop("managedFields", None)  # half of a pod's size, and never read: workers keep pods
        worker = self._workers.get(meta["uid"])
        if kind == "DELETED":
            if worker is not None:
                worker.update(pod)  # its final deletionGracePeriodSeconds
                self._retire(worker, delete=False)
        elif meta.get("deletionTimestamp"):
            if worker is not None:
                worker.update(pod)
                self._retire(worker, delete=True)
            elif meta["uid"] not in self._deleting:  # finished, or never run by us
                self._deleting.add(meta["uid"])
                self._spawn(self._delete(meta))
        elif worker is not None:
            if worker.update(pod):
                self._statuses.mark_dirty(worker.uid)
        elif pod.get("status", {}).get("phase") not in TERMINAL:
            self._admit(pod)

    def _admit(self, pod: Json) -> None:
        previous_ip = pod.get("status", {}).get("podIP", "")
        if previous_ip and self._ips.reserve(previous_ip):
            ip = previous_ip  # a pod kept across a kubelet restart keeps its address
        else:
            try:
                ip = self._ips.allocate()
            except RuntimeError as exc:
                log.error("%s/%s: not started: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], exc)
                return
        worker = PodWorker(
            pod, ip, state_dir=self._state_dir, repo_root=self._repo_root, venv_bin=self._venv_bin,
            timing=self._timing, http=self._http, read=self._read_object,
            on_change=lambda: self._statuses.mark_dirty(worker.uid),
        )
        self._workers[worker.uid] = worker
        log.info("%s: pod admitted at %s", worker.label, ip)
        worker.start()
        self._statuses.mark_dirty(worker.uid)

    def _retire(self, worker: PodWorker, delete: bool) -> None:
        if not worker.retiring:
            worker.retiring = True
            self._spawn(self._finish(worker, delete))

    async def _finish(self, worker: PodWorker, delete: bool) -> None:
        """Stop the pod's processes, free its address, and (on a graceful deletion) remove it."""
        try:
            await worker.stop(worker.grace(self._timing.grace_cap))
            self._ips.release(worker.ip)
            log.info("%s: pod stopped, %s released", worker.label, worker.ip)
            if delete:
                await self._delete(worker.pod["metadata"])
        finally:
            self._workers.pop(worker.uid, None)

    async def _delete(self, meta: Mapping) -> None:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                "preconditions": {"uid": meta["uid"]}}
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        try:
            for attempt in range(5):
                try:
                    await self._api.request("DELETE", path, body=body)
                    return
                except ApiError as exc:
                    if exc.status in (404, 409):  # already gone, or a new pod took the name
                        return
                    log.warning("%s/%s: delete failed: %s", meta["namespace"], meta["name"], exc)
                await asyncio.sleep(0.5 * 2 ** attempt)
        finally:
            self._deleting.discard(meta["uid"])

    async def _read_object(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's or ConfigMap's data for a container's env; None if it does not exist.

        The last value read is kept, as a real kubelet's secret manager does, so
        a container restarting while the API server is away still starts.
        """
        key = (kind, namespace, name)
        try:
            obj = await self._api.request("GET", f"/api/v1/namespaces/{namespace}/{_KIND_PATH[kind]}/{name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            if key in self._object_cache:
                return self._object_cache[key]
            raise ConfigError(f"reading {kind} {namespace}/{name}: {exc}") from exc  # retried by the runner
        self._object_cache[key] = decode_object_data(kind, obj)
        return self._object_cache[key]


# --- command line -------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m gctuner_localcluster.kubelet", description=__doc__.split("\n")[0])
    parser.add_argument("--kubeconfig", required=True, help="admin kubeconfig of the cluster")
    parser.add_argument("--state-dir", required=True, type=Path, help="pod logs and process records")
    parser.add_argument("--node-name", default="local", help="name of the Node to register (default: local)")
    parser.add_argument("--repo-root", type=Path, default=Path.cwd(),
                        help="working directory of every pod process (default: the current directory)")
    return parser.parse_args(argv)


def claim_address_block(lock_dir: Path) -> tuple[int, int]:
    """The first ``127.B/16`` that no other kubelet on this machine uses, and the descriptor that holds it.

    The flock lasts as long as our process, so a crashed kubelet frees its block.
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    for block in range(255):
        fd = os.open(lock_dir / f"127.{block}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return block, fd
    raise RuntimeError(f"every 127.x block is held by another kubelet (locks in {lock_dir})")


async def serve(args: argparse.Namespace) -> None:
    block, _lock = claim_address_block(Path(tempfile.gettempdir()) / "gctuner-kubelet")
    if block:
        log.info("another kubelet on this machine holds 127.0/16: pods get addresses in 127.%d/16", block)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api = await KubeApi.connect(args.kubeconfig)
    try:
        # Probes as a kubelet sends them: no keep-alive, no proxy from the environment.
        connector = aiohttp.TCPConnector(limit=64, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            kubelet = Kubelet(
                api, http, node_name=args.node_name, state_dir=args.state_dir.resolve(),
                repo_root=args.repo_root.resolve(), venv_bin=str(Path(sys.executable).parent),
                ips=IpAllocator(block),
            )
            await kubelet.run(stop)
    finally:
        await api.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s kubelet %(message)s")
    args.state_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args))
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
