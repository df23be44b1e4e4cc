"""The agent's unit tests under every CPython on this machine, 3.9 and later.

Each interpreter runs ``tests/unit/test_agent_*.py`` in a subprocess, from its
own virtualenv (see :mod:`interpreters`), with the project's pytest settings
(warnings are errors, every test has a timeout) but without the suite's
``conftest.py``, which needs the local cluster's tools (3.11+). A test file
that imports something the small virtualenv lacks (say, a framework only the
dev extra installs) is left out on every interpreter, and the output says so.
"""

from __future__ import annotations

import ast
import json
import os
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
    needs = {path: third_party_imports(path) for path in files}
    present = importable(python, set().union(*needs.values()))
    selected = [path for path in files if needs[path] <= present]
    left_out = {path.name: sorted(needs[path] - present) for path in files if path not in selected}
    assert selected, f"no agent test runs with only {sorted(present)}: {left_out}"

    returncode, output = run_pytest(python, selected, tmp_path)

    summary = output.strip().splitlines()[-1].strip("= ") if output.strip() else "no output"
    assert returncode == 0, f"CPython {interpreter.name}: {summary}\n{output}"
    with capsys.disabled():
        note = f"; left out (missing modules): {left_out}" if left_out else ""
        print(f"\nCPython {interpreter.name}: {len(selected)} files, {summary}{note}", end=" ")


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
        *map(str, files),
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

