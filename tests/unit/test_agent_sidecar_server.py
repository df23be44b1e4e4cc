"""The sidecar's server, command line and follower installer, in-process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gctuner.api.endpoint import TuneEndpoint
from gctuner.api.routes import Routes
from gctuner.cli.install import install_follower
from gctuner.cli.main import main
from gctuner.cli.server import SidecarServer
from gctuner.core.config import Config
from gctuner.pod.publisher import Publisher
from gctuner.pod.statedir import StateDir

pytestmark = pytest.mark.timeout(60)

TOKEN = "sidecar-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def fetch(url: str, method: str = "GET", body: Any = None, **headers: str) -> tuple[int, Any]:
    """Status and decoded JSON answer (urllib: the sidecar is standard library, its test too)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    if body is not None:
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[str]:
    publisher = Publisher(StateDir(tmp_path / "state"))
    endpoint = TuneEndpoint(Config(token=TOKEN, apply_timeout=0.2), shared=publisher)
    server = SidecarServer(("127.0.0.1", 0), Routes(endpoint))
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield server.url
    server.stop_soon()
    thread.join(10)
    server.server_close()


def test_publishes_without_counting_itself(sidecar: str, tmp_path: Path) -> None:
    status, answer = fetch(f"{sidecar}/tune_gc", "POST", {"thresholds": [50000]}, **AUTH)
    assert status == 200
    assert answer["processes"] == {"applied": 0, "total": 0}
    assert answer["new_thresholds"] is None  # no process to report them
    desired = json.loads((tmp_path / "state" / "desired.json").read_text())
    assert desired["settings"]["thresholds"] == [50000]
    view = {"desired": desired["settings"], "generation": 1, "processes": [], "in_sync": True}
    assert fetch(f"{sidecar}/tune_gc") == (200, view)


def test_refusals_health_and_unknown_paths(sidecar: str) -> None:
    assert fetch(f"{sidecar}/healthz") == (200, {"status": "ok"})
    assert fetch(f"{sidecar}/tune_gc", "PUT")[0] == 405
    assert fetch(f"{sidecar}/tune_gc", "POST", {})[0] == 401
    big = fetch(f"{sidecar}/tune_gc", "POST", b" " * 5000, **AUTH, **{"Content-Type": "application/json"})
    assert big[0] == 413
    status, answer = fetch(f"{sidecar}/nothing")
    assert status == 404 and "/tune_gc" in answer["message"]


def test_the_sidecar_needs_a_state_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GCTUNER_STATE_DIR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["sidecar", "--port", "0"])
    assert exit_info.value.code == 2
    assert "--state-dir or GCTUNER_STATE_DIR" in capsys.readouterr().err


def test_install_follower(tmp_path: Path) -> None:
    assert main(["install-follower", str(tmp_path / "lib")]) == 0
    assert main(["install-follower", str(tmp_path / "lib")]) == 0  # a restarted init container
    assert not list((tmp_path / "lib").rglob("__pycache__"))
    code = "import gctuner, sys; print(gctuner.__file__, 'sitecustomize' in sys.modules)"
    env = {"PYTHONPATH": str(tmp_path / "lib"), "GCTUNER_STATE_DIR": str(tmp_path / "state")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.startswith(str(tmp_path / "lib" / "gctuner"))
    assert result.stdout.endswith("True\n")
    assert len(StateDir(tmp_path / "state").records()) == 0  # it left when it exited
    assert (tmp_path / "state" / "procs").is_dir()  # but it had joined


def test_install_follower_run_from_its_own_copy(tmp_path: Path) -> None:
    """A restarted app container: PYTHONPATH names the copy that installs itself."""
    assert main(["install-follower", str(tmp_path / "lib")]) == 0
    code = f"from gctuner.cli.main import main; main(['install-follower', {str(tmp_path / 'lib')!r}])"
    result = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(tmp_path / "lib")},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "installed the follower" in result.stdout


def test_the_installed_follower_says_why_it_does_not_follow(tmp_path: Path) -> None:
    install_follower(tmp_path)
    result = subprocess.run([sys.executable, "-c", "pass"], env={"PYTHONPATH": str(tmp_path)},
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0
    assert result.stderr == "gctuner: not following: GCTUNER_STATE_DIR is not set\n"
