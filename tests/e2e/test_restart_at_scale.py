"""An operator killed in the middle of a rollout to 200 pods converges, with no stale pod and no needless push.

The pods are hollow (``bench/fleet.py``: Running and Ready on a hollow node
whose status the test writes, as kubemark does), every one served by the
real agent core (``bench/agentfarm.py``), so that 200 fit on 2 cores; the
benchmark does the same with 10,000 (``bench/convergence.py``). The operator
runs with the ServiceAccount's RBAC, which holds no write on pods.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

sys.path.insert(0, str(REPO_ROOT))  # the benchmarks' hollow pods and agent farm
from bench import fleet
from bench.agentfarm import AgentFarm

PODS = 200
TOKEN = "restart-token"
FIRST_IP = 60_000  # hollow addresses of their own: 127.100.237.x and up


def test_an_operator_killed_mid_rollout_converges_without_a_needless_push(
    cluster: LocalCluster, operator: OperatorProcess, operator_kubeconfig: Path, namespace: str, tmp_path: Path,
) -> None:
    ips = fleet.create_hollow(cluster, namespace, PODS, FIRST_IP)
    operator.stop()  # the session's operator would act beside ours
    env = {"KUBECONFIG": str(operator_kubeconfig), "GCTUNER_TOKEN": TOKEN, "GCTUNER_VERIFY_INTERVAL": "3600",
           "GCTUNER_MAX_PARALLEL": "4"}  # a slow rollout, to be killed in the middle of
    ours = OperatorProcess(cluster, tmp_path / "operator.log", **env)
    try:
        with AgentFarm(ips.values(), tmp_path / "farm", TOKEN) as farm:
            ours.start()
            fleet.apply_policy(cluster, namespace, "bench", [50000, 20, 100])
            wait_for(lambda: farm.all_report((50000, 20, 100)), timeout=120, what="the first rollout")

            fleet.apply_policy(cluster, namespace, "bench", [60000, 20, 100])
            wait_for(lambda: farm.count_reporting((60000, 20, 100)) >= PODS // 4, timeout=60, what="a quarter of the change")
            pid = ours.process.pid
            assert pid is not None
            os.killpg(pid, signal.SIGKILL)  # no cleanup, no goodbye: as an OOM kill or a node loss
            ours.stop()
            time.sleep(0.5)  # nothing can be in flight any more: the process is gone
            applied, pushed = farm.count_reporting((60000, 20, 100)), farm.pushes()
            assert applied < PODS, "the rollout finished before the kill: nothing left to prove"

            ours.start()
            wait_for(lambda: farm.all_report((60000, 20, 100)) and (s := fleet.policy_status(cluster, namespace, "bench"))
                     .get("appliedPods") == PODS and s.get("observedGeneration") == 2, timeout=120,
                     what="every pod on the new settings, counted in the status")
            assert farm.pushes() - pushed == PODS - applied, "a pod already in place was pushed again"
            stale = [ip for ip, endpoint in farm.endpoints.items()
                     if (endpoint.shared.desired().applied_by or None) is None
                     or endpoint.shared.desired().applied_by.generation != 2]  # type: ignore[union-attr]
            assert not stale, f"{len(stale)} pods do not say generation 2 applied them"
            assert "Forbidden" not in ours.log()
    finally:
        ours.stop()
        fleet.delete_all(cluster, namespace)
        operator.start()
