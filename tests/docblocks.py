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
numbers, pids, the GC% figures) and kubectl's created/configured/unchanged become
placeholders. Names, threshold lists, states and messages stay exact.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

SKIP = "<!-- doctest: skip -->"
ANY_LINES = "..."

_VOLATILE = [
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
