"""The API server itself refuses a bad GCPolicy (Static or Auto) at `kubectl apply`, readably."""

from __future__ import annotations

import json

import pytest
from podstate import table

from gctuner_localcluster.cluster import LocalCluster

POLICY = """
apiVersion: gctuner.dev/v1alpha1
kind: GCPolicy
metadata: {{name: {name}}}
spec: {spec}
"""

REFUSED = [
    ("negative", "{thresholds: [-1, 10, 10]}", "should be greater than or equal to 0"),
    ("four", "{thresholds: [700, 10, 10, 10]}", "must have at most 3 items"),
    ("string", '{thresholds: [700, "a", 10]}', "must be of type integer"),
    ("zero", "{thresholds: [0, 10, 10]}", "set allowDisable: true"),
    ("empty", "{thresholds: []}", "should have at least 1 items"),
    ("huge", "{thresholds: [1000001]}", "should be less than or equal to 1000000"),
    ("port", "{thresholds: [700], endpoint: {port: 70000}}", "less than or equal to 65535"),
    ("path", "{thresholds: [700], endpoint: {path: tune_gc}}", "must start with '/'"),
    ("operator", "{thresholds: [700], selector: {matchExpressions: [{key: app, operator: In}]}}", "need a non-empty values list"),
    # mode: Auto, a goal and no numbers
    ("auto-with-thresholds", "{mode: Auto, thresholds: [700], goal: {gcTimePercent: 2}}", "mode: Auto takes a goal and no thresholds"),
    ("auto-without-goal", "{mode: Auto}", "mode: Auto takes a goal and no thresholds"),
    ("static-with-goal", "{thresholds: [700], goal: {gcTimePercent: 2}}", "mode: Static (the default) needs thresholds and takes no goal"),
    ("nothing", "{}", "mode: Static (the default) needs thresholds"),
    ("mode", "{mode: Fast, thresholds: [700]}", 'supported values: "Static", "Auto"'),
    ("gc-time", "{mode: Auto, goal: {gcTimePercent: 80}}", "should be less than or equal to 50"),
    ("no-gc-time", "{mode: Auto, goal: {memoryPercent: 80}}", "gcTimePercent: Required value"),
    ("both-budgets", "{mode: Auto, goal: {gcTimePercent: 2, memoryPercent: 80, memoryBytes: 1073741824}}", "not both"),
    ("memory-percent", "{mode: Auto, goal: {gcTimePercent: 2, memoryPercent: 120}}", "should be less than or equal to 100"),
    ("pause", "{mode: Auto, goal: {gcTimePercent: 2, maxPauseMillis: 0}}", "should be greater than or equal to 1"),
    ("bounds", "{mode: Auto, goal: {gcTimePercent: 2, minThreshold0: 9000, maxThreshold0: 1000}}", "must not be above"),
    ("zero-floor", "{mode: Auto, goal: {gcTimePercent: 2, minThreshold0: 0}}", "should be greater than or equal to 100"),
    ("freeze", "{mode: Auto, freeze: true, goal: {gcTimePercent: 2}}", "mode: Auto decides when to freeze"),
]


@pytest.mark.parametrize("name,spec,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_invalid_policy_is_refused_with_a_readable_message(cluster: LocalCluster, namespace: str, name: str, spec: str, message: str) -> None:
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=POLICY.format(name=name, spec=spec), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert cluster.kubectl("get", "gcpol", "-n", namespace, "-o", "name").stdout == ""


def test_zero_gen0_is_accepted_with_allow_disable(cluster: LocalCluster, namespace: str) -> None:
    spec = "{thresholds: [0], allowDisable: true}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=POLICY.format(name="disabled", spec=spec))


def test_valid_policy_shows_its_numbers_and_defaults(cluster: LocalCluster, namespace: str) -> None:
    spec = "{thresholds: [50000, 20, 100], freeze: true}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=POLICY.format(name="web", spec=spec))
    table = cluster.kubectl("get", "gcpol", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "MODE", "THRESHOLDS", "MATCHED", "APPLIED", "FAILED", "GC%", "READY", "AGE"]
    assert table[1].split()[:3] == ["web", "Static", "[50000,20,100]"]
    stored = json.loads(cluster.kubectl("get", "gcpolicy", "web", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored["priority"] == 0 and stored["allowDisable"] is False and stored["mode"] == "Static"
    assert stored["endpoint"] == {"port": 5000, "path": "/tune_gc"}


def test_an_auto_policy_is_stored_with_its_goal(cluster: LocalCluster, namespace: str) -> None:
    spec = "{mode: Auto, goal: {gcTimePercent: 2, maxPauseMillis: 50, memoryPercent: 80}}"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=POLICY.format(name="auto", spec=spec))
    stored = json.loads(cluster.kubectl("get", "gcpolicy", "auto", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored["goal"] == {"gcTimePercent": 2, "maxPauseMillis": 50, "memoryPercent": 80}
    assert "thresholds" not in stored
    # No thresholds: the autopilot chooses them. (The counts and GC% are the status, which the
    # session's operator, if an earlier test started it, may have written by now.)
    (row,) = table(cluster, namespace, "gcpol", "auto")
    assert (row["NAME"], row["MODE"], row["THRESHOLDS"]) == ("auto", "Auto", ""), row


def test_a_static_policy_of_the_first_release_keeps_working(cluster: LocalCluster, namespace: str) -> None:
    """No migration: a policy written before Auto existed (no mode) is Static."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=POLICY.format(name="old", spec="{thresholds: [50000, 20, 100]}"))
    stored = json.loads(cluster.kubectl("get", "gcpolicy", "old", "-n", namespace, "-o", "json").stdout)["spec"]
    assert stored["mode"] == "Static" and stored["thresholds"] == [50000, 20, 100]
