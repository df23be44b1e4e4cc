"""Two replicas with kopf peering: one acts, one stands by and takes over."""

from __future__ import annotations

from pathlib import Path

from podstate import flask_pod, policy, reports

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for


def test_the_standby_replica_takes_over(cluster: LocalCluster, operator: OperatorProcess, operator_kubeconfig: Path,
                                        namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=flask_pod("web-1", {"app": "web", "gctuner.dev/enabled": "true"}))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/web-1", "--timeout=60s")
    operator.stop()  # the session's standalone operator would act beside the peers
    env = {"KUBECONFIG": str(operator_kubeconfig), "GCTUNER_VERIFY_INTERVAL": "5"}
    active = OperatorProcess(cluster, tmp_path / "active.log", "--peering", "gctuner", "--priority", "200", **env).start()
    standby = OperatorProcess(cluster, tmp_path / "standby.log", "--peering", "gctuner", "--priority", "100", **env).start()
    try:
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("web", [50000, 20, 100]))
        wait_for(lambda: reports(cluster, namespace, "web-1", [50000, 20, 100]), timeout=30, what="the active replica's rollout")
        # The agent runs the thresholds once the push returned; the operator logs the pod only
        # after the push's answer: wait for the log, not the agent.
        wait_for(lambda: f"pod {namespace}/web-1: thresholds [50000, 20, 100]" in active.log(), timeout=10,
                 what="the active replica's log to say it applied the policy")
        assert f"pod {namespace}/web-1" not in standby.log(), "kopf starts paused until it sees its peers"

        active.stop()
        cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"thresholds": [70000, 20, 100]}}')
        wait_for(lambda: reports(cluster, namespace, "web-1", [70000, 20, 100]), timeout=60, what="the standby to take over")
        wait_for(lambda: f"pod {namespace}/web-1: thresholds [70000, 20, 100]" in standby.log(), timeout=10,
                 what="the standby's log to say it applied the change")
    finally:
        active.stop()
        standby.stop()
        operator.start()
