"""The real node's binaries: kubelet, kube-controller-manager, kube-scheduler.

Built by the same cached wrapper-module build as kube-apiserver and kubectl
(``..binaries``), into the same cache folder (keyed on the Kubernetes
version), one binary at a time and renamed into place when done, so a build
that is stopped half-way never counts.  ``KUBEBUILDER_ASSETS`` (envtest) has
no kubelet, so these always come from the cache or a build.

containerd, runc and the CNI plugins come from Debian's packages
(``make node-packages`` installs them); :func:`host_tools` finds them and
says what is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from .. import binaries as base

NODE_BINARIES = ("kubelet", "kube-controller-manager", "kube-scheduler")
CNI_PLUGIN_DIR = Path("/usr/lib/cni")
HOST_TOOLS = {
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "buildah": "buildah",
    "debootstrap": "debootstrap",
    "unshare": "util-linux",
    "ip": "iproute2",
}


def folder() -> Path:
    return base.cache_dir()


def missing() -> list[str]:
    return [name for name in NODE_BINARIES if not os.access(folder() / name, os.X_OK)]


def ensure(log: Callable[[str], None] = print) -> Path:
    """The folder that holds all node binaries, building the missing ones once."""
    todo = missing()
    if todo:
        build(todo, log)
    return folder()


def build(names: list[str], log: Callable[[str], None] = print) -> None:
    go = base._go()
    dest = folder()
    dest.mkdir(parents=True, exist_ok=True)
    log(f"Building {', '.join(names)} v{base.K8S_VERSION} with {go} (once; cached in {dest}).")
    log("About 4 minutes for kubelet and 2-3 for each of the others when kube-apiserver was built before.")
    work = Path(tempfile.mkdtemp(prefix="gctuner-k8s-node-build-"))
    try:
        (work / "go.mod").write_text(
            "module gctuner.local/k8sbuild\n\ngo 1.26\n\n"
            f"require k8s.io/kubernetes v{base.K8S_VERSION}\n\n"
            + "\n".join(base._staging_replaces(go, work, log)) + "\n"
        )
        cmds = {name: f"k8s.io/kubernetes/cmd/{name}" for name in names}
        base._run([go, "get", *cmds.values()], work, "go get (kubernetes node binaries)", log)
        for index, (name, pkg) in enumerate(cmds.items(), 1):
            started = time.monotonic()
            deps = subprocess.run(
                [go, "list", "-deps", pkg], cwd=work, capture_output=True, text=True
            ).stdout.split()
            log(f"[{index}/{len(cmds)}] compiling {name} ({len(deps)} packages)")
            partial = work / "out" / name
            base._build_with_progress(
                [go, "build", "-v", "-trimpath", "-ldflags", base._version_ldflags(), "-o", str(partial), pkg],
                work, deps, name, log,
            )
            shutil.move(str(partial), str(dest / f".{name}.partial"))
            os.replace(dest / f".{name}.partial", dest / name)
            log(f"  {name} built in {time.monotonic() - started:.0f}s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def host_tools() -> dict[str, Path]:
    """containerd, runc, buildah, ... from the machine; raise naming what is missing."""
    found: dict[str, Path] = {}
    lacking: set[str] = set()
    for tool, package in HOST_TOOLS.items():
        path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
        if path is None:
            lacking.add(package)
        else:
            found[tool] = Path(path)
    for plugin in ("bridge", "host-local", "loopback"):
        if not os.access(CNI_PLUGIN_DIR / plugin, os.X_OK):
            lacking.add("containernetworking-plugins")
    if lacking:
        raise base.BinariesError(
            "the real node needs Debian's packages " + " ".join(sorted(lacking))
            + ": run 'make node-packages' as root (or: apt-get install -y " + " ".join(sorted(lacking)) + ")"
        )
    return found


def main() -> int:
    import sys

    try:
        print(ensure(log=lambda m: print(m, file=sys.stderr, flush=True)))
    except base.BinariesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
