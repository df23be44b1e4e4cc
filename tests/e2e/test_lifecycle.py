"""Every lifecycle event converges: policies created, changed, deleted; pods
labelled, unlabelled, restarted; several policies competing for one pod."""

from __future__ import annotations

import os
import signal
import time

from podstate import DEFAULTS, agent, applied_by, flask_pod, get, policy, policy_status, reports

from gctuner_localcluster.cluster import LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

OPTED_IN = {"app": "web", "gctuner.dev/enabled": "true"}


def start_pod(cluster: LocalCluster, namespace: str, name: str, labels: dict[str, str]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=flask_pod(name, labels))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=60s")


def wait_reports(cluster: LocalCluster, namespace: str, pod: str, thresholds: list[int], what: str) -> None:
    wait_for(lambda: reports(cluster, namespace, pod, thresholds), timeout=30, what=f"{pod} to report {thresholds}: {what}")


def test_highest_priority_wins_and_deleting_it_hands_the_pod_over(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    start_pod(cluster, namespace, "web-1", OPTED_IN)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("low", [20000, 15, 15]))
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("high", [90000, 30, 30], priority=10))
    wait_reports(cluster, namespace, "web-1", [90000, 30, 30], "the higher priority wins")
    low = wait_for(lambda: (s := policy_status(cluster, namespace, "low")).get("governedElsewherePods") == 1 and s,
                   timeout=20, what="the losing policy to say another policy governs its pod")
    assert (low["matchedPods"], low["appliedPods"]) == (1, 0)

    cluster.kubectl("delete", "gcpolicy", "high", "-n", namespace, "--timeout=30s")
    wait_reports(cluster, namespace, "web-1", [20000, 15, 15], "handed to the next winner")
    # The record of the push travels with it: the agent names the new winner.
    record = applied_by(cluster, namespace, "web-1")
    assert record is not None and record["policy"] == f"{namespace}/low" and record["generation"] == 1

    cluster.kubectl("delete", "gcpolicy", "low", "-n", namespace, "--timeout=30s")
    # The finalizer runs before the policy disappears: the defaults are back already.
    state = agent(cluster, namespace, "web-1")
    assert state["desired"] is None and all(p["thresholds"] == DEFAULTS for p in state["processes"])
    assert applied_by(cluster, namespace, "web-1") is None


def test_the_oldest_of_equal_priorities_wins(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    start_pod(cluster, namespace, "web-1", OPTED_IN)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("zeta", [30000, 10, 10]))
    wait_reports(cluster, namespace, "web-1", [30000, 10, 10], "the only policy")
    created = get(cluster, namespace, "gcpolicy", "zeta")["metadata"]["creationTimestamp"]
    # creationTimestamp counts whole seconds: within the same second, the name decides.
    wait_for(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > created, timeout=3, what="the next second")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("alpha", [40000, 10, 10]))
    wait_for(lambda: policy_status(cluster, namespace, "alpha").get("governedElsewherePods") == 1,
             timeout=20, what="the younger policy to lose despite its name")
    assert reports(cluster, namespace, "web-1", [30000, 10, 10])


def test_pods_gaining_and_losing_labels_converge(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    start_pod(cluster, namespace, "web-1", {"app": "web"})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("web", [50000, 20, 100]))
    wait_for(lambda: policy_status(cluster, namespace).get("conditions"), timeout=20, what="a first status")
    assert reports(cluster, namespace, "web-1", DEFAULTS), "a pod that did not opt in is never touched"

    cluster.kubectl("label", "pod", "web-1", "-n", namespace, "gctuner.dev/enabled=true")
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "opted in later")

    cluster.kubectl("label", "pod", "web-1", "-n", namespace, "app=other", "--overwrite")
    wait_reports(cluster, namespace, "web-1", DEFAULTS, "no policy selects it any more")
    assert applied_by(cluster, namespace, "web-1") is None

    cluster.kubectl("label", "pod", "web-1", "-n", namespace, "app=web", "--overwrite")
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "selected again")

    cluster.kubectl("label", "pod", "web-1", "-n", namespace, "gctuner.dev/enabled-")
    wait_reports(cluster, namespace, "web-1", DEFAULTS, "opted out")
    assert applied_by(cluster, namespace, "web-1") is None
    wait_for(lambda: policy_status(cluster, namespace).get("matchedPods") == 0, timeout=10, what="matchedPods 0")


def test_a_restarted_container_gets_the_settings_again(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    start_pod(cluster, namespace, "web-1", OPTED_IN)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("web", [50000, 20, 100]))
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "first rollout")

    worker = agent(cluster, namespace, "web-1")["processes"][0]["pid"]
    os.killpg(os.getpgid(worker), signal.SIGKILL)  # the whole container dies, as on an OOM kill
    wait_for(lambda: get(cluster, namespace, "pod", "web-1")["status"]["containerStatuses"][0]["restartCount"] == 1,
             timeout=30, what="the kubelet to restart the container")
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "re-applied after the restart")
    assert worker not in {p["pid"] for p in agent(cluster, namespace, "web-1")["processes"]}


def test_a_hand_made_change_is_found_and_undone(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    start_pod(cluster, namespace, "web-1", OPTED_IN)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("web", [50000, 20, 100]))
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "first rollout")
    # The answer itself says the change took; reading the agent again would race the periodic check.
    changed = agent(cluster, namespace, "web-1", "POST", {"thresholds": [1234, 5, 6]})
    assert changed["processes"]["applied"] == changed["processes"]["total"] >= 2
    wait_reports(cluster, namespace, "web-1", [50000, 20, 100], "the periodic check (every 5 s here) to undo it")
    assert agent(cluster, namespace, "web-1")["generation"] > changed["generation"], "undone by a later push"


def test_a_restarted_operator_converges_without_pushing_again(cluster: LocalCluster, operator: OperatorProcess, namespace: str) -> None:
    for name in ("web-1", "web-2"):
        start_pod(cluster, namespace, name, OPTED_IN)
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=policy("web", [50000, 20, 100]))
    for name in ("web-1", "web-2"):
        wait_reports(cluster, namespace, name, [50000, 20, 100], "first rollout")
    generations = {name: agent(cluster, namespace, name)["generation"] for name in ("web-1", "web-2")}

    operator.stop()
    cluster.kubectl("delete", "pod", "web-2", "-n", namespace, "--timeout=30s")
    start_pod(cluster, namespace, "web-3", OPTED_IN)
    operator.start()

    wait_reports(cluster, namespace, "web-3", [50000, 20, 100], "a pod created while the operator was away")
    wait_for(lambda: (s := policy_status(cluster, namespace)).get("appliedPods") == 2 and s.get("matchedPods") == 2,
             timeout=20, what="status to count web-1 and web-3 only")
    assert agent(cluster, namespace, "web-1")["generation"] == generations["web-1"], "web-1 was pushed again"
