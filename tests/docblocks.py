"""The runnable parts of the docs, and how their shown output is compared.

Convention (README.md and docs/*.md):

- a fenced block whose language is ``console`` is run: each line starting
  with ``$ `` is a command (a trailing ``\\`` continues it on the next line),
  and the lines after it, up to the next command, are its shown output;
- ``<!-- doctest: skip -->`` on the line before the fence skips the block:
  commands that need a real cluster, Docker, or a terminal of their own;
- in shown output, a line ``...`` stands for any number of lines.

A command with shown output passes when its output, stdout and stderr
together, matches after both sides are normalised (below); it is retried
until it does, since a cluster converges. A command without shown output
must exit 0.

Normalising keeps what the docs promise and drops what changes between
runs: spaces collapse (kubectl pads columns to their widest value), and
timestamps, ages and durations, IP addresses, bare numbers (counts, pause
numbers, pids, the GC% figures), kubectl's created/configured/unchanged (a
second apply) and the random suffixes of a Deployment's pod names
(``web-7c6d9f8b5d-x2k4q``: the ReplicaSet's template hash and the pod's
five characters, both in Kubernetes' vowel-free alphabet) become
placeholders. Names, threshold lists, states and messages stay exact.

:func:`run` runs a document this way against a cluster: top to bottom, in a
namespace that the kubeconfig's context makes the default (the docs use the
default namespace, as a reader would), with the cluster's kubectl and the
virtualenv's ``gctuner`` on PATH, from the repository root; each command in
a shell of its own, after the doc's earlier ``export`` lines.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polling import wait_for

if TYPE_CHECKING:
    from gctuner_localcluster.cluster import LocalCluster

SKIP = "<!-- doctest: skip -->"
ANY_LINES = "..."
REPO_ROOT = Path(__file__).resolve().parents[1]

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery's rand.SafeEncodeString alphabet
_VOLATILE = [
    (re.compile(rf"(?<=[a-z0-9])-[{_SAFE}]{{6,10}}-[{_SAFE}]{{5}}\b"), "-<replicaset>-<pod>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"), "<time>"),
    (re.compile(r"\b\d+(\.\d+){3}\b"), "<ip>"),
    (re.compile(r"\b(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+\b"), "<duration>"),
    (re.compile(r"(?<![\w\[,./-])\d+(\.\d+)?(?![\w\],./-])"), "<n>"),
    (re.compile(r"\b(created|configured|unchanged)\b"), "<applied>"),
]


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # file:line, for messages
    line: str
    expected: tuple[str, ...]


def commands(path: Path) -> list[Command]:
    """Every command of the file's runnable ``console`` blocks, in order."""
    found: list[Command] = []
    lines = path.read_text().splitlines()
    in_block = skip = False
    previous = ""
    current: dict | None = None
    for number, line in enumerate(lines, 1):
        if not in_block and line.strip().startswith("```console"):
            in_block, skip = True, previous.strip() == SKIP
        elif in_block and line.strip() == "```":
            in_block = False
        elif in_block and not skip:
            if current is not None and current["line"].endswith("\\"):
                current["line"] = current["line"][:-1] + " " + line.strip()
            elif line.startswith("$ "):
                current = {"where": f"{path.name}:{number}", "line": line[2:], "expected": []}
                found.append(current)  # type: ignore[arg-type]
            elif current is not None:
                current["expected"].append(line)
        if line.strip():
            previous = line
    return [Command(c["where"], c["line"], tuple(c["expected"])) for c in found]  # type: ignore[index]


def normalise(text: str, namespace: str = "default") -> list[str]:
    out = []
    for line in text.replace(namespace, "default").splitlines():
        for pattern, placeholder in _VOLATILE:
            line = pattern.sub(placeholder, line)
        line = " ".join(line.split())
        if line:
            out.append(line)
    return out


def matches(expected: tuple[str, ...], actual: str, namespace: str = "default") -> bool:
    """The shown output, with ``...`` for any lines, is the actual one."""
    pattern = []
    for line in normalise("\n".join(expected)):
        pattern.append(r"(?:[^\n]*\n)*?" if line == ANY_LINES else re.escape(line) + r"\n")
    return re.fullmatch("".join(pattern), "\n".join(normalise(actual, namespace)) + "\n") is not None


def run(doc: Path, cluster: LocalCluster, namespace: str, tmp_path: Path, timeout: float = 60) -> None:
    """Every command of ``doc`` against ``cluster``, as a reader runs them; fail at the first
    whose output is not the one shown within ``timeout`` seconds (a cluster converges)."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig.read_text())
    cluster.kubectl("config", "set-context", "--current", f"--namespace={namespace}", kubeconfig=kubeconfig)
    env = {**cluster.env(), "KUBECONFIG": str(kubeconfig)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    exports: list[str] = []
    for command in commands(doc):
        if not command.expected:
            done = _shell(command, env, exports)
            assert done.returncode == 0, f"{command.where}: $ {command.line}\n{done.stdout}{done.stderr}"
            if command.line.startswith("export "):
                exports.append(command.line)
            continue
        last: list[str] = []

        def shows_it(command: Command = command, last: list[str] = last) -> bool:
            done = _shell(command, env, exports)
            last[:] = normalise(done.stdout + done.stderr, namespace)
            return matches(command.expected, done.stdout + done.stderr, namespace)

        try:
            wait_for(shows_it, timeout=timeout, what=command.where, interval=1)
        except AssertionError:
            shown = "\n".join(normalise("\n".join(command.expected)))
            raise AssertionError(f"{command.where}: $ {command.line}\nthe doc shows:\n{shown}\nit shows:\n"
                                 + "\n".join(last)) from None


def _shell(command: Command, env: dict[str, str], exports: list[str]) -> subprocess.CompletedProcess[str]:
    """The command in a shell of its own, after the doc's earlier ``export`` lines (as in the reader's shell)."""
    script = "\n".join([*exports, command.line])
    return subprocess.run(["bash", "-o", "pipefail", "-c", script], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
