"""End-to-end fixtures: a real control plane, the real operator, real pods.

Nothing here skips: if the Kubernetes binaries are missing they are built
(progress shown), and if that fails the run fails, in CI and locally.
"""

from __future__ import annotations

import json
import uuid
from typing import Iterator

import pytest

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess

CRD = REPO_ROOT / "crds" / "gcpolicies.gctuner.dev.yaml"
EXAMPLES = REPO_ROOT / "deploy" / "examples"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workdir=tmp_path_factory.mktemp("cluster")) as cluster:
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "crd/gcpolicies.gctuner.dev", "--timeout=30s")
        server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
        print(f"\nrunning against kube-apiserver {server} at {cluster.apiserver.url}")
        yield cluster


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator for the session; short intervals so tests see checks and retries."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = OperatorProcess(cluster, log, GCTUNER_VERIFY_INTERVAL="5", GCTUNER_RETRY_MAX="5", GCTUNER_PUSH_TIMEOUT="3").start()
    yield op
    op.stop()


@pytest.fixture
def namespace(cluster: LocalCluster) -> Iterator[str]:
    """A namespace of its own per test, with the example token Secret.

    There is no namespace controller (no kube-controller-manager), so teardown
    deletes the policies and pods itself, and waits for them to be gone.
    """
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-n", name, "-f", str(EXAMPLES / "flask" / "secret.yaml"))
    yield name
    cluster.kubectl("delete", "gcpolicies", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
    cluster.kubectl("delete", "pods", "--all", "-n", name, "--wait=true", "--timeout=60s", check=False)
