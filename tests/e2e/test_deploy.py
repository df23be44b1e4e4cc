"""What users apply: ``deploy/`` and ``deploy/examples/``, against the real API server.

Every manifest passes ``kubectl apply --dry-run=server`` (the API server's own
validation, admission and defaulting, without a warning), the operator
Deployment keeps the properties production needs, and each example app runs
on the local cluster and gets a policy's settings in every process. The
Deployment's own operator never runs here (there is no controller-manager to
create its pod): the session's operator, with the same RBAC, stands in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from podstate import DEFAULTS, EXAMPLES, agent, policy_status

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

DEPLOY = REPO_ROOT / "deploy"
MANIFESTS = sorted(p.relative_to(EXAMPLES) for p in EXAMPLES.rglob("*.yaml") if p.name != "kustomization.yaml")
# What a user applies with -k: kustomizations (a Component is only ever part of one).
OVERLAYS = sorted(p.parent.relative_to(EXAMPLES) for p in EXAMPLES.rglob("kustomization.yaml")
                  if yaml.safe_load(p.read_text()).get("kind", "Kustomization") == "Kustomization")


def dry_run(cluster: LocalCluster, *args: str) -> str:
    done = cluster.kubectl("apply", "--dry-run=server", *args)
    assert "Warning" not in done.stderr, done.stderr
    return done.stdout


def rendered(folder: Path, cluster: LocalCluster) -> list[dict[str, Any]]:
    return list(yaml.safe_load_all(cluster.kubectl("kustomize", str(folder)).stdout))


def test_the_install_passes_the_api_server(cluster: LocalCluster, operator_kubeconfig: Path) -> None:
    """``kubectl apply -k deploy/``; its namespace exists (dry runs create nothing)."""
    out = dry_run(cluster, "-k", str(DEPLOY))
    for kind_name in ("namespace/gctuner-system", "customresourcedefinition.apiextensions.k8s.io/gcpolicies.gctuner.dev",
                      "serviceaccount/gctuner-operator", "clusterrole.rbac.authorization.k8s.io/gctuner-operator",
                      "clusterrole.rbac.authorization.k8s.io/gctuner-status", "deployment.apps/gctuner-operator"):
        assert kind_name in out


def test_the_ha_overlay_passes_the_api_server(cluster: LocalCluster, operator_kubeconfig: Path) -> None:
    """Two replicas agreeing through peering; the session applied the peering CRD already."""
    assert "clusterkopfpeering.kopf.dev/gctuner" in dry_run(cluster, "-k", str(DEPLOY / "ha"))
    spec = next(o for o in rendered(DEPLOY / "ha", cluster) if o["kind"] == "Deployment")["spec"]
    assert spec["replicas"] == 2 and spec["strategy"]["type"] == "RollingUpdate"
    assert "--peering=gctuner" in spec["template"]["spec"]["containers"][0]["args"]


def test_the_operator_deployment_is_production_grade(cluster: LocalCluster) -> None:
    deployment = next(o for o in rendered(DEPLOY, cluster) if o["kind"] == "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # never two operators at once
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "gctuner-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    (container,) = pod["containers"]
    assert container["args"] == ["--liveness=http://0.0.0.0:8080/healthz", "--metrics=0.0.0.0:9090"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"healthz": 8080, "metrics": 9090}
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("overlay", OVERLAYS, ids=str)
def test_every_example_overlay_passes_the_api_server(cluster: LocalCluster, operator_kubeconfig: Path, overlay: Path) -> None:
    assert "deployment.apps/gctuner-operator" in dry_run(cluster, "-k", str(EXAMPLES / overlay))


@pytest.mark.parametrize("manifest", MANIFESTS, ids=str)
def test_every_example_passes_the_api_server(cluster: LocalCluster, namespace: str, manifest: Path) -> None:
    assert "(server dry run)" in dry_run(cluster, "-n", namespace, "-f", str(EXAMPLES / manifest))


@pytest.mark.parametrize("example,policy,thresholds", [
    ("flask", "flask/policy.yaml", [50000, 20, 100]),
    ("django", "policies/freeze.yaml", [50000, 20, 100]),
    ("starlette", "policies/priorities.yaml", [10000, 10, 10]),
    ("sidecar", "policies/priorities.yaml", [10000, 10, 10]),
])
def test_every_example_app_gets_its_policy(cluster: LocalCluster, operator: OperatorProcess, namespace: str,
                                           example: str, policy: str, thresholds: list[int]) -> None:
    pods = [d for d in yaml.safe_load_all((EXAMPLES / example / "pods.yaml").read_text()) if d]
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / example / "pods.yaml"))
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / policy))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
    opted = [p["metadata"]["name"] for p in pods if p["metadata"]["labels"].get("gctuner.dev/enabled") == "true"]
    freeze = "freeze" in policy

    def tuned(name: str) -> bool:
        state = agent(cluster, namespace, name)
        processes = state["processes"]
        return bool(state["in_sync"]) and len(processes) >= 2 and all(
            p["thresholds"] == thresholds and (p["frozen"] > 0) == freeze for p in processes)

    for name in opted:
        wait_for(lambda name=name: tuned(name), timeout=30, what=f"every process of {name} to run {thresholds}")
    for name in (p["metadata"]["name"] for p in pods if p["metadata"]["name"] not in opted):
        assert all(p["thresholds"] == DEFAULTS for p in agent(cluster, namespace, name)["processes"])
    governing = [d["metadata"]["name"] for d in yaml.safe_load_all((EXAMPLES / policy).read_text())
                 if d["spec"]["thresholds"] == thresholds][0]
    wait_for(lambda: policy_status(cluster, namespace, governing).get("appliedPods") == len(opted),
             timeout=20, what=f"{governing}'s status to count {len(opted)} applied pods")


@pytest.mark.parametrize("verb,allowed", [
    ("list", True), ("watch", True), ("get", True),  # the opted-in pods, by label selector; one read per vanished pod
    ("patch", False), ("update", False), ("create", False), ("delete", False),  # never a write to a pod
])
def test_the_operator_reads_pods_and_never_writes_them(cluster: LocalCluster, operator_kubeconfig: Path,
                                                       verb: str, allowed: bool) -> None:
    account = "system:serviceaccount:gctuner-system:gctuner-operator"
    answer = cluster.kubectl("auth", "can-i", verb, "pods", "-A", f"--as={account}", check=False).stdout.strip()
    assert answer == ("yes" if allowed else "no")
    role = next(d for d in yaml.safe_load_all((DEPLOY / "base" / "rbac.yaml").read_text()) if d["kind"] == "ClusterRole")
    (rule,) = [r for r in role["rules"] if "pods" in r["resources"]]
    assert sorted(rule["verbs"]) == ["get", "list", "watch"]
