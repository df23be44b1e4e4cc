"""Talking to the cluster through the user's own ``kubectl``.

``gctuner status`` runs on a laptop against whatever cluster the user's
kubeconfig names, with whatever authentication it uses (certificates,
tokens, exec plugins of cloud providers). Shelling out to ``kubectl`` gets
all of that right and keeps the agent package free of third-party imports.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any


class KubectlError(Exception):
    """kubectl failed, or could not run; the message is what it said."""


@dataclasses.dataclass(frozen=True)
class Kubectl:
    binary: str = "kubectl"
    """The kubectl to run (found on PATH unless a path is given)."""

    kubeconfig: str | None = None
    """``--kubeconfig``; kubectl's own default ($KUBECONFIG, ~/.kube/config) when None."""

    context: str | None = None
    """``--context``; the kubeconfig's current context when None."""

    timeout: float = 10.0
    """Seconds one call may take (also passed as kubectl's ``--request-timeout``)."""

    def run(self, *args: str) -> str:
        """kubectl's standard output; :class:`KubectlError` with its last words otherwise."""
        command = [self.binary, *self._global_flags(), *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout + 2, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError:
            raise KubectlError(f"{self.binary} not found: install kubectl or pass --kubectl PATH") from None
        except subprocess.TimeoutExpired:
            raise KubectlError(f"no answer within {self.timeout:g}s") from None
        if done.returncode != 0:
            raise KubectlError(_last_words(done.stderr) or f"kubectl exited with {done.returncode}")
        return done.stdout

    def get_json(self, *args: str) -> dict[str, Any]:
        """``kubectl get ARGS -o json``, parsed."""
        parsed: dict[str, Any] = json.loads(self.run("get", *args, "-o", "json"))
        return parsed

    def raw(self, path: str) -> str:
        """``kubectl get --raw PATH``: a GET of any API server path, e.g. a pod proxy."""
        return self.run("get", "--raw", path)

    def _global_flags(self) -> list[str]:
        flags = [f"--request-timeout={self.timeout:g}s"]
        if self.kubeconfig:
            flags.append(f"--kubeconfig={self.kubeconfig}")
        if self.context:
            flags.append(f"--context={self.context}")
        return flags


def _last_words(stderr: str) -> str:
    """kubectl's error without its ``Error from server`` boilerplate and warnings."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    return lines[-1] if lines else ""
