"""An example WSGI service that knows nothing of gctuner.

The pod around it (pods.yaml) tunes it all the same: the gctuner sidecar
container serves /tune_gc, and this container's Python processes follow the
state the sidecar publishes (PYTHONPATH and GCTUNER_STATE_DIR, no code).
"""

import json


def application(environ, start_response):
    body = json.dumps({"status": "ok"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
