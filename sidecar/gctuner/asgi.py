"""ASGI middleware: ``app = GCTunerMiddleware(app)`` for Starlette, FastAPI or
any ASGI app.

HTTP requests to ``/tune_gc`` (and ``/metrics``, see :mod:`gctuner.api.routes`)
are answered here; everything else, lifespan and websocket included, goes to
the app untouched. The body is read up to the size bound and no further. A
POST waits (bounded by ``apply_timeout``) for the other processes to apply
the change, so the core runs in a worker thread of the running async library:
asyncio's executor (uvicorn, hypercorn, daphne), trio's ``to_thread`` (hypercorn
``-k trio``, anyio on trio); under any other library it runs inline, blocking
the loop for at most ``apply_timeout`` but answered all the same.

A request whose client went away before its body was whole (a reset, or the
server's own 400 to broken chunked framing) is never applied and gets no
answer: nobody could read it. Configuration, and ``shared=``, as for
:mod:`gctuner.wsgi`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import Awaitable, MutableMapping
from typing import Any, Callable, TypeVar

from gctuner.api.endpoint import Request, Response, TuneEndpoint
from gctuner.api.routes import Routes
from gctuner.core.config import Config
from gctuner.pod import agent
from gctuner.pod.publisher import Publisher

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")


class GCTunerMiddleware:
    """Wraps an ASGI app; the agent's paths never reach it."""

    def __init__(self, app: ASGIApp, *, shared: Publisher | None = None, **options: Any) -> None:
        self.app = app
        config = Config.with_options(options, os.environ, "GCTunerMiddleware")
        shared = shared if shared is not None else agent.follow_config(config)
        self.routes = Routes(TuneEndpoint(config, shared=shared))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.routes.find(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        answer = route.precheck(method, headers)
        if answer is None:
            limit = self.routes.body_limit(method)
            body = await read_body(receive, limit) if limit else b""
            if body is None:
                return  # the client is gone: nothing applied, nobody to answer
            answer = await run_blocking(route.handle, Request(method, headers, body))
        await send_response(send, answer)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The body's first ``limit`` bytes: stop reading once there are that many.
    None if the client disconnected before the body was whole."""
    body = b""
    while len(body) < limit:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body[:limit]


async def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread of the running async library,
    so that its event loop keeps serving while a POST waits."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio (hypercorn -k trio, anyio's trio backend)?
        pass
    else:
        return await loop.run_in_executor(None, functools.partial(function, *args))
    trio = sys.modules.get("trio")  # running under trio means it is imported
    if trio is not None and _in_trio(trio):
        result: T = await trio.to_thread.run_sync(functools.partial(function, *args))
        return result
    return function(*args)  # an unknown library: inline, bounded by apply_timeout


def _in_trio(trio: Any) -> bool:
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


async def send_response(send: Send, answer: Response) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in answer.headers
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
