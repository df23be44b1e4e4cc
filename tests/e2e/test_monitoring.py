"""gctuner as platform teams see it: a real Prometheus scraping the local cluster.

Debian's Prometheus runs on loopback with the scrape jobs users get
(deploy/monitoring/prometheus/scrape-configs.yaml: their relabelling
unchanged, the pods found from the API server's pod list with Prometheus's
own ServiceAccount, see gctuner_localcluster.prometheus) and the rules of
deploy/monitoring/rules/. It scrapes every opted-in pod's agent and the
session's operator while the operator rolls out a Static policy and an Auto
one. The tests query its HTTP API for what docs/monitoring.md promises, run
every query of the Grafana dashboard, and dry-run the Prometheus Operator
component against that operator's own CRDs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from podstate import EXAMPLES, TOKEN, agent, flask_pod, get, policy_status

from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from gctuner_localcluster.prometheus import (
    PodDiscovery,
    Prometheus,
    PrometheusError,
    file_sd_jobs,
    operator_crds,
    stand_in_target,
)
from polling import wait_for

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules" / "gctuner-rules.yaml"
DASHBOARD = MONITORING / "grafana" / "gctuner-dashboard.json"
STATIC_POLICY = "web.v2-canary"  # a dot and a dash: as odd as a policy name gets
AUTO_POLICY = "autopilot"
STATIC_PODS = ("web-1.blue", "web-2")
AUTO_POD = "auto-1"
THRESHOLDS = [5000, 20, 20]
GOAL = {"gcTimePercent": 5, "memoryBytes": 16 * 2**30}  # the pods have no memory limit; the budget is not the point here


@dataclasses.dataclass
class Stack:
    prometheus: Prometheus
    namespace: str
    sa_token: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.prometheus.query(expr)

    def values(self, expr: str, *by: str) -> dict[tuple[str, ...], float]:
        return {tuple(r["metric"].get(label, "") for label in by): float(r["value"][1]) for r in self.query(expr)}


def _policy(name: str, selector: dict[str, str], spec: dict[str, Any]) -> str:
    return json.dumps({"apiVersion": "gctuner.dev/v1alpha1", "kind": "GCPolicy", "metadata": {"name": name},
                       "spec": {"selector": {"matchLabels": selector},
                                "tokenSecretRef": {"name": "gctuner-token", "key": "token"}, **spec}})


def _load(ips: list[str], stop: threading.Event) -> None:
    """A few requests a second to each pod, so that its workers allocate and collect."""
    while not stop.wait(0.05):
        for ip in ips:
            try:
                with urllib.request.urlopen(f"http://{ip}:5000/", timeout=2) as response:
                    response.read()
            except OSError:
                pass


@pytest.fixture(scope="module")
def stack(cluster: LocalCluster, operator: OperatorProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("prometheus")
    namespace = f"mon-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "flask" / "secret.yaml"))
    cluster.kubectl("apply", "-f", str(MONITORING / "prometheus" / "rbac.yaml"))
    account = "system:serviceaccount:gctuner-system:gctuner-prometheus"
    wait_for(lambda: cluster.kubectl("auth", "can-i", "watch", "pods", "-A", f"--as={account}", check=False).returncode == 0,
             timeout=10, what="Prometheus's ClusterRoleBinding to take effect")
    token = cluster.kubectl("create", "token", "gctuner-prometheus", "-n", "gctuner-system", "--duration=2h").stdout.strip()
    token_file = workdir / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)

    assert cluster.apiserver is not None
    discovery = PodDiscovery(cluster.apiserver.url, cluster.apiserver.pki.ca_cert, token_file, workdir / "sd")
    discovery.stand_ins["gctuner-operator"] = [  # the session's operator is a local process, not a pod
        stand_in_target(operator.metrics_url.split("/")[2], "gctuner-system", "gctuner-operator-local", "metrics")]
    jobs = file_sd_jobs(yaml.safe_load((MONITORING / "prometheus" / "scrape-configs.yaml").read_text())["scrape_configs"],
                        discovery, "1s")
    discovery.start()
    prometheus = Prometheus(workdir, jobs, [RULES]).start()
    stop = threading.Event()
    try:
        # The operator scraped before anything is rolled out, so the rollout shows as a rise.
        wait_for(lambda: prometheus.query('up{job="gctuner-operator"} == 1'), timeout=30, what="the operator scraped")
        annotated = {"gctuner.dev/port": "5000"}  # the port annotation's path through the relabelling
        for name in STATIC_PODS:
            manifest = flask_pod(name, {"app": "web", "gctuner.dev/enabled": "true"}, annotated if name == STATIC_PODS[0] else None)
            cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=flask_pod(AUTO_POD, {"app": "auto", "gctuner.dev/enabled": "true"}))
        cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod", "--all", "--timeout=90s")
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_policy(STATIC_POLICY, {"app": "web"}, {"thresholds": THRESHOLDS}))
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=_policy(AUTO_POLICY, {"app": "auto"}, {"mode": "Auto", "goal": GOAL}))
        wait_for(lambda: policy_status(cluster, namespace, STATIC_POLICY).get("appliedPods") == 2
                 and policy_status(cluster, namespace, AUTO_POLICY).get("appliedPods") == 1, timeout=60, what="both policies applied")
        ips = [get(cluster, namespace, "pod", name)["status"]["podIP"] for name in (*STATIC_PODS, AUTO_POD)]
        threading.Thread(target=_load, args=(ips, stop), daemon=True).start()
        yield Stack(prometheus, namespace, token)
    finally:
        stop.set()
        prometheus.stop()
        discovery.stop()
        cluster.kubectl("delete", "gcpolicies", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
        cluster.kubectl("delete", "pods", "--all", "-n", namespace, "--wait=true", "--timeout=60s", check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_every_agent_and_the_operator_are_scraped_without_a_token(stack: Stack, cluster: LocalCluster) -> None:
    def scraped() -> dict[str, dict[str, Any]]:
        return {t["labels"]["pod"]: t for t in stack.prometheus.active_targets()
                if t["labels"].get("namespace") == stack.namespace and t["health"] == "up"}

    wait_for(lambda: set(scraped()) == {*STATIC_PODS, AUTO_POD}, timeout=30, what="every pod's agent scraped")
    for pod, target in scraped().items():
        ip = get(cluster, stack.namespace, "pod", pod)["status"]["podIP"]
        assert target["scrapeUrl"] == f"http://{ip}:5000/metrics", target  # the annotated port too
        assert target["labels"]["job"] == "gctuner-agents"
    (operator_target,) = [t for t in stack.prometheus.active_targets() if t["labels"]["job"] == "gctuner-operator"]
    assert operator_target["health"] == "up" and operator_target["labels"]["namespace"] == "gctuner-system"

    # Read-only: the agents answer a scrape without the token, and show it nowhere.
    ip = get(cluster, stack.namespace, "pod", STATIC_PODS[0])["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:5000/metrics", timeout=5) as response:
        page = response.read().decode()
    assert "gctuner_gc_collections_total" in page and TOKEN not in page
    wait_for(lambda: stack.query(f'gctuner_processes{{namespace="{stack.namespace}"}}'), timeout=30, what="series stored")
    series = stack.prometheus.api("series", **{"match[]": f'{{namespace="{stack.namespace}"}}'})
    stored = json.dumps(series) + json.dumps(stack.prometheus.active_targets()) + json.dumps(stack.prometheus.api("status/config"))
    assert TOKEN not in stored and stack.sa_token not in stored
    assert "authorization" not in stack.prometheus.api("status/config")["yaml"]  # no scrape carries credentials


def test_the_agents_series_and_labels(stack: Stack) -> None:
    """What docs/monitoring.md lists for an agent, with the labels it names."""
    ns = stack.namespace
    wait_for(lambda: len(stack.values(f'gctuner_gc_threshold{{namespace="{ns}",generation="0"}}', "pod", "pid")) == 6,
             timeout=30, what="two processes' thresholds per pod")
    names = {r["metric"]["__name__"] for r in stack.query(f'{{namespace="{ns}",job="gctuner-agents"}}')}
    assert {"gctuner_processes", "gctuner_gc_collections_total", "gctuner_gc_collected_objects_total",
            "gctuner_gc_uncollectable_objects_total", "gctuner_gc_pause_seconds_bucket", "gctuner_gc_pause_seconds_sum",
            "gctuner_gc_pause_seconds_count", "gctuner_gc_threshold", "gctuner_gc_frozen_objects",
            "gctuner_autopilot_goal_gc_time_ratio", "gctuner_autopilot_state", "gctuner_autopilot_recent_changes"} <= names
    labels = {frozenset(r["metric"]) for r in stack.query(f'gctuner_gc_collections_total{{namespace="{ns}"}}')}
    assert labels == {frozenset({"__name__", "namespace", "pod", "instance", "job", "pid", "generation"})}

    # The Static policy's thresholds in every process of its pods; every process applied.
    static = stack.values(f'gctuner_gc_threshold{{namespace="{ns}",pod=~"web-.*"}}', "pod", "generation")
    assert {(pod, str(g)): float(v) for pod in STATIC_PODS for g, v in enumerate(THRESHOLDS)} == static
    processes = stack.values(f'gctuner_processes{{namespace="{ns}"}}', "pod", "state")
    assert all(processes[(pod, "applied")] == processes[(pod, "total")] == 2 for pod in (*STATIC_PODS, AUTO_POD))


def test_gc_time_share_pauses_and_collections_per_pod(stack: Stack) -> None:
    ns = stack.namespace
    pods = {*STATIC_PODS, AUTO_POD}

    def share() -> dict[tuple[str, ...], float]:
        return stack.values(f'gctuner_pod:gc_time_ratio:max_rate5m{{namespace="{ns}"}}', "pod")

    wait_for(lambda: {p for (p,), v in share().items() if v > 0} == pods, timeout=60, what="every pod's GC time share recorded")
    assert all(0 < v < 0.5 for v in share().values()), share()
    direct = stack.values(f'max by (pod) (sum without (generation) (rate(gctuner_gc_pause_seconds_sum{{namespace="{ns}"}}[1m])))', "pod")
    assert {p for (p,) in direct} == pods

    def p99() -> dict[tuple[str, ...], float]:
        return stack.values('histogram_quantile(0.99, sum by (pod, le) '
                            f'(rate(gctuner_gc_pause_seconds_bucket{{namespace="{ns}"}}[1m])))', "pod")

    wait_for(lambda: {p for (p,), v in p99().items() if math.isfinite(v) and v > 0} == pods, timeout=60, what="pause p99 per pod")
    assert all(v < 1 for v in p99().values()), "pauses under a second: the buckets are in seconds"

    collections = stack.values(f'sum by (pod, generation) (gctuner_gc_collections_total{{namespace="{ns}"}})', "pod", "generation")
    assert {(p, g) for p in pods for g in "012"} == set(collections)
    wait_for(lambda: all(v > 0 for v in stack.values(f'gctuner_pod:gc_collections:rate5m{{namespace="{ns}",generation="0"}}', "pod").values())
             and len(stack.values(f'gctuner_pod:gc_collections:rate5m{{namespace="{ns}",generation="0"}}', "pod")) == 3,
             timeout=60, what="young collections per second in every pod")


def test_the_operators_rollout_duration_and_pods_by_state(stack: Stack) -> None:
    ns = stack.namespace
    wait_for(lambda: stack.values(f'gctuner_operator_pods{{namespace="{ns}"}}', "policy", "state").get((STATIC_POLICY, "applied")) == 2,
             timeout=30, what="the Static policy's pods applied")
    pods = stack.values(f'gctuner_operator_pods{{namespace="{ns}"}}', "policy", "state")
    assert pods[(STATIC_POLICY, "applied")] == 2 and pods[(AUTO_POLICY, "applied")] == 1
    assert pods.get((STATIC_POLICY, "failed"), 0) == 0 and pods.get((STATIC_POLICY, "pending"), 0) == 0
    ratio = stack.values(f'gctuner_policy:pods_applied:ratio{{namespace="{ns}"}}', "policy")
    assert ratio == {(STATIC_POLICY,): 1.0, (AUTO_POLICY,): 1.0}

    assert stack.values("sum(gctuner_operator_rollout_duration_seconds_count)")[()] >= 2
    wait_for(lambda: math.isfinite(stack.values("gctuner_operator:rollout_duration_seconds:p90_rate1h").get((), math.nan)),
             timeout=30, what="the rollouts' p90 recorded")
    assert 0 < stack.values("gctuner_operator:rollout_duration_seconds:p90_rate1h")[()] <= 60
    assert stack.values('sum(gctuner_operator_pushes_total{result="applied"})')[()] >= 3


def test_the_autopilots_chosen_thresholds(stack: Stack, cluster: LocalCluster) -> None:
    ns, pod = stack.namespace, AUTO_POD

    def chosen() -> dict[tuple[str, ...], float]:
        return stack.values(f'gctuner_autopilot_threshold{{namespace="{ns}",pod="{pod}"}}', "generation")

    try:
        wait_for(lambda: ("0",) in chosen(), timeout=90, what="the autopilot's first decision scraped")
    except AssertionError:
        said = agent(cluster, ns, pod)
        pytest.fail(f"no gctuner_autopilot_threshold; the agent says goal={said.get('goal')} autopilot={said.get('autopilot')}")
    assert chosen()[("0",)] >= 100, "the autopilot never disables the collector"
    assert stack.values(f'gctuner_autopilot_goal_gc_time_ratio{{namespace="{ns}"}}', "pod") == {(pod,): GOAL["gcTimePercent"] / 100}
    states = stack.values(f'gctuner_autopilot_state{{namespace="{ns}",pod="{pod}"}} == 1', "state")
    assert len(states) == 1, states
    # The pod runs what its autopilot chose (a Static pod has no autopilot series).
    wait_for(lambda: stack.values(f'max by (generation) (gctuner_gc_threshold{{namespace="{ns}",pod="{pod}"}})', "generation")[("0",)]
             == chosen()[("0",)], timeout=30, what="the chosen threshold0 in force")
    assert not stack.query(f'gctuner_autopilot_threshold{{namespace="{ns}",pod=~"web-.*"}}')


def test_the_rules_are_loaded_and_evaluate(stack: Stack) -> None:
    shipped = yaml.safe_load(RULES.read_text())["groups"]

    def loaded() -> dict[str, dict[str, Any]]:
        return {g["name"]: g for g in stack.prometheus.api("rules")["groups"]}

    assert set(loaded()) == {g["name"] for g in shipped}
    wait_for(lambda: all(r["health"] == "ok" for g in loaded().values() for r in g["rules"]), timeout=30, what="every rule evaluated")
    for group in shipped:
        assert [r.get("record") or r.get("alert") for r in group["rules"]] == [r["name"] for r in loaded()[group["name"]]["rules"]]
    alerts = {r["name"]: r for r in loaded()["gctuner.alerts"]["rules"]}
    assert alerts["GCTunerOperatorDown"]["state"] == "inactive"  # it is up
    firing = [a for r in alerts.values() for a in r["alerts"] if a["state"] == "firing"
              and a["labels"].get("namespace") == stack.namespace]
    assert not firing, "nothing is wrong with these pods"
    for record in ("gctuner_process:gc_time_ratio:rate5m", "gctuner_namespace:gc_time_ratio:max_rate5m",
                   "gctuner_pod:gc_pause_seconds:p50_rate5m", "gctuner_policy:pods:max"):
        # a recording rule over a rate has data once two scrapes came in and it was evaluated after them
        wait_for(lambda record=record: stack.query(f'{record}{{namespace="{stack.namespace}"}}'), timeout=60, what=record)


def dashboard_queries() -> list[str]:
    """Every ``expr`` in the dashboard, wherever it sits in the JSON."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(DASHBOARD.read_text()))
    return found


