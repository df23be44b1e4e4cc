"""The CPython interpreters on this machine, each with a small test virtualenv.

The agent promises to run on CPython 3.9 and later while the project's own
virtualenv is 3.11 only (the operator's tools need it). So the agent's tests
also run under every other CPython found here, each from a virtualenv of its
own that holds the test tools and Flask but no gctuner: the agent comes from
``sidecar/`` on ``PYTHONPATH``, so a stray import of anything outside the
standard library fails there instead of being satisfied by the dev extra.

Where interpreters are looked for, in order: ``$GCTUNER_TEST_PYTHONS`` (paths
separated by ``:``), pyenv's versions (``$PYENV_ROOT`` or ``~/.pyenv``), our
own builds (``tests/build-free-threaded-python`` makes a free-threaded 3.13,
which pyenv cannot download here), Debian's newest (``tests/fetch-debian-python``
fetches sid's 3.14 and 3.15 binaries with their glibc), and the interpreter
running the tests. Builds, Debian's and virtualenvs are cached in
``$GCTUNER_CACHE`` (default ``~/.cache/gctuner``) under ``pythons/build/``,
``pythons/debian/`` and ``pythons/<version>/``; a virtualenv is rebuilt when
the requirements below or its interpreter change.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

OLDEST = (3, 9)

REQUIREMENTS = (
    "pytest>=8.3,<10",
    "pytest-timeout>=2.3,<3",
    "hypothesis>=6.100,<7",
    "flask>=2.3,<4",
    "prometheus_client>=0.17",
    "trio>=0.22",
)
"""What the agent's unit tests import besides the standard library. pip picks
the newest release that still supports each interpreter (pytest 9 needs 3.10,
so 3.9 gets pytest 8) and, with ``--prefer-binary``, that has a wheel for it
(recent hypothesis builds a Rust extension that PyO3 cannot build for 3.13t)."""

_PROBE = (
    "import json, platform, sys, sysconfig; print(json.dumps({"
    "'implementation': platform.python_implementation(),"
    "'version': list(sys.version_info[:3]),"
    "'free_threaded': bool(sysconfig.get_config_var('Py_GIL_DISABLED')),"
    "'executable': sys.executable}))"
)


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """One CPython found on this machine."""

    executable: Path
    version: tuple[int, int, int]
    free_threaded: bool

    @property
    def name(self) -> str:
        """``3.13.0``, or ``3.13.0t`` for a free-threaded build (pyenv's spelling)."""
        return ".".join(map(str, self.version)) + ("t" if self.free_threaded else "")


def probe(executable: Path) -> Interpreter | None:
    """What ``executable`` is, or None if it is not a CPython the agent supports."""
    output = subprocess.run(
        [str(executable), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    facts = json.loads(output)
    version = tuple(facts["version"])
    if facts["implementation"] != "CPython" or version < OLDEST:
        return None
    return Interpreter(Path(facts["executable"]), version, facts["free_threaded"])  # type: ignore[arg-type]


def candidates() -> list[Path]:
    """Executables worth probing, in lookup order (see the module docstring)."""
    explicit = [Path(p) for p in os.environ.get("GCTUNER_TEST_PYTHONS", "").split(":") if p]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    # Names like 3.12.1 or 3.13.0t only: 2.7 cannot even run the probe.
    for folder in sorted(pyenv.glob("3.*")):
        match = re.fullmatch(r"3\.(\d+)\.\d+t?", folder.name)
        if match and int(match.group(1)) >= OLDEST[1] and (folder / "bin" / "python3").exists():
            found.append(folder / "bin" / "python3")
    built = sorted((cache() / "build").glob("*/bin/python3"))
    # pythons/debian/3.15/usr/bin/python3.15; the stamp is written once it has run.
    debian = [
        stamp.parent / "usr" / "bin" / f"python{stamp.parent.name}"
        for stamp in sorted((cache() / "debian").glob("*/.gctuner-packages"))
    ]
    running = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return [*explicit, *found, *built, *debian, running]


def discover() -> list[Interpreter]:
    """Every supported CPython found, one per version and build, oldest first."""
    unique: dict[str, Interpreter] = {}
    for executable in candidates():
        interpreter = probe(executable)
        if interpreter is not None:
            unique.setdefault(interpreter.name, interpreter)
    return sorted(unique.values(), key=lambda i: (i.version, i.free_threaded))


def cache() -> Path:
    """Where builds and virtualenvs live: outside the repo, so clones share them."""
    return Path(os.environ.get("GCTUNER_CACHE") or Path.home() / ".cache" / "gctuner") / "pythons"


def ensure_venv(interpreter: Interpreter, timeout: float = 300) -> Path:
    """The python of ``interpreter``'s test virtualenv, created once.

    A lock file serialises concurrent test runs; the stamp records what was
    installed, so a changed requirement or interpreter rebuilds the virtualenv.
    An interpreter that brings its own pip wheel (Debian's, in
    ``usr/share/python-wheels``) gets pip from it: Debian's ensurepip looks for
    the wheel in the machine's ``/usr/share/python-wheels``, whose pip may be
    too old for it or missing.
    """
    home = cache() / interpreter.name
    python = home / "bin" / "python"
    stamp = home / ".gctuner-stamp"
    install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--prefer-binary"]
    wheel = own_pip_wheel(interpreter)
    recipe = {"python": str(interpreter.executable), "install": [*install, *REQUIREMENTS]}
    wanted = json.dumps({**recipe, "pip": str(wheel)} if wheel else recipe)
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"{interpreter.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == wanted:
            return python
        shutil.rmtree(home, ignore_errors=True)
        if wheel is None:
            _run([str(interpreter.executable), "-m", "venv", str(home)], 120)
        else:
            _run([str(interpreter.executable), "-m", "venv", "--without-pip", str(home)], 120)
            # A wheel runs as a zip application: pip installs itself from its own wheel.
            bootstrap = [str(python), f"{wheel}/pip", "install", "--quiet", "--no-index"]
            _run([*bootstrap, "--disable-pip-version-check", str(wheel)], 120)
        _run([str(python), *install, *REQUIREMENTS], timeout)
        stamp.write_text(wanted)
    return python


def own_pip_wheel(interpreter: Interpreter) -> Path | None:
    """The newest pip wheel shipped beside ``interpreter`` (``<prefix>/usr/bin/python3.15``
    next to ``<prefix>/usr/share/python-wheels/pip-*.whl``), if any."""
    wheels = sorted((interpreter.executable.parent.parent / "share" / "python-wheels").glob("pip-*.whl"))
    return wheels[-1] if wheels else None


def _run(command: list[str], timeout: float) -> None:
    """Run a setup step; fail with its output, which says what went wrong."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
