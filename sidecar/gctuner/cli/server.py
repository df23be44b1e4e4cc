"""The standalone server of ``gctuner sidecar``: the endpoint without an app.

A standard-library ``ThreadingHTTPServer`` around the same
:class:`~gctuner.api.routes.Routes` as every adapter, plus ``/healthz`` for the
kubelet's probes. Its endpoint is given a
:class:`~gctuner.pod.publisher.Publisher`: it writes the desired state into the
directory the app container follows and counts the app's processes, without
being one of them (its own collector is not the app's).

Each connection gets one answer and is closed (HTTP/1.0): a refused request's
unread body can then never be mistaken for the next request.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from gctuner.api.endpoint import Response, json_response
from gctuner.api.routes import Routes, read_declared

HEALTH_PATH = "/healthz"


class SidecarServer(ThreadingHTTPServer):
    """Serves ``routes`` and ``/healthz`` on ``address``; one thread per request."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], routes: Routes) -> None:
        super().__init__(address, _Handler)
        self.routes = routes

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]  # as server_address after bind, but str
        return f"http://{host}:{port}"

    def stop_soon(self) -> None:
        """Stop ``serve_forever`` from anywhere, a signal handler included
        (``shutdown`` waits for the loop, so it must not run on its thread)."""
        threading.Thread(target=self.shutdown, name="gctuner-shutdown").start()


class _Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    server_version = "gctuner"

    def _serve(self) -> None:
        path = urlsplit(self.path).path
        routes = self.server.routes
        route = routes.find(path)
        if path == HEALTH_PATH:
            answer = json_response(200, {"status": "ok"})
        elif route is None:
            where = routes.endpoint.config.path
            answer = json_response(404, {"message": f"nothing here; the endpoint is {where}"})
        else:
            headers = dict(self.headers.items())

            def read(limit: int) -> bytes:
                length = self.headers.get("Content-Length")
                return read_declared(self.rfile.read, length, limit, terminated=False)

            answer = routes.respond(route, self.command, headers, read)
        self._send(answer)

    def _send(self, answer: Response) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    # Every method reaches the routes, so an unsupported one gets their JSON 405.
    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _serve

