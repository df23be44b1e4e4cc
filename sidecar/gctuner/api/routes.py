"""What every adapter answers, and the three steps of answering it.

Flask, WSGI, ASGI and the sidecar server differ only in how they read a
request and write a response; which paths are ours, the order of the checks
and the bound on the body are decided here once, so they cannot drift apart.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Callable, Protocol

from gctuner.api.endpoint import Request, Response, TuneEndpoint, json_response
from gctuner.pod.publisher import Publisher

METRICS_PATH = "/metrics"


class Route(Protocol):
    """A page answered from request data: :class:`TuneEndpoint` or ``/metrics``."""

    def precheck(self, method: str, headers: Mapping[str, str]) -> Response | None: ...

    def handle(self, request: Request) -> Response: ...


class Routes:
    """The endpoint at ``config.path``, and ``/metrics`` when configured and
    prometheus_client is installed (the agent runs without it)."""

    def __init__(self, endpoint: TuneEndpoint) -> None:
        self.endpoint = endpoint
        self.paths: dict[str, Route] = {endpoint.config.path: endpoint}
        if endpoint.config.metrics and importlib.util.find_spec("prometheus_client"):
            from gctuner.api.metrics import MetricsPage  # only now: prometheus_client is optional

            self.paths[METRICS_PATH] = MetricsPage(endpoint.shared)

    @property
    def shared(self) -> Publisher:
        return self.endpoint.shared

    def find(self, path: str) -> Route | None:
        """The route for ``path``, or None: not ours, pass the request on."""
        return self.paths.get(path)

    def body_limit(self, method: str) -> int:
        """How many body bytes to read: one more than allowed, so that an
        undeclared oversized body is seen as such; none but for a POST."""
        return self.endpoint.config.max_body_bytes + 1 if method == "POST" else 0

    def respond(
        self, route: Route, method: str, headers: Mapping[str, str], read: Callable[[int], bytes]
    ) -> Response:
        """Refuse before reading when possible, read at most the bound, answer.

        ``read(limit)`` returns up to ``limit`` body bytes; it is not called
        when there is nothing to read. (The ASGI middleware takes the same
        steps, with an awaited read.)"""
        answer = route.precheck(method, headers)
        if answer is not None:
            return answer
        limit = self.body_limit(method)
        try:
            body = read(limit) if limit else b""
        except Exception as error:  # noqa: BLE001  (see unreadable)
            return unreadable(error)
        return route.handle(Request(method, headers, body))


def unreadable(error: BaseException) -> Response:
    """The answer to a body the server could not read as framed (gunicorn's
    ``InvalidChunkSize``, Werkzeug's ``ClientDisconnected``, a reset socket):
    the client's framing, so a 400 in JSON, not the framework's HTML 500. Any
    ``Exception`` counts, as each server raises its own; nothing was applied."""
    reason = f"{type(error).__name__}: {error}"[:200] if str(error) else type(error).__name__
    return json_response(
        400, {"message": f"the body could not be read as framed ({reason}); nothing was applied"}
    )


def read_declared(
    read: Callable[[int], bytes], content_length: str | None, limit: int, *, terminated: bool
) -> bytes:
    """At most ``limit`` body bytes, never reading past the body's end.

    A blocking stream (WSGI's ``wsgi.input``, a socket) is read up to the
    declared ``Content-Length`` (a number: the endpoint checked it). A body
    without one (chunked) is read only from a stream that ends with the body
    (``terminated``, as gunicorn and Werkzeug mark theirs), else it is empty.
    """
    if content_length:
        return read(min(int(content_length), limit))
    return read(limit) if terminated else b""
