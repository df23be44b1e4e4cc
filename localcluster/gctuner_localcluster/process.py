"""One child process of the local cluster: start, wait until healthy, stop.

The envtest lesson: a process that dies during start-up must be reported at
once with the tail of its log (not after a long health timeout), and ``stop``
must be safe to call twice and leave nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Callable


class ProcessError(RuntimeError):
    """A managed process failed to start or to become healthy."""


class ManagedProcess:
    """A child process in its own session, logging to a file."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # its own process group: stop() kills all of it
                preexec_fn=_die_with_parent,
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, healthy: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``healthy`` until true; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise ProcessError(
                    f"{self.name} exited (code {code}) before {what}; "
                    f"its log {self.log_path} ends with:\n{self.log_tail()}"
                )
            if healthy():
                return
            time.sleep(0.1)
        raise ProcessError(
            f"{self.name} did not become {what} within {timeout:.0f}s; "
            f"its log {self.log_path} ends with:\n{self.log_tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=grace)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers the leader left behind


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started us dies.

    ``stop()`` is the normal path; this covers a harness killed with SIGKILL
    (a CI timeout), which would otherwise leave etcd and kube-apiserver behind.
    """
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def http_ok(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    """True when ``url`` answers 200; any error (not up yet) is False."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False
