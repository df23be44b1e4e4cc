"""``gctuner status`` end to end against a stand-in kubectl that replays recorded JSON.

What is checked here is what the stand-in sees (the calls and their flags) and
what the user sees; the real kubectl and cluster are in tests/e2e/test_status.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gctuner.cli import main as cli

pytestmark = pytest.mark.timeout(60)

DATA = Path(__file__).with_name("status_data")

STAND_IN = f"""#!{sys.executable}
import json, sys
from pathlib import Path
data, args = Path({str(DATA)!r}), sys.argv[1:]
with open(Path(__file__).with_name("calls"), "a") as log:
    log.write(json.dumps(args) + "\\n")
if "--raw" in args:
    name = args[args.index("--raw") + 1].split("/")[6].split(":")[0]
    live = json.loads((data / "live.json").read_text())[name]
    if "error" in live:
        sys.exit(print("Error from server (ServiceUnavailable): " + live["error"], file=sys.stderr) or 1)
    print(json.dumps(live["answer"]))
elif "gcpolicies.gctuner.dev" in args:
    if "no-crd" in args:
        sys.exit(print('error: the server doesn\\'t have a resource type "gcpolicies"', file=sys.stderr) or 1)
    print((data / "policies.json").read_text())
else:
    print((data / "pods.json").read_text())
"""


@pytest.fixture
def kubectl(tmp_path: Path) -> Path:
    path = tmp_path / "kubectl"
    path.write_text(STAND_IN)
    path.chmod(0o755)
    return path


def calls(kubectl: Path) -> list[list[str]]:
    return [json.loads(line) for line in (kubectl.parent / "calls").read_text().splitlines()]


def run(kubectl: Path, *args: str) -> int:
    return cli.main(["status", "--kubectl", str(kubectl), "--via", "proxy", *args])


def test_reads_every_ready_pod_through_the_pod_proxy(kubectl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(kubectl, "-n", "shop", "--kubeconfig", "/k", "--context", "c", "--timeout", "3") == 0
    made = calls(kubectl)
    assert all(call[:3] == ["--request-timeout=3s", "--kubeconfig=/k", "--context=c"] for call in made)
    assert made[0][3:] == ["get", "gcpolicies.gctuner.dev", "--namespace", "shop", "-o", "json"]
    assert made[1][3:] == ["get", "pods", "--selector", "gctuner.dev/enabled=true", "--namespace", "shop", "-o", "json"]
    raw = sorted(call[-1] for call in made[2:])
    assert raw[0] == "/api/v1/namespaces/shop/pods/api-broken:5000/proxy/tune_gc"
    assert len(raw) == 6  # api-starting is not ready: not read
    out = capsys.readouterr().out
    assert "web-1          web-tuned       [100000,50,100]         [100000,50,100]" in out


def test_a_selector_and_one_policy(kubectl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(kubectl, "web-tuned", "-A", "-l", "app in (web)") == 0
    made = calls(kubectl)
    assert made[1][1:] == ["get", "pods", "--selector", "gctuner.dev/enabled=true,app in (web)", "--all-namespaces", "-o", "json"]
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in out if line.startswith("shop")] == [
        ["shop", "web-tuned"], ["shop", "web-1"], ["shop", "web-2"]]


def test_json(kubectl: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(kubectl, "-o", "json") == 0
    data = json.loads(capsys.readouterr().out)
    broken = next(p for p in data["pods"] if p["name"] == "api-broken")
    assert broken["state"] == "Failed"
    assert broken["error"] == "Error from server (ServiceUnavailable): HTTP Error 500: Internal Server Error"


@pytest.mark.parametrize("args,message", [
    (["--namespace", "no-crd"], "doesn't have a resource type \"gcpolicies\": is gctuner installed? (kubectl apply -k deploy/)"),
    (["nope"], 'GCPolicy "nope" not found'),
])
def test_errors_say_what_to_do(kubectl: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        run(kubectl, *args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_without_kubectl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run(tmp_path / "missing")
    assert "not found: install kubectl or pass --kubectl PATH" in capsys.readouterr().err


def test_help_names_the_rbac_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    assert "pods/proxy" in capsys.readouterr().out
