"""WSGI middleware: ``app = GCTunerMiddleware(app)`` for Django or any WSGI app.

It answers ``/tune_gc`` (and ``/metrics``, see :mod:`gctuner.api.routes`) itself
and passes every other request to the app untouched. Configuration: keyword
options (the field names of :class:`~gctuner.core.config.Config`), then the
environment, then the defaults. Creating it makes the process follow the
shared state, so create it where the app is created (``wsgi.py``); ``shared=``
gives it the state to answer for instead (a test's, with a stand-in collector).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from gctuner.api.endpoint import TuneEndpoint
from gctuner.api.routes import Routes, read_declared
from gctuner.core.config import Config
from gctuner.pod import agent
from gctuner.pod.publisher import Publisher

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_UNPREFIXED = {"CONTENT_TYPE": "content-type", "CONTENT_LENGTH": "content-length"}


class GCTunerMiddleware:
    """Wraps a WSGI app; the agent's paths never reach it."""

    def __init__(self, app: WSGIApp, *, shared: Publisher | None = None, **options: Any) -> None:
        self.app = app
        config = Config.with_options(options, os.environ, "GCTunerMiddleware")
        shared = shared if shared is not None else agent.follow_config(config)
        self.routes = Routes(TuneEndpoint(config, shared=shared))

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        route = self.routes.find(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        def read(limit: int) -> bytes:
            return read_declared(
                environ["wsgi.input"].read,
                environ.get("CONTENT_LENGTH"),
                limit,
                terminated=bool(environ.get("wsgi.input_terminated")),
            )

        method = environ["REQUEST_METHOD"]
        answer = self.routes.respond(route, method, request_headers(environ), read)
        start_response(answer.status_line, answer.headers)
        return [answer.body]


def request_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request headers of a WSGI environ, by their lower-case HTTP names."""
    headers = {
        name[5:].replace("_", "-").lower(): value
        for name, value in environ.items()
        if name.startswith("HTTP_")
    }
    headers.update({_UNPREFIXED[name]: environ[name] for name in _UNPREFIXED if environ.get(name)})
    return headers

