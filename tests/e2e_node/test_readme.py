"""The README's commands, run on the real node as a reader runs them after
``make cluster``: the operator installed with ``kubectl apply -k``, the Flask
example's Deployment from its image, a policy, ``kubectl get gcpol`` and
``gctuner status`` showing the Deployment's pods.

One namespace of its own (the kubeconfig's default); the rules and the
runner are tests/docblocks.py's, as for docs/*.md on the process cluster.
The operator from its image reads telemetry once a minute, so a command
waits up to three minutes for the GC% it shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from docblocks import commands, run
from gctuner_localcluster.cluster import REPO_ROOT
from gctuner_localcluster.realnode.cluster import RealNodeCluster

README = REPO_ROOT / "README.md"


@pytest.mark.timeout(1200)
def test_the_readme_is_true(installed: RealNodeCluster, namespace: str, tmp_path: Path) -> None:
    run(README, installed, namespace, tmp_path, timeout=180)


def test_the_readme_has_commands_to_run() -> None:
    lines = [command.line for command in commands(README)]
    assert "kubectl apply -k deploy/examples/localcluster" in lines and "gctuner status" in lines
