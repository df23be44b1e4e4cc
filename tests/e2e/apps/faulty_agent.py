"""A pod whose /tune_gc misbehaves on purpose: the faults the operator must survive.

``python faulty_agent.py MODE`` serves on $POD_IP:5000; ``/`` is always 200
(the pod is Ready), ``/tune_gc`` answers per MODE: ``hang`` (no answer for
60 s), ``500`` (a server error), ``record`` (200, and the Authorization header
of every request is kept: ``/received`` lists them, as an attacker's pod would).  For "connection refused", point the pod's
``gctuner.dev/port`` annotation at a port nothing listens on. ``/hanging``
says how many /tune_gc requests are being held unanswered right now.
"""

import http.server
import json
import os
import sys
import threading
import time

MODE = sys.argv[1]
lock = threading.Lock()
hanging = 0
received: list[str] = []


class Handler(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        global hanging
        if self.path == "/tune_gc" and MODE == "record":
            with lock:
                received.append(self.headers.get("Authorization") or "")
        if self.path == "/tune_gc" and MODE == "hang":
            with lock:
                hanging += 1
            try:
                time.sleep(60)
            finally:
                with lock:
                    hanging -= 1
        status = 500 if self.path == "/tune_gc" and MODE == "500" else 200
        body = b'{"message": "injected failure"}' if status == 500 else b"{}"
        if self.path == "/hanging":
            with lock:
                body = json.dumps({"hanging": hanging}).encode()
        if self.path == "/received":
            with lock:
                body = json.dumps({"received": received}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer


http.server.ThreadingHTTPServer((os.environ["POD_IP"], 5000), Handler).serve_forever()
