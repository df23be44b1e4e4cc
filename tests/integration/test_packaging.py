"""The wheel the images install: built, inspected, installed afresh, run.

There is no container engine here, so the Dockerfiles' steps run in virtual
environments instead (build the wheel under the pinned constraints, install
it with and without the operator extra, run the commands the images run),
and the Dockerfiles are checked for what those steps rely on: the files they
copy exist, the wheel they name is the one built, the base image is pinned,
the user is not root, the entry points exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "constraints.txt"
DOCKERFILES = [REPO / "operator" / "Dockerfile", REPO / "deploy" / "examples" / "flask" / "Dockerfile"]

pytestmark = pytest.mark.timeout(600)


def run(*command: str | Path, **env: str) -> str:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=540,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **env})
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As the images' build stage does it: from the files it copies, and only those
    (which also keeps setuptools' build/ folder out of the work tree)."""
    source, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheels")
    build_stage = DOCKERFILES[0].read_text().split("\nFROM ")[1]
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", build_stage, re.M):
        for path in line.split():
            copy = shutil.copytree if (REPO / path).is_dir() else shutil.copy
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            copy(REPO / path, source / path)
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", out, source,
        PIP_CONSTRAINT=str(CONSTRAINTS))
    (built,) = out.glob("gctuner-*.whl")
    return built


def fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    return path / "bin"


def test_the_wheel_holds_the_agent_and_the_operator_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"gctuner", "gctuner_operator", "gctuner-0.1.0.dist-info"}
    assert "gctuner/status/collect.py" in names and "gctuner_operator/__main__.py" in names
    assert not [name for name in names if "__pycache__" in name]
    entry_points = zipfile.ZipFile(wheel).read("gctuner-0.1.0.dist-info/entry_points.txt").decode()
    assert re.findall(r"^(\S+) = ", entry_points, re.M) == ["gctuner", "gctuner-operator", "kubectl-gctuner"]
    metadata = zipfile.ZipFile(wheel).read("gctuner-0.1.0.dist-info/METADATA").decode()
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
    assert requires and all("extra ==" in r for r in requires)  # the agent needs nothing installed


def test_the_agent_alone_needs_only_the_standard_library(wheel: Path, tmp_path: Path) -> None:
    bin_ = fresh_venv(tmp_path / "agent")
    run(bin_ / "pip", "install", "--quiet", "--no-index", wheel)
    installed = {line.split("==")[0] for line in run(bin_ / "pip", "list", "--format=freeze").split()}
    assert installed - {"pip", "setuptools"} == {"gctuner"}
    run(bin_ / "python", "-c", "import gctuner, gctuner.cli.main, gctuner.status.collect, gctuner.wsgi, gctuner.asgi, gctuner.gunicorn")
    assert "sidecar" in run(bin_ / "gctuner", "--help")
    assert "pods/proxy" in run(bin_ / "gctuner", "status", "--help")
    # pip installs every script of the wheel: the operator's says what to install, no traceback
    done = subprocess.run([bin_ / "gctuner-operator", "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'gctuner[operator]'" in done.stderr


def test_the_operator_installs_with_the_pinned_versions_and_runs(wheel: Path, tmp_path: Path) -> None:
    bin_ = fresh_venv(tmp_path / "operator")
    run(bin_ / "pip", "install", "--quiet", "--constraint", CONSTRAINTS, f"{wheel}[operator]")
    pinned = dict(line.split("==") for line in CONSTRAINTS.read_text().split() if "==" in line)
    installed = dict(line.split("==") for line in run(bin_ / "pip", "list", "--format=freeze").split())
    assert installed.pop("gctuner") == "0.1.0"
    installed.pop("pip"), installed.pop("setuptools", None)  # the virtualenv's own
    assert {name: pinned.get(name) for name in installed} == installed  # every package pinned, as pinned
    assert "--liveness" in run(bin_ / "gctuner-operator", "--help")
    assert "usage: gctuner status" in run(bin_ / "gctuner", "status", "--help")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_dockerfiles_use_what_exists(dockerfile: Path, wheel: Path) -> None:
    text = dockerfile.read_text()
    assert re.search(r"^ARG BASE=python:3\.\d+\.\d+-slim-\w+$", text, re.M), "the base image is pinned by version"
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2 and all(s.startswith("${BASE}") for s in stages)
    allowed = re.findall(r"^!(\S+)$", (REPO / ".dockerignore").read_text(), re.M)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in source.split():
            assert (REPO / path).exists(), f"{dockerfile}: COPY {path} does not exist"
            assert path in allowed, f"{dockerfile}: COPY {path} is not in .dockerignore's build context"
    assert set(re.findall(r"/wheels/(gctuner-\S+?\.whl)", text)) == {wheel.name}
    for stage in stages[1:]:  # every runtime stage
        assert re.search(r"^USER 10001:10001$", stage, re.M), "runs as a non-root user"
        (entrypoint,) = re.findall(r'^ENTRYPOINT \["([\w-]+)"\]$', stage, re.M)
        assert entrypoint in {"gctuner", "gctuner-operator", "gunicorn"}
