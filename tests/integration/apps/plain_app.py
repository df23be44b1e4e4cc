"""A WSGI app with no gctuner code in it: it only reports its own collector.

Served by the gunicorn-hooks and sidecar tests, which tune it from outside,
and wrapped by wsgi_app.py for uWSGI and the multiprocessing server.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable
from typing import Any, Callable


def report() -> bytes:
    """This process's pid, thresholds and frozen objects, as JSON."""
    data = {"pid": os.getpid(), "thresholds": list(gc.get_threshold()), "frozen": gc.get_freeze_count()}
    return json.dumps(data).encode()


def churn() -> bytes:
    """Allocation-heavy work with reference cycles, kept alive while it is built
    (so young collections find survivors to scan): enough collector work at the
    startup thresholds for the autopilot to have something to tune."""
    nodes: list[dict[str, Any]] = []
    for index in range(20_000):
        node: dict[str, Any] = {"index": index, "parent": nodes[index // 2] if nodes else None, "children": []}
        if node["parent"] is not None:
            node["parent"]["children"].append(node)
        nodes.append(node)
    return report()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = report()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
