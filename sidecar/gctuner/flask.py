"""Flask extension: ``GCTuner(app)``, or ``GCTuner()`` then ``init_app(app)``.

Adds the ``/tune_gc`` routes around :class:`~gctuner.endpoint.TuneEndpoint`.
Configuration, in order of precedence: keyword options of ``GCTuner``, then
``app.config`` keys (the names in :data:`gctuner.config.NAMES`), then the
environment, then the defaults.

State lives in ``app.extensions["gctuner"]``, never on the extension object,
so one ``GCTuner`` can serve every app an app factory makes.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, current_app, request

from .config import NAMES, Config
from .endpoint import Request, TuneEndpoint

EXTENSION = "gctuner"

VIEW = "gctuner.tune_gc"


class GCTuner:
    """Adds ``GET``/``POST``/``DELETE /tune_gc`` to a Flask app."""

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(NAMES))
        if unknown:
            raise TypeError(
                f"unknown GCTuner option {unknown[0]!r}; the options are {', '.join(NAMES)}"
            )
        self._options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the routes on ``app`` and start following the shared state."""
        if EXTENSION in app.extensions:
            raise RuntimeError(
                f"GCTuner is already registered on the app {app.name!r}; "
                "call init_app once per app (an app factory makes a new app each time)"
            )
        for name, value in vars(Config.from_env(os.environ)).items():
            app.config.setdefault(NAMES[name], value)
        values = {key: app.config[key] for key in NAMES.values()}
        values.update({NAMES[name]: value for name, value in self._options.items()})
        endpoint = TuneEndpoint(Config.from_mapping(values))
        app.extensions[EXTENSION] = endpoint
        # A rule without methods matches every method, so the 405 for an
        # unsupported one is the endpoint's JSON, not Flask's HTML page.
        app.url_map.add(app.url_rule_class(endpoint.config.path, endpoint=VIEW))
        app.view_functions[VIEW] = _tune_gc


def _tune_gc() -> Response:
    endpoint: TuneEndpoint = current_app.extensions[EXTENSION]
    answer = endpoint.precheck(request.method, request.headers)
    if answer is None:
        body = request.stream.read(endpoint.config.max_body_bytes + 1)
        answer = endpoint.handle(Request(request.method, request.headers, body))
    return Response(answer.body, status=answer.status, headers=answer.headers)
