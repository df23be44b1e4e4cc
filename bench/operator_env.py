"""The local cluster and the operator, as the operator benchmarks run them."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess

TOKEN = "bench-token"


@contextlib.contextmanager
def cluster_with_operator(workdir: Path, **operator_env: str) -> Iterator[tuple[LocalCluster, OperatorProcess]]:
    """A fresh cluster with the CRDs, and the operator as users run it (default settings)."""
    with LocalCluster(workdir=workdir / "cluster", log=lambda m: None) as cluster:
        cluster.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        operator = OperatorProcess(cluster, workdir / "operator.log", GCTUNER_TOKEN=TOKEN, **operator_env)
        try:
            yield cluster, operator
        finally:
            operator.stop()


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"gctuner-bench-{name}-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))


def wait(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll ``check``; return the seconds it took to become true."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} did not happen within {timeout:.0f}s")
        time.sleep(interval)
    return time.monotonic() - started
