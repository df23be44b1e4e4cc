"""Find or build the Kubernetes binaries the local cluster runs.

The tests, the demo and the benchmarks run the same ``etcd``,
``kube-apiserver`` and ``kubectl`` that users run, built from source with the
Go toolchain (this machine has no other way to get them).  Lookup order, the
first that holds all three binaries wins:

1. an explicit folder passed by the caller;
2. ``$KUBEBUILDER_ASSETS`` (the envtest convention);
3. our cache, ``$GCTUNER_CACHE`` or ``~/.cache/gctuner``, under ``k8s/<version>/``;
4. a build from the Go module proxy into that cache (many minutes, once).

Why a wrapper module: ``go install k8s.io/kubernetes/cmd/...`` refuses to
work because the kubernetes go.mod replaces its ~30 staging modules
(``k8s.io/api``, ...) with local paths.  A module of our own that requires
``k8s.io/kubernetes`` and replaces each staging module with its published
``v0.x.y`` twin builds fine.  etcd's server module is a main package at its
module root, so it is built the same way from a second wrapper.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

K8S_VERSION = "1.37.2"
ETCD_VERSION = "3.7.3"
BINARIES = ("etcd", "kube-apiserver", "kubectl")


class BinariesError(RuntimeError):
    """The binaries could not be found or built; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Assets:
    """Where the three binaries live, and how they were found."""

    folder: Path
    source: str  # "explicit", "KUBEBUILDER_ASSETS", "cache" or "built"

    def path(self, name: str) -> Path:
        return self.folder / name


def cache_dir() -> Path:
    """The folder that holds our builds; outside the repo so clones share it."""
    root = os.environ.get("GCTUNER_CACHE") or Path.home() / ".cache" / "gctuner"
    return Path(root) / "k8s" / f"v{K8S_VERSION}"


def _complete(folder: Path) -> bool:
    return all(os.access(folder / name, os.X_OK) for name in BINARIES)


def find(explicit: Path | None = None) -> Assets | None:
    """Return the first complete set of binaries in lookup order, or None."""
    if explicit is not None:
        if not _complete(explicit):
            raise BinariesError(f"{explicit} does not hold {', '.join(BINARIES)}")
        return Assets(explicit, "explicit")
    env = os.environ.get("KUBEBUILDER_ASSETS")
    if env:
        if not _complete(Path(env)):
            raise BinariesError(
                f"KUBEBUILDER_ASSETS={env} does not hold {', '.join(BINARIES)}; "
                "unset it to use (or build) gctuner's own cache"
            )
        return Assets(Path(env), "KUBEBUILDER_ASSETS")
    if _complete(cache_dir()):
        return Assets(cache_dir(), "cache")
    return None


def ensure(explicit: Path | None = None, log=print) -> Assets:
    """Find the binaries, building them into the cache when none are found."""
    found = find(explicit)
    if found is not None:
        return found
    build(cache_dir(), log=log)
    return Assets(cache_dir(), "built")


# --- building ---------------------------------------------------------------


def _go() -> str:
    go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if go is None:
        raise BinariesError(
            "the Go toolchain is needed to build kube-apiserver, kubectl and etcd "
            "once; install Go 1.26+ or point KUBEBUILDER_ASSETS at a folder "
            "that already holds the three binaries"
        )
    return go


