"""The agent's unit tests under every CPython on this machine, 3.9 and later.

Each interpreter runs ``tests/unit/test_agent_*.py`` in a subprocess, from its
own virtualenv (see :mod:`interpreters`), with the project's pytest settings
(warnings are errors, every test has a timeout) but without the suite's
``conftest.py``, which needs the local cluster's tools (3.11+). Every test
file runs on every interpreter: one that an interpreter cannot import (a
module its small virtualenv lacks, syntax or a standard-library name it does
not have, an ``importorskip`` that skips it whole) fails that interpreter's
run, naming the file and the import error, and the other files still run.
"""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from interpreters import Interpreter, discover, ensure_venv

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "tests" / "unit"
RUN_SECONDS = 300
"""Bound on one interpreter's run; the whole of it takes ~5 s on 3.11."""

INTERPRETERS = discover()


def test_interpreters_found(capsys: pytest.CaptureFixture[str]) -> None:
    """Say which interpreters the agent is tested on; in CI (where ``make test``
    builds a free-threaded one first), insist on more than one and on that one."""
    names = ", ".join(interpreter.name for interpreter in INTERPRETERS)
    others = {interpreter.version[:2] for interpreter in INTERPRETERS} - {sys.version_info[:2]}
    with capsys.disabled():
        print(f"\nagent tests run on CPython {names}", end=" ")
        if not others:
            print("only: no other CPython 3.9+ found (install some with pyenv)", end=" ")
    if os.environ.get("CI") == "true":
        assert others, f"CI must test the agent on more than one CPython; found only {names}"
        assert any(i.free_threaded for i in INTERPRETERS), (
            f"CI must test the agent on a free-threaded CPython; found only {names}; "
            "build one with tests/build-free-threaded-python"
        )


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=lambda i: i.name)
def test_agent_unit_tests_pass(
    interpreter: Interpreter, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    python = ensure_venv(interpreter)
    files = sorted(UNIT.glob("test_agent_*.py"))
    assert files, f"no tests/unit/test_agent_*.py in {UNIT}"
    needs = {path: third_party_imports(path) for path in files}
    present = importable(python, set().union(*needs.values()))
    missing = {path.name: sorted(needs[path] - present) for path in files if needs[path] - present}

    returncode, output = run_pytest(python, files, tmp_path)

    summary = output.strip().splitlines()[-1].strip("= ") if output.strip() else "no output"
    unimportable = import_failures(output)
    if missing or unimportable:
        lines = [f"  {name}: {why}" for name, why in sorted(unimportable.items())]
        lines += [
            f"  {name}: its virtualenv lacks {', '.join(modules)} (add to interpreters.REQUIREMENTS)"
            for name, modules in sorted(missing.items())
            if name not in unimportable
        ]
        raise AssertionError(
            f"CPython {interpreter.name} cannot import {len(lines)} test file(s):\n"
            + "\n".join(lines) + f"\n{summary}\n{output}"
        )  # fmt: skip
    assert returncode == 0, f"CPython {interpreter.name}: {summary}\n{output}"
    with capsys.disabled():
        print(f"\nCPython {interpreter.name}: {len(files)} files, {summary}", end=" ")


_COLLECTION_ERROR = re.compile(r"^ERROR (?:\S*/)?(test_agent_\w+\.py)\b", re.MULTILINE)
_COLLECTION_REPORT = re.compile(
    r"^_+ ERROR collecting (?:\S*/)?(test_agent_\w+\.py) _+$(.*?)(?=^_{3,} |^={3,} |\Z)",
    re.MULTILINE | re.DOTALL,
)
_MODULE_SKIP = re.compile(
    r"^SKIPPED \[\d+\] (?:\S*/)?(test_agent_\w+\.py)(?::\d+)?: (could not import .*)$", re.MULTILINE
)


def import_failures(output: str) -> dict[str, str]:
    """Test files pytest could not import (collection errors: ``-rE`` names them,
    the last ``E`` line of their report says why) or skipped whole for a failed
    import (``importorskip``, from ``-rs``)."""
    found = {name: "error while collecting" for name in _COLLECTION_ERROR.findall(output)}
    for name, report in _COLLECTION_REPORT.findall(output):
        errors = [line[1:].strip() for line in report.splitlines() if line.startswith("E ")]
        found[name] = errors[-1] if errors else "error while collecting"
    found.update((name, f"skipped: {why}") for name, why in _MODULE_SKIP.findall(output))
    return found


def third_party_imports(path: Path) -> set[str]:
    """Top-level modules ``path`` imports, directly or through the helper modules
    beside it, that are neither the standard library nor gctuner."""
    needed: set[str] = set()
    todo, seen = [path], {path}
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in {name.split(".")[0] for name in names}:
                helper = UNIT / f"{name}.py"
                if not helper.exists():
                    helper = UNIT.parent / f"{name}.py"  # tests/polling.py, shared by every tier
                if helper.exists():
                    if helper not in seen:
                        seen.add(helper)
                        todo.append(helper)
                elif name != "gctuner" and name not in sys.stdlib_module_names:
                    needed.add(name)
    return needed


def importable(python: Path, names: set[str]) -> set[str]:
    """Which of ``names`` the interpreter ``python`` can import."""
    script = (
        "import importlib.util, json, sys; "
        "print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n)]))"
    )
    done = subprocess.run(
        [str(python), "-c", script, *sorted(names)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return set(json.loads(done.stdout))


def run_pytest(python: Path, files: list[Path], cwd: Path) -> tuple[int, str]:
    """Run pytest on ``files`` under ``python``, bounded; kill the whole process
    group at the end, follower processes the tests started included."""
    command = [
        str(python), "-m", "pytest", "-q", "-c", os.devnull, "--rootdir", str(UNIT),
        "--noconftest", "-p", "no:cacheprovider", "-W", "error", "-o", "timeout=300",
        "--continue-on-collection-errors", "-rfEs", *map(str, files),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "sidecar"), str(ROOT / "tests")])}  # tests/: polling
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"not finished within {RUN_SECONDS}s:\n{output}") from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return process.returncode, output

