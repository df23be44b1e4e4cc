"""Pods that fail, a wrong token, an API server that goes away: reported, retried, recovered."""

from __future__ import annotations

import json
import os
import signal
import urllib.request

from operatorlog import RBAC_WARMUPS
from podstate import agent, agent_at, faulty_pod, flask_pod, get, policy, policy_status, reports, reports_at

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

OPTED_IN = {"app": "web", "gctuner.dev/enabled": "true"}


def apply(cluster: LocalCluster, namespace: str, manifest: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def hanging(ip: str) -> int:
    """How many /tune_gc requests the ``hang`` agent at ``ip`` holds unanswered."""
    with urllib.request.urlopen(f"http://{ip}:5000/hanging", timeout=10) as response:
        return int(json.load(response)["hanging"])


def test_failing_pods_are_reported_and_never_delay_the_others(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    for name in ("web-1", "web-2"):
        apply(cluster, namespace, flask_pod(name, OPTED_IN))
    apply(cluster, namespace, faulty_pod("hangs", "hang"))
    apply(cluster, namespace, faulty_pod("breaks", "500"))
    apply(cluster, namespace, faulty_pod("refuses", "ok", annotations={"gctuner.dev/port": "5999"}))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=60s")
    ips = {name: get(cluster, namespace, "pod", name)["status"]["podIP"] for name in ("hangs", "web-1", "web-2")}

    apply(cluster, namespace, policy("web", [50000, 20, 100]))
    # Not delayed: the healthy pods run the policy while the operator still waits for the
    # hanging pod. Its push was sent before (the agent holds it, seen first) and is not over
    # after (no outcome for it in the log, seen last) the moment both healthy pods applied.
    wait_for(lambda: hanging(ips["hangs"]) >= 1, timeout=20, interval=0.05, what="the push to the hanging pod")
    for name in ("web-1", "web-2"):
        wait_for(lambda name=name: reports_at(ips[name], [50000, 20, 100]), timeout=20, interval=0.05, what=f"{name} applied")
    assert f"pod {namespace}/hangs:" not in operator.log(), "the healthy pods waited for the hanging one"

    status = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 3 and s,
                      timeout=30, what="three failures in the status")
    assert (status["matchedPods"], status["appliedPods"]) == (5, 2)
    reasons = {f["pod"]: f["reason"] for f in status["failures"]}
    assert reasons == {"hangs": "Timeout", "breaks": "AgentError", "refuses": "Unreachable"}
    assert f"pod {namespace}/hangs:" in operator.log(), "the outcome the ordering check above looks for"
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "PartiallyApplied")
    assert "2/5 pods applied" in ready["message"]

    def events(reason: str) -> list[str]:
        return cluster.kubectl("get", "events", "-n", namespace, f"--field-selector=reason={reason}", "-o", "name").stdout.split()

    # The Event is posted after the status it announces: wait for it.
    wait_for(lambda: events("PartiallyApplied"), timeout=20, what="the PartiallyApplied Event")

    for name in ("hangs", "breaks", "refuses"):
        cluster.kubectl("label", "pod", name, "-n", namespace, "gctuner.dev/enabled-")
    healed = wait_for(lambda: (s := policy_status(cluster, namespace)).get("failedPods") == 0 and s,
                      timeout=30, what="the failures to clear once the pods opt out")
    assert healed["conditions"][0]["status"] == "True" and healed["failures"] == []
    # Counted only now: every Event of the partial rollout was posted before this later status.
    assert len(events("PartiallyApplied")) == 1, "one Warning Event for the rollout, not one per pod"


def test_a_wrong_token_is_refused_and_never_shown(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    cluster.kubectl("create", "secret", "generic", "wrong", "-n", namespace, "--from-literal=token=not-the-token-s3cr3t")
    cluster.kubectl("label", "secret", "wrong", "-n", namespace, "gctuner.dev/token=true")
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
        # Meanwhile the container dies and comes back on Python's defaults (the
        # operator's live check may push to it again even before the API server is back).
        before = {p["pid"] for p in agent_at(ip)["processes"]}
        os.killpg(os.getpgid(min(before)), signal.SIGKILL)
        wait_for(lambda: agent_at(ip)["processes"] and not {p["pid"] for p in agent_at(ip)["processes"]} & before,
                 timeout=30, what="the restarted container")
    finally:
        cluster.apiserver.start()

    wait_for(lambda: reports(cluster, namespace, "web-1", [50000, 20, 100]), timeout=60,
             what="the operator to notice the restart once the API server is back")
    RBAC_WARMUPS.append((outage_starts, len(operator.log())))
    cluster.kubectl("patch", "gcpolicy", "web", "-n", namespace, "--type=merge", "-p", '{"spec": {"thresholds": [60000, 20, 100]}}')
    wait_for(lambda: reports(cluster, namespace, "web-1", [60000, 20, 100]), timeout=30, what="a change after the outage")
    # The kubelet reports the restart on its own schedule, not the operator's: wait for it, then count.
    restarts = wait_for(lambda: get(cluster, namespace, "pod", "web-1")["status"]["containerStatuses"][0]["restartCount"],
                        timeout=30, what="the kubelet to report the restart")
    assert restarts == 1
