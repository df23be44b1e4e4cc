"""The standalone server of ``gctuner sidecar``: the endpoint without an app.

A standard-library ``ThreadingHTTPServer`` around the same
:class:`~gctuner.api.routes.Routes` as every adapter, plus ``/healthz`` for the
kubelet's probes. Its endpoint is given a
:class:`~gctuner.pod.publisher.Publisher`: it writes the desired state into the
directory the app container follows and counts the app's processes, without
being one of them (its own collector is not the app's).

Each connection gets one answer and is closed (HTTP/1.0): a refused request's
unread body can then never be mistaken for the next request.

Hardened for a port anyone in the pod's network can reach:

- every socket read and write times out (``timeout``, 10 s by default);
- at most ``max_connections`` connections (one thread each) are open at once,
  fewer than the process may open files: when full, the oldest connection
  that has not yet sent its whole request head is closed for the new one, so
  idle connections can never starve ``/healthz``; if every one is busy, the
  new one gets a 503 and is closed;
- the body is read by the one ``Content-Length`` the checks saw: several
  ``Content-Length`` headers, or a ``Transfer-Encoding``, are a 400;
- every answer is JSON: a method other than GET, POST and DELETE (TRACE,
  CONNECT, ``get``, anything) is a 405 on every path (``/healthz`` also takes
  HEAD), and the standard library's own errors (bad request line, too many
  headers) are JSON 4xx too, never its HTML pages.
"""

from __future__ import annotations

import http
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit

from gctuner.api.endpoint import METHODS, Response, json_response
from gctuner.api.routes import Routes, read_declared

HEALTH_PATH = "/healthz"
TIMEOUT = 10.0
"""Seconds any one read or write on a connection may take."""
MAX_CONNECTIONS = 64
FILES_KEPT = 16
"""File descriptors left for everything but connections (the listening
socket, the state directory's files, logs)."""

log = logging.getLogger("gctuner")


def connection_bound(ceiling: int = MAX_CONNECTIONS) -> int:
    """How many connections to hold at most: ``ceiling``, or fewer when the
    process may open fewer files (``ulimit -n``) than that plus what it keeps."""
    try:
        import resource  # not on Windows
    except ImportError:
        return ceiling
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return ceiling
    return max(1, min(ceiling, soft - FILES_KEPT))


class SidecarServer(ThreadingHTTPServer):
    """Serves ``routes`` and ``/healthz`` on ``address``; one thread per
    connection, at most ``max_connections`` of them."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        routes: Routes,
        *,
        timeout: float = TIMEOUT,
        max_connections: int | None = None,
    ) -> None:
        super().__init__(address, _Handler)
        self.routes = routes
        self.connection_timeout = timeout
        self.max_connections = max_connections if max_connections is not None else connection_bound()
        self._connections: dict[Any, bool] = {}  # socket -> busy (its request head is read)
        self._guard = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.socket.getsockname()[:2]  # as server_address after bind, but str
        return f"http://{host}:{port}"

    def stop_soon(self) -> None:
        """Stop ``serve_forever`` from anywhere, a signal handler included
        (``shutdown`` waits for the loop, so it must not run on its thread)."""
        threading.Thread(target=self.shutdown, name="gctuner-shutdown").start()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._guard:
            if len(self._connections) >= self.max_connections:
                idle = next((sock for sock, busy in self._connections.items() if not busy), None)
                if idle is None:
                    self._turn_away(request)
                    return
                del self._connections[idle]
                _hang_up(idle)  # its thread's read ends; the thread closes it
            self._connections[request] = False
        super().process_request(request, client_address)

    def busy(self, request: Any) -> None:
        """``request`` sent its whole head: it is served, not evicted."""
        with self._guard:
            if request in self._connections:
                self._connections[request] = True

    def shutdown_request(self, request: Any) -> None:
        with self._guard:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def _turn_away(self, request: Any) -> None:
        answer = json_response(503, {"message": "too many connections; try again"})
        head = f"HTTP/1.0 {answer.status_line}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in answer.headers)
        try:
            request.settimeout(1)
            request.sendall(head.encode("latin-1") + b"\r\n" + answer.body)
        except OSError:
            pass
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line, not a traceback: a client that hung up or timed out."""
        log.info("gctuner sidecar: connection from %s ended with an error", client_address[0])


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: SidecarServer
    server_version = "gctuner"
    default_request_version = "HTTP/1.0"  # never an HTTP/0.9 answer, which has no status line

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # Every method, known or not (TRACE, CONNECT, "get"), reaches _serve and its JSON 405.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        self.server.busy(self.request)
        self._send(self._answer())

    def _answer(self) -> Response:
        path = urlsplit(self.path).path
        routes = self.server.routes
        if path == HEALTH_PATH and self.command in ("GET", "HEAD"):
            return json_response(200, {"status": "ok"})
        if self.command not in METHODS or path == HEALTH_PATH:
            allowed = "GET, HEAD" if path == HEALTH_PATH else ", ".join(METHODS)
            return json_response(405, {"message": f"only {allowed} are supported here"}, (("Allow", allowed),))
        route = routes.find(path)
        if route is None:
            where = routes.endpoint.config.path
            return json_response(404, {"message": f"nothing here; the endpoint is {where}"})
        if len(self.headers.get_all("Content-Length") or []) > 1:
            return json_response(400, {"message": "send one Content-Length header, not several"})
        if "Transfer-Encoding" in self.headers and self.command != "DELETE":  # the endpoint refuses DELETE's
            return json_response(400, {"message": "send the body with a Content-Length (no Transfer-Encoding)"})
        headers = {name.lower(): value for name, value in self.headers.items()}

        def read(limit: int) -> bytes:
            return read_declared(self.rfile.read, headers.get("content-length"), limit, terminated=False)

        return routes.respond(route, self.command, headers, read)

    def _send(self, answer: Response) -> None:
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The standard library's own refusals, as JSON: 501 (a method it has
        no ``do_`` for: not reached, see ``__getattr__``) is a 405; 505 (HTTP/2
        and later) a 400, as only HTTP/1.x is served."""
        status = {501: 405, 505: 400}.get(int(code), int(code))
        self.close_connection = True
        text = message or http.HTTPStatus(status).phrase
        headers = (("Allow", ", ".join(METHODS)),) if status == 405 else ()
        if int(code) == 505:
            text = f"{text}; send HTTP/1.0 or HTTP/1.1"
        try:
            self._send(json_response(status, {"message": text}, headers))
        except OSError:
            pass  # the client is gone
