"""End-to-end fixtures: a real control plane, the real operator, real pods.

Nothing here skips: if the Kubernetes binaries are missing they are built
(progress shown), and if that fails the run fails, in CI and locally.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from operatorlog import forbidden_lines
from podstate import EXAMPLES

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

CRDS = REPO_ROOT / "crds"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workdir=tmp_path_factory.mktemp("cluster")) as cluster:
        cluster.kubectl("apply", "-f", str(CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
        server = json.loads(cluster.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
        print(f"\nrunning against kube-apiserver {server} at {cluster.apiserver.url}")
        yield cluster


@pytest.fixture(scope="session")
def operator(cluster: LocalCluster, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """One operator for the session, with the ServiceAccount's own credentials
    (deploy/base/rbac.yaml), so every e2e test also proves the RBAC rules suffice.
    Short intervals, so tests see periodic checks, retries and telemetry."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = OperatorProcess(cluster, log, KUBECONFIG=str(operator_kubeconfig), GCTUNER_VERIFY_INTERVAL="5",
                         GCTUNER_RETRY_MAX="5", GCTUNER_PUSH_TIMEOUT="3",
                         GCTUNER_TELEMETRY_INTERVAL="3").start()
    yield op
    op.stop()
    denied = forbidden_lines(op.log())
    assert not denied, f"deploy/base/rbac.yaml lacks a rule the operator needed: {denied[0][:400]}"


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster: LocalCluster) -> Path:
    """A kubeconfig holding a real token of the operator's ServiceAccount."""
    for manifest in ("base/namespace.yaml", "base/rbac.yaml", "ha/peering.yaml"):
        cluster.kubectl("apply", "-f", str(REPO_ROOT / "deploy" / manifest))
    account = "system:serviceaccount:gctuner-system:gctuner-operator"
    wait_for(lambda: cluster.kubectl("auth", "can-i", "watch", "pods", "-A", f"--as={account}", check=False).returncode == 0,
             timeout=10, what="the new RoleBinding to take effect")
    token = cluster.kubectl("create", "token", "gctuner-operator", "-n", "gctuner-system", "--duration=4h").stdout.strip()
    return cluster.kubeconfig_for("gctuner-operator", token)


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
