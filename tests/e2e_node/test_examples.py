"""The Flask example as users run it: its Deployment from its own image, the
token a mounted Secret, a read-only root file system, every gunicorn worker
tuned by the operator running from its own image."""

from __future__ import annotations

from nodepods import BALANCED, agent, all_tuned, deploy_flask, kill_container, pod, pods, ready

from gctuner_localcluster.realnode.cluster import RealNodeCluster
from polling import wait_for


def test_flask_deployment_is_tuned_in_every_worker(installed: RealNodeCluster, namespace: str) -> None:
    deploy_flask(installed, namespace)
    found = pods(installed, namespace, "app=web")
    assert len(found) == 2 and all(ready(p) for p in found)
    for each in found:
        spec = each["spec"]["containers"][0]
        assert spec["securityContext"]["readOnlyRootFilesystem"] is True
        state = agent(each["status"]["podIP"])
        assert list(state["desired"]["thresholds"]) == BALANCED, state
        assert len(state["processes"]) >= 4, state["processes"]  # four gunicorn workers, each applied
        assert all_tuned(state, BALANCED), state


def test_killed_container_is_restarted_and_re_applied(installed: RealNodeCluster, namespace: str) -> None:
    """The kubelet restarts a killed container; its new processes run the policy's settings again."""
    deploy_flask(installed, namespace)
    first = pods(installed, namespace, "app=web")[0]
    name, ip = first["metadata"]["name"], first["status"]["podIP"]
    kill_container(installed, first)

    def restarted() -> bool:
        got = pod(installed, namespace, name)
        statuses = got["status"].get("containerStatuses", [])
        return bool(statuses) and statuses[0]["restartCount"] >= 1 and ready(got)

    wait_for(restarted, timeout=120, what="the kubelet to restart the killed container")
    state = wait_for(lambda: all_tuned(agent(ip), BALANCED) and agent(ip), timeout=90,
                     what="the operator to re-apply the restarted container")
    assert len(state["processes"]) >= 4, state