def _run(args: list[str], cwd: Path, what: str, log) -> None:
    """Run a go command; on failure show its output's tail and say what failed."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-30:])
        raise BinariesError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _build_with_progress(args: list[str], cwd: Path, packages: list[str], label: str, log) -> None:
    """``go build -v`` names each package as it compiles: count them as progress."""
    total = len(packages)
    proc = subprocess.Popen(
        args, cwd=cwd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, bufsize=1
    )
    done, last_shown, lines = 0, -1, []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line.rstrip())
        if not line.startswith((" ", "#")) and "error" not in line:
            done += 1
        percent = min(99, 100 * done // max(total, 1))
        if percent >= last_shown + 5:
            log(f"  {label}: {percent:3d}% ({done}/{total} packages)")
            last_shown = percent
    if proc.wait() != 0:
        tail = "\n".join(lines[-30:])
        raise BinariesError(f"building {label} failed:\n{tail}")
    log(f"  {label}: 100% done")


def _staging_replaces(go: str, workdir: Path, log) -> list[str]:
    """The staging modules kubernetes replaces locally, pointed at published twins."""
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@v{K8S_VERSION}"],
        cwd=workdir, capture_output=True, text=True,
    )
    match = re.search(r'"GoMod":\s*"([^"]+)"', proc.stdout)
    if proc.returncode != 0 or match is None:
        raise BinariesError(f"downloading k8s.io/kubernetes v{K8S_VERSION} failed:\n{proc.stdout}{proc.stderr}")
    gomod = Path(match.group(1)).read_text()
    staging = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", gomod, flags=re.M)
    minor = K8S_VERSION.split(".", 1)[1]
    return [f"replace {m} => {m} v0.{minor}" for m in staging]


def _version_ldflags() -> str:
    major, minor, _ = K8S_VERSION.split(".")
    flags = {
        "gitVersion": f"v{K8S_VERSION}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    pkgs = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {p}.{k}={v}" for p in pkgs for k, v in flags.items()) + " -s -w"


def _build_kubernetes(go: str, out: Path, log) -> None:
    work = Path(tempfile.mkdtemp(prefix="gctuner-k8s-build-"))
    try:
        log(f"[1/3] downloading k8s.io/kubernetes v{K8S_VERSION} and its dependencies (about 150 MB the first time)")
        (work / "go.mod").write_text(
            "module gctuner.local/k8sbuild\n\ngo 1.26\n\n"
            f"require k8s.io/kubernetes v{K8S_VERSION}\n\n"
            + "\n".join(_staging_replaces(go, work, log)) + "\n"
        )
        cmds = [f"k8s.io/kubernetes/cmd/{name}" for name in ("kube-apiserver", "kubectl")]
        _run([go, "get", *cmds], work, "go get (kubernetes)", log)
        deps = subprocess.run(
            [go, "list", "-deps", *cmds], cwd=work, capture_output=True, text=True
        ).stdout.split()
        log(f"[2/3] compiling kube-apiserver and kubectl ({len(deps)} packages)")
        _build_with_progress(
            [go, "build", "-v", "-trimpath", "-ldflags", _version_ldflags(), "-o", str(out) + "/", *cmds],
            work, deps, "kube-apiserver+kubectl", log,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build_etcd(go: str, out: Path, log) -> None:
    work = Path(tempfile.mkdtemp(prefix="gctuner-etcd-build-"))
    try:
        module = "go.etcd.io/etcd/server/v3"
        log(f"[3/3] building etcd v{ETCD_VERSION}")
        (work / "go.mod").write_text(
            f"module gctuner.local/etcdbuild\n\ngo 1.26\n\nrequire {module} v{ETCD_VERSION}\n"
        )
        _run([go, "get", f"{module}@v{ETCD_VERSION}"], work, "go get (etcd)", log)
        deps = subprocess.run([go, "list", "-deps", module], cwd=work, capture_output=True, text=True).stdout.split()
        _build_with_progress(
            [go, "build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), module],
            work, deps, "etcd", log,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(dest: Path, log=print) -> None:
    """Build the three binaries into ``dest`` atomically (a half build never counts)."""
    go = _go()
    log(f"Building Kubernetes v{K8S_VERSION} and etcd v{ETCD_VERSION} with {go} (once; cached in {dest}).")
    log("This takes 10-20 minutes on 2 cores. Set KUBEBUILDER_ASSETS to skip it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.partial-", dir=dest.parent))
    try:
        _build_kubernetes(go, staging, log)
        _build_etcd(go, staging, log)
        if not _complete(staging):
            raise BinariesError(f"the build finished but {staging} lacks some of {BINARIES}")
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"Kubernetes binaries ready in {dest}")


def main() -> int:
    """``python -m gctuner_localcluster.binaries``: print the folder, building if needed."""
    try:
        assets = ensure(log=lambda msg: print(msg, file=sys.stderr, flush=True))
    except BinariesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(assets.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
