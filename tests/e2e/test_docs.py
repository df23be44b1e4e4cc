"""Every command the README and docs/ show is run, and shows what they say.

Each document runs top to bottom in a namespace of its own, which the
kubeconfig's context makes the default (the docs use the default namespace,
as a reader would), with our kubectl and the virtualenv's ``gctuner`` on
PATH, from the repository root, while the session's operator runs. Each
command runs in a shell of its own, after the doc's earlier ``export``
lines. The reading and comparing rules are in tests/docblocks.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from docblocks import Command, commands, matches, normalise
from gctuner_localcluster.cluster import REPO_ROOT, LocalCluster
from gctuner_localcluster.operatorproc import OperatorProcess
from polling import wait_for

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
RUNNABLE = [doc for doc in DOCS if commands(doc)]


def shell(command: Command, env: dict[str, str], exports: list[str]) -> subprocess.CompletedProcess[str]:
    """The command in a shell of its own, after the doc's earlier ``export`` lines (as in the reader's shell)."""
    script = "\n".join([*exports, command.line])
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_the_doc_is_true(cluster: LocalCluster, operator: OperatorProcess, namespace: str, doc: Path, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text())
    cluster.kubectl("config", "set-context", "--current", f"--namespace={namespace}", kubeconfig=kubeconfig)
    env = {**cluster.env(), "KUBECONFIG": str(kubeconfig)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    exports: list[str] = []
    for command in commands(doc):
        if not command.expected:
            done = shell(command, env, exports)
            assert done.returncode == 0, f"{command.where}: $ {command.line}\n{done.stdout}{done.stderr}"
            if command.line.startswith("export "):
                exports.append(command.line)
            continue
        last: list[str] = []

        def shows_it(command: Command = command, last: list[str] = last) -> bool:
            done = shell(command, env, exports)
            last[:] = normalise(done.stdout + done.stderr, namespace)
            return matches(command.expected, done.stdout + done.stderr, namespace)

        try:
            wait_for(shows_it, timeout=60, what=command.where, interval=1)
        except AssertionError:
            shown = "\n".join(normalise("\n".join(command.expected)))
            pytest.fail(f"{command.where}: $ {command.line}\nthe doc shows:\n{shown}\nit shows:\n" + "\n".join(last))


def test_some_docs_run() -> None:
    assert REPO_ROOT / "README.md" in RUNNABLE
