"""Operator footprint: memory (RSS) and idle CPU with 1000 opted-in pods and
0, 10,000 and 50,000 pods that did not opt in.

The 1000 opted-in pods are hollow (`bench/fleet.py`), each served by the real
agent core (`bench/agentfarm.py`); the others are bound to a node that does
not exist: they cost the API server what they would in a real cluster. For
each count, a fresh operator process (default settings: a live check of
every pod each 60 s) starts after all the pods exist, rolls a changed policy
out to the 1000, then sits idle for 70 s, one periodic check of all 1000
pods included. Its pod watch has a server-side label selector
(`gctuner.dev/enabled=true`), so the pods that did not opt in should cost it
nothing: the goal is an RSS flat in them (± 5 %).
"""

from __future__ import annotations

import shutil
import time

from . import fleet
from .agentfarm import FarmProcesses
from .operator_env import TOKEN, cluster_with_operator, wait, workdir
from .report import Table
from .servers import cpu_seconds

OPTED_IN = 1000
BYSTANDERS = (0, 10_000, 50_000)
IDLE_SECONDS = 70.0
CREATE_BUDGET = 600.0
"""Seconds the benchmark may spend creating pods that did not opt in; fewer are measured past it."""


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for pid {pid}")


def _bystanders(cluster: object, first: int, last: int, deadline: float) -> int:
    """Create bystanders ``first`` .. ``last - 1`` in chunks until ``deadline``; how many exist."""
    created = first
    while created < last and time.monotonic() < deadline:
        chunk = min(last, created + 2500)
        pods = [fleet.pod(f"other-{i}", {"app": "other"}, node="elsewhere") for i in range(created, chunk)]
        fleet.create(cluster, "bystanders", pods, parallel=48)  # type: ignore[arg-type]
        created = chunk
    return created


def run() -> list[Table]:
    base = workdir("footprint")
    rows, raw = [], {}
    try:
        with cluster_with_operator(base) as (cluster, operator):
            ips = fleet.create_hollow(cluster, "fleet", OPTED_IN, 0)
            with FarmProcesses(ips.values(), base / "fleet", TOKEN) as farm:
                existing, began = 0, time.monotonic()
                for round_, wanted in enumerate(BYSTANDERS):
                    started_creating = time.monotonic()
                    existing = _bystanders(cluster, existing, wanted, began + CREATE_BUDGET)
                    creating = time.monotonic() - started_creating
                    operator.start()
                    pid = operator.process.pid
                    assert pid is not None
                    thresholds = [50000 + round_, 20, 100]
                    fleet.apply_policy(cluster, "fleet", "bench", thresholds)
                    first = wait(lambda t=tuple(thresholds): fleet.policy_status(cluster, "fleet", "bench").get(
                        "appliedPods") == OPTED_IN and farm.all_report(t), timeout=600, what="the rollout", interval=0.1)
                    settled = _rss_mb(pid)
                    cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
                    time.sleep(IDLE_SECONDS)  # a benchmark measures over a fixed window; no condition to poll
                    idle = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
                    end, peak = _rss_mb(pid), _rss_mb(pid, "VmHWM")
                    operator.stop()
                    raw[str(existing)] = {"rollout_s": first, "rss_settled_mb": settled, "rss_end_mb": end,
                                          "rss_peak_mb": peak, "idle_cpu_share": idle, "created_s": creating}
                    rows.append((f"{OPTED_IN} / {existing}", f"{first:.1f}", f"{settled:.0f}", f"{end:.0f}",
                                 f"{peak:.0f}", f"{100 * idle:.2f}", f"{creating:.0f}"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ends = [v["rss_end_mb"] for v in raw.values()]
    spread_pct = 100 * (max(ends) - min(ends)) / min(ends) if ends else 0.0
    return [Table(
        "Operator footprint: a fresh operator per row, after its rollout and 70 s idle",
        ("opted in / not opted in", "first rollout (s)", "RSS after rollout (MB)", "RSS after idle (MB)",
         "peak RSS (MB)", "idle CPU (% of a core)", "creating the others (s)"),
        rows,
        notes=(f"RSS after idle varies by {spread_pct:.1f} % across the rows (goal: ± 5 %, ≤ 100 MB; idle ≤ 1 % of a core)",
               "the first rollout of each fresh operator reads every pod live first (GET, then the POST it needs)"),
        raw=raw,
    )]
