"""The example Flask service of ../flask, without the gctuner line.

The pod around it (pods.yaml, deployment.yaml) tunes it all the same: the
gctuner sidecar container serves /tune_gc, and this container's Python
processes follow the state the sidecar publishes (PYTHONPATH and
GCTUNER_STATE_DIR, no code). Its image (Dockerfile) has Flask and gunicorn
only: gctuner arrives through the pod's shared volume.
"""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> dict[str, str]:
    return {"status": "ok"}
