"""The Flask app the agent benchmarks serve under gunicorn.

``BENCH_AGENT=on`` adds ``GCTuner(app)`` (configured by the environment, as
in a pod); anything else serves the very same app without the agent, so
the two differ in nothing else.
"""

from __future__ import annotations

import os

from flask import Flask

app = Flask(__name__)

if os.environ.get("BENCH_AGENT") == "on":
    from gctuner.flask import GCTuner

    GCTuner(app)


@app.get("/")
def index() -> dict[str, object]:
    """A small JSON answer with a few container allocations, like a typical view."""
    return {"pid": os.getpid(), "items": [{"id": i, "name": f"item-{i}"} for i in range(20)]}
