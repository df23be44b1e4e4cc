"""The real node's end-to-end fixtures: pods are containers from our own images.

One real-node cluster per session (``RealNodeCluster``: containerd, runc, the
real kubelet, controller-manager and scheduler), the operator installed as
users install it: ``kubectl apply -k deploy/examples/localcluster`` (deploy/
plus the address of the API server as pods see it here).  Nothing skips: a
machine that cannot run containers fails with what it lacks.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from nodepods import OVERLAY

from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeCluster]:
    with RealNodeCluster(workdir=tmp_path_factory.mktemp("node-cluster"), lock_timeout=900) as cluster:
        print(f"\nreal node ready; timings {json.dumps({k: round(v, 1) for k, v in cluster.timings.items()})}")
        yield cluster


@pytest.fixture(scope="session")
def installed(node_cluster: RealNodeCluster) -> RealNodeCluster:
    """The operator from its image, as `kubectl apply -k` installs it."""
    node_cluster.kubectl("apply", "-k", str(OVERLAY))
    node_cluster.kubectl("rollout", "status", "deployment/gctuner-operator", "-n", "gctuner-system", "--timeout=180s")
    return node_cluster


@pytest.fixture
def namespace(installed: RealNodeCluster) -> Iterator[str]:
    name = f"n-{uuid.uuid4().hex[:8]}"
    installed.kubectl("create", "namespace", name)
    wait_for(lambda: installed.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=30, what="the namespace's default ServiceAccount (controller-manager)")
    yield name
    installed.kubectl("delete", "namespace", name, "--wait=true", "--timeout=120s", check=False)