def grafana_to_promql(expr: str, namespace: str) -> str:
    """Grafana's variables as a user picking this namespace would have them."""
    expr = expr.replace("$__rate_interval", "1m").replace("$namespace", namespace)  # a DNS label: nothing to escape
    assert "$" not in expr.replace("$labels", ""), f"a variable the test does not know: {expr}"
    return expr


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 10
    variables = json.loads(DASHBOARD.read_text())["templating"]["list"]
    for variable in variables:
        if variable["type"] == "query":
            metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", variable["query"]["query"]).groups()
            assert stack.namespace in stack.prometheus.api(f"label/{label}/values", **{"match[]": metric})
    empty: list[str] = []

    def every_one_answers() -> bool:
        empty[:] = []
        for expr in queries:
            try:
                result = stack.query(grafana_to_promql(expr, stack.namespace))
            except PrometheusError as error:
                pytest.fail(f"the dashboard's query fails: {expr}: {error}")
            if not [r for r in result if math.isfinite(float(r["value"][1]))]:
                empty.append(expr)
        return not empty

    try:
        wait_for(every_one_answers, timeout=60, what="every dashboard query to return data")
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(empty))


def test_the_prometheus_operator_component_passes_a_server_side_dry_run(cluster: LocalCluster, tmp_path: Path) -> None:
    crds = operator_crds()
    for crd in crds:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    *(f"crd/{name}.monitoring.coreos.com" for name in ("podmonitors", "servicemonitors", "prometheusrules")))
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    deploy = os.path.relpath(REPO_ROOT / "deploy", overlay)
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [deploy], "components": [f"{deploy}/monitoring/prometheus-operator"]}))
    done = cluster.kubectl("apply", "--dry-run=server", "-k", str(overlay))
    assert "Warning" not in done.stderr, done.stderr
    for kind_name in ("service/gctuner-operator", "servicemonitor.monitoring.coreos.com/gctuner-operator",
                      "podmonitor.monitoring.coreos.com/gctuner-agents", "prometheusrule.monitoring.coreos.com/gctuner",
                      "deployment.apps/gctuner-operator"):
        assert f"{kind_name} " in done.stdout, done.stdout
    # The Service finds the operator's pods on their metrics port.
    rendered = list(yaml.safe_load_all(cluster.kubectl("kustomize", str(overlay)).stdout))
    service = next(o for o in rendered if o["kind"] == "Service")
    deployment = next(o for o in rendered if o["kind"] == "Deployment")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in ports
