"""Shared by every tier: the header names the control plane the e2e tests use.

The binaries are found (or built, with progress) only when e2e tests were
collected, so ``make unit`` needs no Kubernetes binaries at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gctuner_localcluster import binaries

E2E = Path(__file__).parent / "e2e"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries up front (not inside the first test's timeout), and say which ones run."""
    if not any(E2E in item.path.parents for item in session.items):
        return
    assets = binaries.ensure(log=lambda m: print(m, file=sys.stderr, flush=True))
    version = subprocess.run(
        [str(assets.path("kube-apiserver")), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"e2e control plane: kube-apiserver {version.split()[-1]}, etcd and kubectl "
            f"from {assets.folder} (via {assets.source})"
        )


REAL_NODE = Path(__file__).parent / "e2e_node"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n`` (make test), every real-node test goes to one worker:
    one real node per machine, started once. The other tests are spread over
    the workers, each with a process cluster of its own."""
    for item in items:
        if REAL_NODE in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("real-node"))
