"""An example Flask service opted in to gctuner: one line adds the agent.

Run it under gunicorn with several workers; a POST /tune_gc reaching any of
them changes the collector in all of them.  The token comes from
GCTUNER_TOKEN (a Secret in Kubernetes).
"""

from flask import Flask

from gctuner.flask import GCTuner

app = Flask(__name__)
GCTuner(app)


@app.get("/")
def index() -> dict[str, str]:
    return {"status": "ok"}
