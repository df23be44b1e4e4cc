"""deploy/monitoring/ without a cluster: promtool checks and unit-tests the rules.

promtool is Debian's (``make prometheus``, which ``make test`` runs first);
a missing promtool fails here, it never skips. Every rules file under
deploy/monitoring/ is checked, so one with a syntax error fails ``make test``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules" / "gctuner-rules.yaml"
OPERATOR = MONITORING / "prometheus-operator"
RULE_FILES = sorted(p for p in MONITORING.rglob("*.y*ml") if any(isinstance(d, dict) and "groups" in d for d in yaml.safe_load_all(p.read_text())))


def promtool(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool not found: run `make prometheus` (Debian's prometheus package, as root)"
    return subprocess.run([found, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_there_are_rules_to_check() -> None:
    assert RULES in RULE_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: str(p.relative_to(MONITORING)))
def test_every_rules_file_passes_promtool_check(path: Path) -> None:
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_unit_tests_pass() -> None:
    """Input series and the alerts and values they must give: rules/gctuner-rules_test.yaml."""
    done = promtool("test", "rules", "gctuner-rules_test.yaml", cwd=RULES.parent)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_a_rules_file_with_a_syntax_error_fails_the_check(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(RULES.read_text().replace("max by (namespace, pod) (gctuner_process", "max by (namespace, pod (gctuner_process", 1))
    done = promtool("check", "rules", str(broken))
    assert done.returncode != 0 and "parse error" in done.stdout + done.stderr


def test_the_prometheusrule_holds_the_same_groups() -> None:
    rule = yaml.safe_load((OPERATOR / "prometheusrule.yaml").read_text())
    assert rule["apiVersion"] == "monitoring.coreos.com/v1" and rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_every_alert_has_a_severity_a_summary_and_a_section_in_the_docs() -> None:
    docs = (REPO_ROOT / "docs" / "monitoring.md").read_text()
    alerts = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert {a["alert"] for a in alerts} >= {"GCTunerGCTimeOverGoal", "GCTunerRolloutStuck", "GCTunerPodsFailing", "GCTunerOperatorDown"}
    for alert in alerts:
        assert alert["labels"]["severity"] in ("info", "warning", "critical")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert f"### {alert['alert']}" in docs, f"docs/monitoring.md has no section for {alert['alert']}"


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.title() for word in rest)


def test_the_podmonitor_relabels_as_the_tested_scrape_job() -> None:
    """The e2e tests run the plain scrape job; the PodMonitor must do the same (but its
    namespace and pod labels, which the Prometheus Operator adds by itself)."""
    jobs = {j["job_name"]: j for j in yaml.safe_load((MONITORING / "prometheus" / "scrape-configs.yaml").read_text())["scrape_configs"]}
    plain: list[dict[str, Any]] = [
        {_camel(k): v for k, v in step.items()} for step in jobs["gctuner-agents"]["relabel_configs"]
        if step.get("target_label") not in ("namespace", "pod")
    ]
    monitor = yaml.safe_load((OPERATOR / "podmonitor.yaml").read_text())
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["relabelings"][: len(plain)] == plain
    assert endpoint["relabelings"][len(plain):] == [{"targetLabel": "job", "replacement": "gctuner-agents"}]
    assert monitor["spec"]["selector"] == {"matchLabels": {"gctuner.dev/enabled": "true"}}
    assert endpoint["path"] == "/metrics" and "basicAuth" not in endpoint and "authorization" not in endpoint


def test_the_component_lists_every_manifest_beside_it() -> None:
    kustomization = yaml.safe_load((OPERATOR / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Component"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in OPERATOR.glob("*.yaml") if p.name != "kustomization.yaml")


def test_the_dashboard_is_grafana_json_with_queries() -> None:
    dashboard = json.loads((MONITORING / "grafana" / "gctuner-dashboard.json").read_text())
    targets = [t for panel in dashboard["panels"] for t in panel["targets"]]
    assert targets and all(t["expr"] and t["refId"] for t in targets)
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
