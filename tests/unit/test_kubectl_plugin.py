"""``kubectl gctuner``: the ``gctuner`` command installed as the kubectl plugin
``kubectl-gctuner``, taking kubectl's flags where kubectl takes them, and its
``-o`` formats. (docs/monitoring.md runs it through the real kubectl.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from gctuner.cli.main import kubectl_flags_last
from gctuner.status.output import to_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_installed_as_a_kubectl_plugin() -> None:
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-gctuner"] == scripts["gctuner"]
    assert Path(sys.executable).with_name("kubectl-gctuner").exists(), "reinstall: make venv"


@pytest.mark.parametrize("given,parsed", [
    (["-n", "shop", "status", "-o", "wide"], ["status", "-n", "shop", "-o", "wide"]),
    (["--namespace=shop", "--context", "prod", "status", "web"], ["status", "--namespace=shop", "--context", "prod", "web"]),
    (["--kubeconfig", "/tmp/k", "-nshop", "status"], ["status", "--kubeconfig", "/tmp/k", "-nshop"]),
    (["status", "-n", "shop"], ["status", "-n", "shop"]),
    (["sidecar", "--port", "0"], ["sidecar", "--port", "0"]),
    (["-n"], ["-n"]),
])
def test_kubectls_flags_before_the_subcommand(given: list[str], parsed: list[str]) -> None:
    assert kubectl_flags_last(given) == parsed


def test_yaml_output_reads_back_as_the_json_data() -> None:
    data = {"policies": [{"name": "web.v2-canary", "thresholds": [700, 10, 10], "goal": None, "status": {}}],
            "pods": [{"name": "web-1", "ip": "10.0.0.7", "reason": "a: b # c", "state": "true", "python": "3.11.7",
                      "live": [{"pid": 7, "frozen": False, "ratio": 0.5}], "empty": [], "quote": 'say "hi"\n'}]}
    assert yaml.safe_load(to_yaml(data)) == data
