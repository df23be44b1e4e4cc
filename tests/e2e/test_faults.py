"""Pods that fail, a wrong token, an API server that goes away: reported, retried, recovered."""

from __future__ import annotations

import os
import signal
import time

from podstate import agent, agent_at, faulty_pod, flask_pod, get, policy, policy_status, reports

from conftest import RBAC_WARMUPS
from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

OPTED_IN = {"app": "web", "gctuner.dev/enabled": "true"}
PUSH_TIMEOUT = 3.0  # the session operator's GCTUNER_PUSH_TIMEOUT


def apply(cluster: LocalCluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def test_failing_pods_are_reported_and_never_delay_the_others(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    for name in ("web-1", "web-2"):
        apply(cluster, namespace, flask_pod(name, OPTED_IN))
    apply(cluster, namespace, faulty_pod("hangs", "hang"))
    apply(cluster, namespace, faulty_pod("breaks", "500"))
    apply(cluster, namespace, faulty_pod("refuses", "ok", annotations={"gctuner.dev/port": "5999"}))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=60s")

    started = time.monotonic()
    apply(cluster, namespace, policy("web", [50000, 20, 100]))
    for name in ("web-1", "web-2"):
        wait_for(lambda name=name: reports(cluster, namespace, name, [50000, 20, 100]), timeout=20, what=f"{name} applied")
    assert time.monotonic() - started < PUSH_TIMEOUT, "the healthy pods waited for the hanging one"

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 3 and s,
                      timeout=30, what="three failures in the status")
    assert (status["matchedPods"], status["appliedPods"]) == (5, 2)
    reasons = {f["pod"]: f["reason"] for f in status["failures"]}
    assert reasons == {"hangs": "Timeout", "breaks": "AgentError", "refuses": "Unreachable"}
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "PartiallyApplied")
    assert "2/5 pods applied" in ready["message"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector=reason=PartiallyApplied", "-o", "name").stdout
    assert len(events.split()) == 1, "one Warning Event for the rollout, not one per pod"

    for name in ("hangs", "breaks", "refuses"):
        cluster.kubectl("label", "pod", name, "-n", namespace, "gctuner.dev/enabled-")
    healed = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 0 and s,
                      timeout=30, what="the failures to clear once the pods opt out")
    assert healed["conditions"][0]["status"] == "True" and healed["failures"] == []


def test_a_wrong_token_is_refused_and_never_shown(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("create", "secret", "generic", "wrong", "-n", namespace, "--from-literal=token=not-the-token-s3cr3t")
    apply(cluster, namespace, flask_pod("web-1", OPTED_IN))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/web-1", "--timeout=60s")
    apply(cluster, namespace, policy("web", [50000, 20, 100], token_secret="wrong"))
    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 1 and s,
                      timeout=20, what="the refused push in the status")
    assert status["failures"][0]["reason"] == "Unauthorized"
    assert "not-the-token-s3cr3t" not in str(status) + operator.log()
    assert agent(cluster, namespace, "web-1")["desired"] is None, "nothing changed"


def test_the_operator_recovers_from_an_api_server_outage(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    apply(cluster, namespace, flask_pod("web-1", OPTED_IN))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/web-1", "--timeout=60s")
    apply(cluster, namespace, policy("web", [50000, 20, 100]))
    wait_for(lambda: reports(cluster, namespace, "web-1", [50000, 20, 100]), timeout=20, what="first rollout")

    ip = get(cluster, namespace, "pod", "web-1")["status"]["podIP"]
    assert cluster.apiserver is not None
    outage_starts = len(operator.log())
    cluster.apiserver.stop()
    try:
        # Meanwhile the container dies and comes back on Python's defaults.
        os.killpg(os.getpgid(agent_at(ip)["processes"][0]["pid"]), signal.SIGKILL)
        wait_for(lambda: agent_at(ip)["desired"] is None, timeout=30, what="the restarted container")
    finally:
        cluster.apiserver.start()

    wait_for(lambda: reports(cluster, namespace, "web-1", [50000, 20, 100]), timeout=60,
             what="the operator to notice the restart once the API server is back")
    RBAC_WARMUPS.append((outage_starts, len(operator.log())))
    cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"thresholds": [60000, 20, 100]}}')
    wait_for(lambda: reports(cluster, namespace, "web-1", [60000, 20, 100]), timeout=30, what="a change after the outage")
    assert get(cluster, namespace, "pod", "web-1")["status"]["containerStatuses"][0]["restartCount"] == 1
