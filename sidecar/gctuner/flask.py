"""Flask extension: ``GCTuner(app)``, or ``GCTuner()`` then ``init_app(app)``.

Adds the ``/tune_gc`` routes around :class:`~gctuner.api.endpoint.TuneEndpoint`,
and ``/metrics`` (see :mod:`gctuner.api.routes`).
Configuration, in order of precedence: keyword options of ``GCTuner``, then
``app.config`` keys (the names in :data:`gctuner.core.config.NAMES`), then the
environment, then the defaults.

State lives in ``app.extensions["gctuner"]``, never on the extension object,
so one ``GCTuner`` can serve every app an app factory makes. ``init_app``
makes this process follow the shared state, unless ``GCTuner(shared=...)``
was given one (a test's, with a stand-in collector).
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, current_app, request

from gctuner.api.endpoint import TuneEndpoint
from gctuner.api.routes import Routes
from gctuner.core.config import NAMES, Config, check_options
from gctuner.pod import agent
from gctuner.pod.publisher import Publisher

EXTENSION = "gctuner"

VIEW = "gctuner.tune_gc"


class GCTuner:
    """Adds ``GET``/``POST``/``DELETE /tune_gc`` to a Flask app."""

    def __init__(
        self, app: Flask | None = None, *, shared: Publisher | None = None, **options: Any
    ) -> None:
        check_options(options, "GCTuner")
        self._options = options
        self._shared = shared
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
        config = Config.with_options(self._options, values, "GCTuner")
        shared = self._shared if self._shared is not None else agent.follow_config(config)
        routes = Routes(TuneEndpoint(config, shared=shared))
        app.extensions[EXTENSION] = routes
        for path in routes.paths:
            # A rule without methods matches every method, so the 405 for an
            # unsupported one is the endpoint's JSON, not Flask's HTML page.
            app.url_map.add(app.url_rule_class(path, endpoint=VIEW))
        app.view_functions[VIEW] = _serve


def _serve() -> Response:
    routes: Routes = current_app.extensions[EXTENSION]
    rule = request.url_rule
    assert rule is not None  # this view is reached only through the rules of init_app
    headers = dict(request.headers.items())  # werkzeug's Headers is no Mapping
    answer = routes.respond(routes.paths[rule.rule], request.method, headers, request.stream.read)
    return Response(answer.body, status=answer.status, headers=answer.headers)
