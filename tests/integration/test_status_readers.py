"""How ``gctuner status`` reads pods: at their IP, or through kubectl, against real servers.

A loopback HTTP server stands for the pods (an answer, a 500, a hang, not
gctuner at all); nothing listening stands for a refusal. Each failure must
come back as a reason, within the timeout, and never as an exception.
"""

from __future__ import annotations

import http.server
import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gctuner.status.collect import choose_reader, direct_reader, read_all
from gctuner.status.kubectl import Kubectl, KubectlError
from gctuner.status.report import LiveRead, Target

pytestmark = pytest.mark.timeout(60)

ANSWER = json.loads((Path(__file__).parents[1] / "unit" / "status_data" / "live.json").read_text())["web-1"]["answer"]


class Pods(http.server.BaseHTTPRequestHandler):
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/hang":
            self.release.wait(30)
        status, body = {"/500": (500, b"{}"), "/html": (200, b"<html>hello</html>")}.get(
            self.path, (200, json.dumps(ANSWER).encode()))
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pods)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    Pods.release.set()
    server.shutdown()
    server.server_close()
    Pods.release.clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target(port: int, path: str, name: str = "web-1") -> Target:
    return Target("shop", name, "127.0.0.1", port, path)


def test_direct_reads_and_failures(port: int) -> None:
    reads = read_all([
        target(port, "/tune_gc", "ok"), target(port, "/500", "error"), target(port, "/html", "html"),
        target(port, "/hang", "hang"), target(free_port(), "/tune_gc", "refused"),
    ], direct_reader(timeout=0.5), parallel=8)
    assert reads[("shop", "ok")] == LiveRead(ANSWER)
    errors = {name: read.error for (_, name), read in reads.items() if name != "ok"}
    assert errors["error"] == f"http://127.0.0.1:{port}/500 answered 500 Internal Server Error"
    assert errors["html"] == "not a gctuner answer: '<html>hello</html>'"
    assert errors["hang"] == f"http://127.0.0.1:{port}/hang: no answer within 0.5s"
    assert "Connection refused" in errors["refused"]


def test_auto_reads_loopback_pods_directly(port: int, tmp_path: Path) -> None:
    never = Kubectl(str(tmp_path / "no-kubectl"))  # the proxy path would fail: it is not taken
    read = choose_reader("auto", never, timeout=2)(target(port, "/tune_gc"))
    assert read == LiveRead(ANSWER)
    proxied = choose_reader("auto", never, timeout=2)(Target("shop", "web-1", "10.0.0.7", port, "/tune_gc"))
    assert proxied.error is not None and "no-kubectl not found" in proxied.error


def test_a_kubectl_that_hangs_is_given_up(tmp_path: Path) -> None:
    slow = tmp_path / "kubectl"
    slow.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(30)\n")
    slow.chmod(0o755)
    with pytest.raises(KubectlError, match="no answer within 0.2s"):
        Kubectl(str(slow), timeout=0.2).run("get", "pods")
