"""Convergence: from `kubectl apply` of a changed GCPolicy to `status.appliedPods == N`
and every agent reporting the new thresholds, for N = 10, 100, 1000 and 10,000
opted-in pods; the floor beside it; and the first rollout after an operator restart.

Real kube-apiserver, etcd and operator (default settings: 64 pushes at a time,
status written at most every 0.5 s) on the local cluster. The pods are hollow
(`bench/fleet.py`: bound to a hollow node whose status the benchmark writes,
as kubemark does); each pod's agent is the real agent core, served from child
processes of the benchmark (`bench/agentfarm.py`). Each N: one warm-up
rollout, then timed changes. The floor is the same N POSTs sent by a bare
aiohttp client (64 at a time, keep-alive) to the same farm, with no operator,
no API server and no status in the way: what the agents and the loopback
network cost. Everything shares 2 cores.

After the largest rollout: the operator is restarted with every pod in
place (time until every pod is verified live, and pushes made: the goal is
none), then killed with SIGKILL in the middle of a rollout and started
again (pushes made beyond the pods that still needed one: the goal is none).
Keep-alive: a first contact (GET, then the POST it calls for) to 1000 pods,
with one connection per request and with keep-alive.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import statistics
import time
import urllib.request
from typing import Any

import aiohttp

from gctuner.core.settings import Settings
from gctuner.policy import Endpoint
from gctuner_operator.agent_client import AgentClient

from . import fleet
from .agentfarm import PORT, FarmProcesses
from .operator_env import TOKEN, cluster_with_operator, wait, workdir
from .report import RESULTS, Table, spread

SIZES = (10, 100, 1000, 10_000)
REPEATS = {10: 3, 100: 3, 1000: 3, 10_000: 2}
PARALLEL = 64  # the operator's default GCTUNER_MAX_PARALLEL


def _rollout(cluster: Any, farm: FarmProcesses, namespace: str, n: int, thresholds: list[int]) -> float:
    started = time.monotonic()
    fleet.apply_policy(cluster, namespace, "bench", thresholds)

    def done() -> bool:
        status = fleet.policy_status(cluster, namespace, "bench")
        return status.get("appliedPods") == n and farm.all_report(tuple(thresholds))

    wait(done, timeout=600, what=f"the rollout to {n} pods", interval=0.02 if n <= 1000 else 0.1)
    return time.monotonic() - started


async def _posts(ips: list[str], body: dict[str, Any], parallel: int = PARALLEL) -> float:
    """N POSTs, ``parallel`` at a time, keep-alive: the floor."""
    limit = asyncio.Semaphore(parallel)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel), headers=headers) as session:

        async def one(ip: str) -> None:
            async with limit, session.post(f"http://{ip}:{PORT}/tune_gc", json=body) as response:
                assert response.status == 200, await response.text()

        started = time.monotonic()
        await asyncio.gather(*(one(ip) for ip in ips))
        return time.monotonic() - started


def floor(ips: list[str], thresholds: list[int]) -> float:
    return asyncio.run(_posts(ips, {"thresholds": thresholds}))


async def _first_contacts(ips: list[str], keepalive: float, thresholds: list[int]) -> float:
    """What the operator does for a pod it does not know yet: a live read, then the push."""
    client = AgentClient(5.0, PARALLEL, keepalive=keepalive)
    limit = asyncio.Semaphore(PARALLEL)
    settings, endpoint = Settings(tuple(thresholds)), Endpoint(PORT)

    async def one(ip: str) -> None:
        async with limit:
            await client.read(ip, endpoint)
            await client.push(ip, endpoint, settings, TOKEN)

    try:
        started = time.monotonic()
        await asyncio.gather(*(one(ip) for ip in ips))
        return time.monotonic() - started
    finally:
        await client.close()


def metric(url: str, name: str, labels: str = "") -> float:
    """One sample of the operator's /metrics (0 when absent)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _restarts(cluster: Any, operator: Any, farm: FarmProcesses, namespace: str, n: int, current: list[int]) -> list[tuple[str, ...]]:
    rows = []
    # 1. Every pod in place: the new process must verify them all and push none.
    operator.stop()
    before = farm.pushes()
    started = time.monotonic()
    operator.start()
    wait(lambda: metric(operator.metrics_url, "gctuner_operator_verifications_total", '{result="in_place"}') >= n,
         timeout=600, what="every pod verified after the restart", interval=0.1)
    verified = time.monotonic() - started
    pushes = farm.pushes() - before
    made = metric(operator.metrics_url, "gctuner_operator_pushes_total", '{result="applied"}')
    rows.append(("restart, every pod in place", f"{verified:.1f}", f"{pushes} (operator: {made:.0f})", "0"))

    # 2. Killed in the middle of a rollout, then started again.
    target = [current[0] + 1, current[1], current[2]]
    fleet.apply_policy(cluster, namespace, "bench", target)
    wait(lambda: farm.count_reporting(tuple(target)) >= n // 2, timeout=600, what="half the rollout", interval=0.01)
    os.killpg(operator_pid(operator), signal.SIGKILL)  # its own process group, as ManagedProcess starts it
    time.sleep(1.0)  # pushes in flight land or fail
    operator.stop()  # reaps it
    applied_at_kill, before = farm.count_reporting(tuple(target)), farm.pushes()
    started = time.monotonic()
    operator.start()

    def converged() -> bool:
        status = fleet.policy_status(cluster, namespace, "bench")
        return status.get("appliedPods") == n and farm.all_report(tuple(target))

    wait(converged, timeout=600, what="the rollout after the kill", interval=0.1)
    took = time.monotonic() - started
    pushes = farm.pushes() - before
    needed = n - applied_at_kill
    rows.append((f"killed at {applied_at_kill}/{n} applied, restarted", f"{took:.1f}", str(pushes), str(pushes - needed)))
    return rows


def operator_pid(operator: Any) -> int:
    pid = operator.process.pid
    assert pid is not None
    return int(pid)


def run() -> list[Table]:
    base = workdir("convergence")
    rows, floors, raw = [], [], {}
    restart_rows: list[tuple[str, ...]] = []
    keepalive_rows: list[tuple[str, ...]] = []
    try:
        with cluster_with_operator(base) as (cluster, operator):
            operator.start()
            first_ip = 0
            for n in SIZES:
                namespace = f"fleet-{n}"
                created = time.monotonic()
                ips = fleet.create_hollow(cluster, namespace, n, first_ip)
                first_ip += n
                print(f"    {n} hollow pods in {time.monotonic() - created:.0f} s", flush=True)
                with FarmProcesses(ips.values(), base / namespace, TOKEN) as farm:
                    current = [9000, 10, 10]
                    _rollout(cluster, farm, namespace, n, current)  # warm-up: first contact
                    times, lows = [], []
                    for r in range(REPEATS[n]):
                        lows.append(floor(list(ips.values()), current))  # what the pods run already: no drift
                        current = [10000 + r, 20, 30]
                        times.append(_rollout(cluster, farm, namespace, n, current))
                    raw[str(n)] = {"operator": times, "floor": lows}
                    rows.append((str(n), spread(times, digits=2), f"{min(times):.2f}", f"{max(times):.2f}",
                                 f"{statistics.mean(lows):.2f}", f"{statistics.mean(times) / statistics.mean(lows):.1f}"))
                    floors.append(statistics.mean(lows))
                    if n == 1000:
                        chosen = list(ips.values())
                        for keepalive, label in ((0.0, "one connection per request"), (1.0, "keep-alive (1 s)")):
                            took = [asyncio.run(_first_contacts(chosen, keepalive, [20000 + i, 10, 10])) for i in range(3)]
                            keepalive_rows.append((label, spread(took, digits=3), f"{1000 * statistics.mean(took) / n:.2f}"))
                            raw[f"first-contact-{keepalive}"] = took
                        current = [30000, 20, 30]
                        _rollout(cluster, farm, namespace, n, current)  # the policy's own settings back
                    if n == SIZES[-1]:
                        restart_rows = _restarts(cluster, operator, farm, namespace, n, current)
                fleet.delete_all(cluster, namespace)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    _plot(raw)
    tables = [
        Table(
            "Time from `kubectl apply` to every pod applied (seconds)",
            ("pods", "seconds, mean ± sd", "fastest", "slowest", "floor: N POSTs, no operator", "ratio"),
            rows,
            notes=("the time includes kubectl itself (~0.1 s) and the status write interval (0.5 s)",
                   "goal: 1000 pods ≤ 1 s, 10,000 ≤ 10 s; plot: convergence.png"),
            raw=raw,
        ),
        Table(
            f"The operator restarted with {SIZES[-1]} opted-in pods",
            ("case", "seconds until all verified / applied", "pushes", "needless pushes"),
            restart_rows,
            notes=("in place: from the process start to every pod verified live (GET /tune_gc); goal: no push",
                   "killed: SIGKILL once half the pods ran a new policy; needless = pushes beyond the pods that still needed one"),
        ),
        Table(
            "First contact with 1000 pods: GET /tune_gc then POST (64 at a time)",
            ("connections", "seconds, mean ± sd", "ms per pod"),
            keepalive_rows,
            notes=("what the operator does for a pod it does not know yet (after a restart, a new pod)",),
        ),
    ]
    return tables


def _plot(raw: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [n for n in SIZES if str(n) in raw]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label, marker in (("operator", "operator: kubectl apply → all applied", "o"),
                               ("floor", "floor: N POSTs, no operator", "s")):
        means = [statistics.mean(raw[str(n)][key]) for n in sizes]
        axes.plot(sizes, means, marker=marker, label=label)
    axes.plot([1000, 10_000], [1, 10], "k:", label="goal (1 s per 1000 pods)")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("opted-in pods")
    axes.set_ylabel("seconds")
    axes.set_title("Convergence against the number of pods (2 cores, everything local)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "convergence.png", dpi=100)
    plt.close(figure)
