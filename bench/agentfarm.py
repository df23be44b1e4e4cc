"""The agents of many pods, served from one process with the real agent core.

A thousand gunicorn pods do not fit on 2 cores.  The operator cannot tell
the difference: every pod's own address answers ``/tune_gc`` through a
:class:`~gctuner.api.endpoint.TuneEndpoint` with the pod's own state directory
and its own collector (a stand-in ``gc`` module, so the pods do not share
this process's real one).  Each pod has exactly one process, this one, that
applies a change as the POST arrives (``sync``) instead of from a follower
thread: a thousand polling threads would measure themselves, not the operator.
:class:`FarmProcesses` splits a large farm over child processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import threading
from collections.abc import Iterable
from multiprocessing.connection import Connection
from pathlib import Path

from aiohttp import web

from gctuner.api.endpoint import Request, TuneEndpoint
from gctuner.core.config import Config
from gctuner.core.runtime import GCRuntime
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from gctuner.testing import StandInGC

PORT = 5000


class AgentFarm:
    """``with AgentFarm(ips, workdir, token):`` serves every ip's /tune_gc on port 5000."""

    def __init__(self, ips: Iterable[str], workdir: Path, token: str) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a socket and a lock file per pod
        config = Config(token=token, record_pauses=False, apply_timeout=1.0)
        workdir.mkdir(parents=True, exist_ok=True)
        self.collectors: dict[str, StandInGC] = {}
        self._endpoints: dict[str, TuneEndpoint] = {}
        self.endpoints = self._endpoints
        """Each pod's endpoint, by IP (its shared state tells what was asked and by whom)."""
        for ip in ips:
            collector = self.collectors[ip] = StandInGC()
            shared = SharedState(StateDir(workdir / ip, private=True), GCRuntime(gc_module=collector))
            shared.sync()  # registers the pod's one process
            self._endpoints[ip] = TuneEndpoint(config, shared=shared)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agent-farm", daemon=True)
        self._runner: web.AppRunner | None = None

    def all_report(self, thresholds: tuple[int, ...]) -> bool:
        """Every pod's collector runs ``thresholds``: what "every agent reports" means here."""
        return all(c.thresholds == thresholds for c in self.collectors.values())

    def count_reporting(self, thresholds: tuple[int, ...]) -> int:
        return sum(1 for c in self.collectors.values() if c.thresholds == thresholds)

    def pushes(self) -> int:
        """POSTs and DELETEs applied so far, over all pods (each publishes one generation)."""
        total = 0
        for endpoint in self._endpoints.values():
            desired = endpoint.shared.desired()
            total += 0 if desired is None else desired.generation
        return total

    async def _handle(self, request: web.Request) -> web.Response:
        ip = request.transport.get_extra_info("sockname")[0] if request.transport else ""
        endpoint = self._endpoints[ip]
        answer = endpoint.handle(Request(request.method, dict(request.headers), await request.read()))
        return web.Response(body=answer.body, status=answer.status, headers=dict(answer.headers))

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/tune_gc", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for ip in self._endpoints:
            await web.TCPSite(self._runner, ip, PORT, backlog=64).start()

    def __enter__(self) -> AgentFarm:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=120)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


def _serve(ips: list[str], workdir: str, token: str, conn: Connection) -> None:
    """A child process: one ``AgentFarm`` for ``ips``, answering the parent's questions."""
    with AgentFarm(ips, Path(workdir), token) as farm:
        conn.send("ready")
        while True:
            command, argument = conn.recv()
            if command == "report":
                conn.send(farm.all_report(argument))
            elif command == "count":
                conn.send(farm.count_reporting(argument))
            elif command == "pushes":
                conn.send(farm.pushes())
            else:
                conn.send(None)
                return


class FarmProcesses:
    """``AgentFarm`` split over child processes of at most ``per_process`` pods.

    One process holds a listening socket and a lock file per pod: 10,000 pods
    would exceed this machine's 20,000 open files, and would run on one core.
    """

    def __init__(self, ips: Iterable[str], workdir: Path, token: str, per_process: int = 3000) -> None:
        ips = list(ips)
        context = multiprocessing.get_context("spawn")
        chunks = [ips[i : i + per_process] for i in range(0, len(ips), per_process)] or [[]]
        self._children = []
        for index, chunk in enumerate(chunks):
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(chunk, str(workdir / f"farm-{index}"), token, child),
                                      name=f"agent-farm-{index}", daemon=True)  # fmt: skip
            self._children.append((process, parent))

    def _ask(self, command: str, argument: object = None) -> list[object]:
        for _, conn in self._children:
            conn.send((command, argument))
        return [conn.recv() for _, conn in self._children]

    def all_report(self, thresholds: tuple[int, ...]) -> bool:
        return all(self._ask("report", thresholds))

    def count_reporting(self, thresholds: tuple[int, ...]) -> int:
        return sum(int(n) for n in self._ask("count", thresholds))  # type: ignore[call-overload]

    def pushes(self) -> int:
        """POSTs and DELETEs applied by all pods so far (each publishes one generation)."""
        return sum(int(n) for n in self._ask("pushes"))  # type: ignore[call-overload]

    def __enter__(self) -> FarmProcesses:
        for process, _ in self._children:
            process.start()
        for process, conn in self._children:
            if not conn.poll(600) or conn.recv() != "ready":
                raise RuntimeError(f"{process.name} did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        for process, conn in self._children:
            try:
                conn.send(("stop", None))
            except OSError:
                pass
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
