"""A tiny Flask app using the agent, served by gunicorn in the integration tests.

Configured by the environment (GCTUNER_TOKEN, GCTUNER_STATE_DIR), as in a pod.
"""

from __future__ import annotations

from flask import Flask, Response
from plain_app import churn, report

from gctuner.flask import GCTuner


def create_app() -> Flask:
    app = Flask(__name__)
    GCTuner(app)

    @app.get("/")
    def index() -> Response:
        return Response(report(), mimetype="application/json")

    @app.get("/churn")
    def garbage() -> Response:
        return Response(churn(), mimetype="application/json")

    return app


app = create_app()
