"""The agents of many pods, served from one process with the real agent core.

A thousand gunicorn pods do not fit on 2 cores.  The operator cannot tell
the difference: every pod's own address answers ``/tune_gc`` through a
:class:`~gctuner.api.endpoint.TuneEndpoint` with the pod's own state directory
and its own collector (a stand-in ``gc`` module, so the pods do not share
this process's real one).  Each pod has exactly one process, this one, that
applies a change as the POST arrives (``sync``) instead of from a follower
thread: a thousand polling threads would measure themselves, not the operator.
"""

from __future__ import annotations

import asyncio
import resource
import threading
from collections.abc import Iterable
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
