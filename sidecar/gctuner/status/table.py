"""``gctuner status``'s tables, in kubectl's style. No I/O here.

Columns are separated by three spaces, and every column but the last
(REASON, free text) is one word, so ``awk`` works on them; a cell with
nothing to say shows ``-``. The full
detail (every process, who applied the settings, the messages) is in
``-o json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gctuner.status.report import PodReport, PolicyReport, Report

REASON_WIDTH = 80
"""A longer reason is cut in the table (``-o json`` has it whole)."""


def render(report: Report, all_namespaces: bool) -> str:
    """The policies' table, a blank line, the pods' table."""
    if not report.policies and not report.pods:
        return "No GCPolicies and no opted-in pods found."
    parts = [_policies(report.policies, all_namespaces) if report.policies else "No GCPolicies found."]
    parts.append(_pods(report.pods, all_namespaces) if report.pods else "No opted-in pods found (label gctuner.dev/enabled=true).")
    return "\n\n".join(parts)


def _policies(policies: Sequence[PolicyReport], all_namespaces: bool) -> str:
    header = ["POLICY", "MODE", "THRESHOLDS", "FREEZE", "PRIORITY", "PODS", "APPLIED", "FAILED", "GC%", "READY",
              "REASON"]  # fmt: skip
    rows = [
        [
            p.name, p.mode, _list(p.thresholds) if p.thresholds else "-", str(p.freeze).lower(), str(p.priority),
            str(len(p.pods)), _count(p.status.get("appliedPods")), _count(p.status.get("failedPods")),
            _gc_percent(p), p.ready.get("status", "-"), _stale(p) or _reason(p),
        ]
        for p in policies
    ]  # fmt: skip
    return _table(header, rows, [p.namespace for p in policies] if all_namespaces else None)


def _pods(pods: Sequence[PodReport], all_namespaces: bool) -> str:
    header = ["POD", "POLICY", "ASKED", "LIVE", "PROCESSES", "COLLECTIONS", "PAUSED", "LONGEST", "STATE", "REASON"]
    rows = [
        [
            p.name, p.policy or "-", _asked(p), _live(p), _processes(p),
            _count(p.collections), _duration(p.pause_ns_total), _duration(p.pause_ns_max),
            p.state, _cut(p.reason) or "-",
        ]
        for p in pods
    ]  # fmt: skip
    return _table(header, rows, [p.namespace for p in pods] if all_namespaces else None)


def _table(header: list[str], rows: list[list[str]], namespaces: list[str] | None) -> str:
    if namespaces is not None:
        header = ["NAMESPACE", *header]
        rows = [[namespace, *row] for namespace, row in zip(namespaces, rows)]
    rows = [header, *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _reason(policy: PolicyReport) -> str:
    """The rollout's reason; for an Auto policy rolled out, whether its pods meet the goal."""
    goal_met = policy.condition("GoalMet")
    if policy.ready.get("status") == "True" and goal_met.get("reason"):
        return str(goal_met["reason"])
    return str(policy.ready.get("reason", "-"))


def _gc_percent(policy: PolicyReport) -> str:
    """p95 of the pods' share of time in the collector, as ``kubectl get gcpol`` shows it."""
    p95 = ((policy.status.get("telemetry") or {}).get("gcTimePercent") or {}).get("p95")
    return "-" if p95 is None else f"{p95:g}"


def _asked(pod: PodReport) -> str:
    if pod.asked is None:
        return "-"
    if "goal" in pod.asked:
        return _goal(pod.asked["goal"])
    return _list(pod.asked["thresholds"]) + ("+freeze" if pod.asked.get("freeze") else "")


def _goal(goal: dict[str, Any]) -> str:
    """A goal in one word: gc<=2%,mem<=80%."""
    parts = [f"gc<={goal.get('gcTimePercent'):g}%"]
    if goal.get("maxPauseMillis") is not None:
        parts.append(f"pause<={goal['maxPauseMillis']}ms")
    if goal.get("memoryBytes") is not None:
        parts.append(f"mem<={goal['memoryBytes'] // 2**20}Mi")
    elif goal.get("memoryPercent") is not None:
        parts.append(f"mem<={goal['memoryPercent']:g}%")
    return ",".join(parts)


def _live(pod: PodReport) -> str:
    """The thresholds the processes run: one value, or each with its count;
    for an Auto pod whose processes are not listed, what its autopilot chose."""
    if not pod.live:
        choice = (pod.autopilot or {}).get("choice") or {}
        if choice.get("thresholds"):
            return _list(choice["thresholds"]) + ("+frozen" if choice.get("frozen") else "")
        return "-"
    counts: dict[str, int] = {}
    for process in pod.live:
        shown = _list(process.get("thresholds") or [])
        counts[shown] = counts.get(shown, 0) + 1
    frozen = "+frozen" if all(process.get("frozen") for process in pod.live) else ""
    if len(counts) == 1:
        return next(iter(counts)) + frozen
    return ",".join(f"{n}x{shown}" for shown, n in counts.items()) + frozen


def _processes(pod: PodReport) -> str:
    """How many live processes applied the policy, of how many."""
    if not pod.live:
        return "-"
    return f"{pod.applied_processes}/{len(pod.live)}" if pod.asked is not None else str(len(pod.live))


def _stale(policy: PolicyReport) -> str:
    """The operator has not caught up with the latest change of the policy."""
    observed = policy.status.get("observedGeneration")
    return "NotObserved" if observed != policy.generation else ""


def _list(values: Sequence[Any]) -> str:
    return "[" + ",".join(str(v) for v in values) + "]"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _duration(ns: int | None) -> str:
    if ns is None:
        return "-"
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.2f}s"
    return f"{ns / 1e6:.{2 if ns < 10_000_000 else 1}f}ms"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 3] + "..."
