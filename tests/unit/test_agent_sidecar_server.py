"""The sidecar's server, command line and follower installer, in-process."""

from __future__ import annotations

import json
import os
import socket
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
from polling import wait_for

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
    assert status == 202  # published, but no process follows: not a 200 "updated"
    assert answer["processes"] == {"applied": 0, "total": 0, "lagging": []}
    assert "no process follows" in answer["message"]
    assert answer["new_thresholds"] is None  # no process to report them
    desired = json.loads((tmp_path / "state" / "desired.json").read_text())
    assert desired["settings"]["thresholds"] == [50000]
    view = {"desired": desired["settings"], "generation": 1, "processes": [], "in_sync": False}
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


def raw(url: str, data: bytes, *, half_close: bool = False, timeout: float = 5) -> bytes:
    """Send ``data`` as is on a new connection; everything the server answers until it closes."""
    host, port = url[len("http://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def status_and_json(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), answer
    return int(head.split()[1]), json.loads(body)


def test_several_content_lengths_are_refused(sidecar: str, tmp_path: Path) -> None:
    """``-1`` then ``21``: the checks and the reader must not see different ones."""
    body = b'{"thresholds": [777]}'
    for lengths in ((b"-1", b"21"), (b"21", b"21"), (b"21", b"300000000")):
        head = b"POST /tune_gc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        head += f"Authorization: Bearer {TOKEN}\r\n".encode()
        head += b"".join(b"Content-Length: " + n + b"\r\n" for n in lengths)
        status, answer = status_and_json(raw(sidecar, head + b"\r\n" + body, half_close=True))
        assert status == 400 and "one Content-Length" in answer["message"]
    assert not (tmp_path / "state" / "desired.json").exists()


def test_a_short_body_is_refused(sidecar: str, tmp_path: Path) -> None:
    body = b'{"thresholds": [777]}'
    head = f"POST /tune_gc HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {TOKEN}\r\n"
    head += f"Content-Length: {len(body) + 5}\r\n\r\n"
    status, answer = status_and_json(raw(sidecar, head.encode() + body, half_close=True))
    assert status == 400 and "Content-Length" in answer["message"]
    assert not (tmp_path / "state" / "desired.json").exists()


@pytest.mark.parametrize("line", [b"TRACE /tune_gc HTTP/1.1", b"CONNECT example.com:443 HTTP/1.1",
                                  b"get /tune_gc HTTP/1.1", b"BREW /healthz HTTP/1.1", b"POST /healthz HTTP/1.1",
                                  b"FOO /nothing HTTP/1.0"])  # fmt: skip
def test_every_other_method_is_a_json_405(sidecar: str, line: bytes) -> None:
    status, answer = status_and_json(raw(sidecar, line + b"\r\nHost: x\r\n\r\n"))
    assert status == 405 and "supported" in answer["message"]


@pytest.mark.parametrize("request_line", [b"GET / HTTP/2.0", b"\x16\x03\x01 garbage", b"POST /tune_gc",
                                          b"GET /tune_gc HTTP/1.1 extra"])  # fmt: skip
def test_the_standard_library_refusals_are_json_4xx(sidecar: str, request_line: bytes) -> None:
    status, answer = status_and_json(raw(sidecar, request_line + b"\r\n\r\n"))
    assert 400 <= status < 500 and answer["message"]


def test_idle_connections_time_out_and_never_starve_healthz(tmp_path: Path) -> None:
    publisher = Publisher(StateDir(tmp_path / "state"))
    endpoint = TuneEndpoint(Config(token=TOKEN, apply_timeout=0.2), shared=publisher)
    server = SidecarServer(("127.0.0.1", 0), Routes(endpoint), timeout=1.0, max_connections=8)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    host, port = server.server_address[:2]
    idle = [socket.create_connection((str(host), port)) for _ in range(20)]
    try:
        for _ in range(8):
            assert fetch(f"{server.url}/healthz") == (200, {"status": "ok"})
        idle[-1].settimeout(30)  # far beyond the server's 1 s: only the server can end this wait
        assert idle[-1].recv(1) == b""  # closed by the server: timed out (or evicted)
    finally:
        for sock in idle:
            sock.close()
        server.stop_soon()
        thread.join(10)
        server.server_close()


def test_66_idle_connections_under_a_64_file_limit(tmp_path: Path) -> None:
    """The sidecar as run, under ``ulimit -n 64``: healthz still answers."""
    import resource

    code = "import sys; from gctuner.cli.main import main; sys.exit(main(sys.argv[1:]))"
    port = free_port()
    env = {**os.environ, "GCTUNER_STATE_DIR": str(tmp_path / "state"), "GCTUNER_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-c", code, "sidecar", "--host", "127.0.0.1", "--port", str(port)], env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    idle: list[socket.socket] = []
    try:
        wait_for(lambda: _healthy(url), 30, "the sidecar to answer")
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(66)]
        answered = sum(_healthy(url) for _ in range(8))
        assert answered == 8
    finally:
        for sock in idle:
            sock.close()
        server.terminate()
        server.wait(10)


def _healthy(url: str) -> bool:
    try:
        return fetch(f"{url}/healthz") == (200, {"status": "ok"})
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_bound_follows_the_file_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from gctuner.cli.server import connection_bound

    monkeypatch.setattr(resource, "getrlimit", lambda _: (64, 64))
    assert connection_bound() == 48
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1 << 20, 1 << 20))
    assert connection_bound() == 64
