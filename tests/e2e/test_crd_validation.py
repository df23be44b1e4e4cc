"""The API server itself refuses a bad GCPolicy at `kubectl apply`, readably."""

from __future__ import annotations

import json

import pytest

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
