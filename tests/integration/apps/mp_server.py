"""A plain multiprocessing server: N forked processes accept on one socket.

Usage: python mp_server.py PORT WORKERS

The parent builds the app (so the app's follower starts there, as with a
preloading server), steps aside (it serves no request), then forks the
workers, which re-join the shared state through the agent's at-fork hook.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from wsgi_app import application

import gctuner


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per request: the test sends many."""


def serve(listener: socket.socket) -> None:
    server = WSGIServer(listener.getsockname(), QuietHandler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener
    server.server_name, server.server_port = listener.getsockname()
    server.setup_environ()
    server.set_app(application)
    server.serve_forever()


def main() -> None:
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    listener = socket.create_server(("127.0.0.1", port))
    gctuner.step_aside()
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=serve, args=(listener,), daemon=True) for _ in range(workers)]
    for child in children:
        child.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for child in children:
            child.join()
    finally:
        for child in children:
            child.terminate()
            child.join(5)


if __name__ == "__main__":
    main()
