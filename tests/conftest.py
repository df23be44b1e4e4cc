"""Shared by every tier: the header names the control plane the e2e tests use.

The binaries are found (or built, with progress) only when e2e tests were
collected, so ``make unit`` needs no Kubernetes binaries at all.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

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


REAL_NODE = "tests/e2e_node/"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``pytest -n`` (make test), every real-node test goes to one worker:
    one real node per machine, started once. Every other test is a scope of
    its own, spread over the workers as ``--dist load`` would, each worker
    with a process cluster of its own. (``xdist_group`` marks would say the
    same, but pytest 9.2 ignores the node-id suffix xdist 3.8 gives them.)"""
    from xdist.scheduler import LoadScopeScheduling

    class RealNodeTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return REAL_NODE if nodeid.startswith(REAL_NODE) else nodeid

    return RealNodeTogether(config, log)
