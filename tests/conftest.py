"""Shared by every tier: the header names the control plane the e2e tests use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gctuner_localcluster import binaries


def pytest_report_header(config: pytest.Config) -> str:
    """Find (or build, with progress) the binaries up front, and say which ones run."""
    assets = binaries.ensure(log=lambda m: print(m, file=sys.stderr, flush=True))
    version = subprocess.run([str(assets.path("kube-apiserver")), "--version"], capture_output=True, text=True).stdout.strip()
    return f"e2e control plane: kube-apiserver {version.split()[-1]}, etcd and kubectl from {assets.folder} (via {assets.source})"
