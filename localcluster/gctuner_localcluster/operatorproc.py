"""The operator as users run it: its own process, talking to the local cluster.

Used by the demo, the end-to-end tests and the benchmarks, which must not
run the operator in their own process (kopf owns its event loop, and a crash
or restart of the operator is part of what the tests exercise).
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cluster import LocalCluster
from .controlplane import free_port
from .process import ManagedProcess, http_ok


class OperatorProcess:
    """``python -m gctuner_operator [args]`` with a liveness endpoint to wait on."""

    def __init__(self, cluster: LocalCluster, log_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
        self.process = ManagedProcess(
            "gctuner-operator",
            [sys.executable, "-m", "gctuner_operator", "--liveness", f"http://127.0.0.1:{self.port}/healthz",
             "--metrics", self.metrics_url.split("/")[2], *args],
            log_path,
            env={**cluster.env(), **env},
        )

    def start(self, timeout: float = 60) -> OperatorProcess:
        self.process.start()
        self.process.wait_until(lambda: http_ok(f"http://127.0.0.1:{self.port}/healthz"), timeout, "live")
        return self

    def stop(self) -> None:
        self.process.stop()

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")
