"""Convergence: from `kubectl apply` of a changed GCPolicy to `status.appliedPods == N`
and every agent reporting the new thresholds, for N = 10, 100 and 1000 opted-in pods.

Real kube-apiserver, etcd and operator (default settings: 64 pushes at a time,
status written at most every 0.5 s) on the local cluster; each pod's agent is
the real agent core, served for all pods from one process (`bench/agentfarm.py`).
Each N: one warm-up rollout, then 3 timed changes. Everything shares 2 cores.
"""

from __future__ import annotations

import shutil
import time

from . import fleet
from .agentfarm import AgentFarm
from .operator_env import TOKEN, cluster_with_operator, wait, workdir
from .report import Table, spread

SIZES = (10, 100, 1000)
REPEATS = 3


def _rollout(cluster, farm: AgentFarm, namespace: str, n: int, thresholds: list[int]) -> float:
    started = time.monotonic()
    fleet.apply_policy(cluster, namespace, "bench", thresholds)

    def done() -> bool:
        status = fleet.policy_status(cluster, namespace, "bench")
        return status.get("appliedPods") == n and farm.all_report(tuple(thresholds))

    wait(done, timeout=300, what=f"the rollout to {n} pods")
    return time.monotonic() - started


def run() -> list[Table]:
    base = workdir("convergence")
    rows, raw = [], {}
    try:
        with cluster_with_operator(base) as (cluster, operator):
            operator.start()
            for n in SIZES:
                namespace = f"fleet-{n}"
                fleet.create(cluster, namespace, [fleet.pod(f"app-{i}", fleet.ENABLED) for i in range(n)])
                ips = fleet.running_ips(cluster, namespace, n)
                with AgentFarm(ips.values(), base / namespace, TOKEN) as farm:
                    _rollout(cluster, farm, namespace, n, [9000, 10, 10])  # warm-up: first contact
                    times = [_rollout(cluster, farm, namespace, n, [10000 + r, 20, 30]) for r in range(REPEATS)]
                raw[str(n)] = times
                rows.append((str(n), spread(times, digits=2), f"{min(times):.2f}", f"{max(times):.2f}"))
                fleet.delete_all(cluster, namespace)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    table = Table(
        "Time from `kubectl apply` to every pod applied (seconds)",
        ("pods", "seconds, mean ± sd", "fastest", "slowest"),
        rows,
        notes=("the time includes kubectl itself (~0.1 s) and the status write interval (0.5 s)",),
        raw=raw,
    )
    return [table]
