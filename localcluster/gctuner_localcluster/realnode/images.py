"""The real node's images, built on this machine with no registry.

- ``pause``: the Kubernetes module's own ``build/pause/linux/pause.c``,
  compiled static with the machine's gcc (as its Makefile does) and put in an
  image ``FROM scratch``;
- ``base``: Debian (debootstrap, from the machine's own apt source) with
  python3 and pip: what the repository's Dockerfiles get as ``--build-arg
  BASE`` instead of a registry's Python image;
- the repository's own Dockerfiles (``operator/Dockerfile`` with its targets
  ``operator`` and ``sidecar``, ``deploy/examples/flask/Dockerfile``, the
  sidecar example's plain app ``deploy/examples/sidecar/Dockerfile``), built
  by buildah from Debian with ``--pull=never``: the images the tests run are
  the ones a user builds.

Each image is written as a docker archive under ``~/.cache/gctuner/images``,
named by a hash of its inputs (the source files its Dockerfile copies, the
Dockerfile, the base it builds on), so it is rebuilt exactly when they
change.  :func:`import_into` loads the archives into a containerd.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable

from .. import binaries as base_binaries

Log = Callable[[str], None]

PAUSE_TAG = "3.10.2"
PAUSE_IMAGE = f"gctuner.local/pause:{PAUSE_TAG}"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates")
# Bump when the base recipe below changes (its inputs are the suite, the package list and this).
BASE_RECIPE = "1"


@dataclasses.dataclass(frozen=True)
class AppImage:
    """An image of one of the repository's Dockerfiles, as its comment says to build it."""

    name: str  # what the manifests say, e.g. gctuner-operator:0.1.0
    dockerfile: str  # relative to the repository root
    target: str | None = None


APP_IMAGES = (
    AppImage("gctuner-operator:0.1.0", "operator/Dockerfile", "operator"),
    AppImage("gctuner-sidecar:0.1.0", "operator/Dockerfile", "sidecar"),
    AppImage("gctuner-example-flask:0.1.0", "deploy/examples/flask/Dockerfile"),
    AppImage("gctuner-example-plain:0.1.0", "deploy/examples/sidecar/Dockerfile"),  # no gctuner in it
)


class ImageError(RuntimeError):
    """An image could not be built; the message says which and where its log is."""


def cache_root() -> Path:
    root = os.environ.get("GCTUNER_CACHE") or Path.home() / ".cache" / "gctuner"
    return Path(root) / "images"


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


class Builder:
    """Builds (or finds in the cache) every image the real node runs."""

    def __init__(self, repo_root: Path, log: Log = print) -> None:
        self.repo_root = repo_root
        self.log = log
        self.root = cache_root()
        self.archives = self.root / "archives"
        self.logs = self.root / "logs"
        self.storage = self.root / "buildah"

    # --- buildah ----------------------------------------------------------

    def _buildah(self, *args: str, what: str, log_file: Path | None = None) -> str:
        cmd = [
            "buildah", "--root", str(self.storage / "root"), "--runroot", str(self.storage / "run"),
            "--storage-driver", "overlay", *args,
        ]
        log_file = log_file or self.logs / "buildah.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
            proc = subprocess.run(cmd, capture_output=True)
            # stderr last: buildah's "Error: ..." line must be in the tail quoted below
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
            raise ImageError(f"{what} failed (exit {proc.returncode}); its log {log_file} ends with:\n{tail}")
        return proc.stdout.decode().strip()

    def _push_archive(self, image: str, name: str, archive: Path) -> None:
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self._buildah("push", image, f"docker-archive:{partial}:{name}", what=f"exporting {name}")
        os.replace(partial, archive)

    # --- pause ------------------------------------------------------------

    def pause(self) -> Path:
        source = _kubernetes_module_dir() / "build" / "pause" / "linux" / "pause.c"
        key = _digest(source.read_bytes(), PAUSE_TAG)
        archive = self.archives / f"pause-{key}.tar"
        if archive.exists():
            return archive
        started = time.monotonic()
        self.log(f"  building the pause image from {source}")
        work = Path(tempfile.mkdtemp(prefix="gctuner-pause-"))
        try:
            binary = work / "pause"
            proc = subprocess.run(
                ["gcc", "-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_TAG}-gctuner",
                 "-o", str(binary), str(source)],
                capture_output=True, text=True,
            )
            if proc.returncode != 0:
                raise ImageError(f"compiling {source} failed (needs gcc and libc6-dev):\n{proc.stderr}")
            ctr = self._buildah("from", "scratch", what="buildah from scratch")
            try:
                self._buildah("copy", ctr, str(binary), "/pause", what="copying pause")
                self._buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr,
                              what="configuring pause")
                image = self._buildah("commit", "--rm", ctr, f"localhost/gctuner-pause:{key}", what="committing pause")
            except BaseException:
                self._buildah("rm", ctr, what="removing the pause container")
                raise
            self._push_archive(image, PAUSE_IMAGE, archive)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.log(f"  pause image built in {time.monotonic() - started:.0f}s")
        return archive

    # --- base -------------------------------------------------------------

    def base_name(self) -> str:
        return f"localhost/gctuner-base:{BASE_SUITE}-{_digest(BASE_SUITE, ' '.join(BASE_PACKAGES), BASE_RECIPE)}"

    def base(self) -> str:
        """The Debian base image in buildah's storage; its name is the BASE build argument."""
        name = self.base_name()
        try:
            self._buildah("inspect", "--type", "image", name, what="looking for the base image")
            return name
        except ImageError:
            pass
        started = time.monotonic()
        mirror = debian_mirror()
        self.log(f"  building the base image {name}: debootstrap {BASE_SUITE} with {', '.join(BASE_PACKAGES)} (a few minutes, once)")
        work = Path(tempfile.mkdtemp(prefix="gctuner-base-", dir=self.root))
        rootfs = work / "rootfs"
        log_file = self.logs / "debootstrap.log"
        try:
            with open(log_file, "ab") as log:
                proc = subprocess.run(
                    ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                     BASE_SUITE, str(rootfs), mirror],
                    stdout=log, stderr=subprocess.STDOUT,
                )
            if proc.returncode != 0:
                tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-15:])
                raise ImageError(f"debootstrap failed; its log {log_file} ends with:\n{tail}")
            # An image, not a machine: no package lists, no caches; pip may install
            # into the system interpreter as the Dockerfiles expect of a Python image.
            for leftover in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
                shutil.rmtree(rootfs / leftover, ignore_errors=True)
                (rootfs / leftover).mkdir(parents=True, exist_ok=True)
            for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            tarball = work / "rootfs.tar"
            subprocess.run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."], check=True)
            ctr = self._buildah("from", "scratch", what="buildah from scratch")
            try:
                self._buildah("add", ctr, str(tarball), "/", what="adding the Debian root file system")
                self._buildah(
                    "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "--env", "LANG=C.UTF-8", "--cmd", '["python3"]', ctr, what="configuring the base image",
                )
                self._buildah("commit", "--rm", ctr, name, what="committing the base image")
            except BaseException:
                self._buildah("rm", ctr, what="removing the base container")
                raise
        finally:
            # debootstrap leaves device nodes and mounts nothing once done; remove it all.
            shutil.rmtree(work, ignore_errors=True)
        self.log(f"  base image built in {time.monotonic() - started:.0f}s")
        return name

    # --- the repository's Dockerfiles -------------------------------------

    def _inputs(self, dockerfile: Path) -> list[Path]:
        """The Dockerfile and every file its COPY lines take from the context."""
        files = [dockerfile]
        for line in dockerfile.read_text().splitlines():
            words = line.split()
            if not words or words[0].upper() != "COPY" or any(w.startswith("--from") for w in words):
                continue
            for source in words[1:-1]:
                path = self.repo_root / source
                if path.is_dir():
                    files.extend(sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts))
                else:
                    files.append(path)
        return files

    def app(self, image: AppImage, base: str) -> Path:
        dockerfile = self.repo_root / image.dockerfile
        parts: list[bytes | str] = [base, image.name, image.target or ""]
        for path in self._inputs(dockerfile):
            parts += [str(path.relative_to(self.repo_root)), path.read_bytes()]
        key = _digest(*parts)
        stem = re.sub(r"[^A-Za-z0-9.-]+", "-", image.name)
        archive = self.archives / f"{stem}-{key}.tar"
        if archive.exists():
            return archive
        started = time.monotonic()
        log_file = self.logs / f"{stem}.log"
        self.log(f"  building {image.name} from {image.dockerfile}{f' (target {image.target})' if image.target else ''}; log {log_file}")
        args = [
            # --force-rm: a failed build leaves no working container mounted in the cache
            "bud", "--pull=never", "--layers", "--force-rm", "--isolation=chroot", "--network=host",
            "--build-arg", f"BASE={base}", "-f", str(dockerfile), "-t", f"localhost/{image.name}",
        ]
        if image.target:
            args += ["--target", image.target]
        bundle = Path("/etc/ssl/certs/ca-certificates.crt")
        if bundle.exists():  # pip inside the build trusts what the machine trusts
            args += ["--volume", f"{bundle}:{bundle}:ro"]
        self._buildah(*args, str(self.repo_root), what=f"building {image.name}", log_file=log_file)
        self._push_archive(f"localhost/{image.name}", image.name, archive)
        self.log(f"  {image.name} built in {time.monotonic() - started:.0f}s")
        return archive

    def all(self) -> list[Path]:
        """Every archive the node imports: pause first, then the repository's images.

        One build at a time per cache (a second ``make cluster`` or test run
        waits): two builders would write the same archive and prune each
        other's."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "build.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.log("  waiting for another image build (same cache) to finish ...")
                fcntl.flock(lock, fcntl.LOCK_EX)
            return self._all()

    def _all(self) -> list[Path]:
        started = time.monotonic()
        archives = [self.pause()]
        missing = [i for i in APP_IMAGES if not self._cached(i)]
        if missing:
            base = self.base()
            archives += [self.app(i, base) for i in APP_IMAGES]
        else:
            archives += [self._cached(i) for i in APP_IMAGES]  # type: ignore[misc]
        self._prune(archives)
        self.log(f"  images ready in {time.monotonic() - started:.0f}s ({self.archives})")
        return archives

    def _cached(self, image: AppImage) -> Path | None:
        # The key needs the base's name only, which is fixed by its recipe: no build to know it.
        dockerfile = self.repo_root / image.dockerfile
        parts: list[bytes | str] = [self.base_name(), image.name, image.target or ""]
        for path in self._inputs(dockerfile):
            parts += [str(path.relative_to(self.repo_root)), path.read_bytes()]
        stem = re.sub(r"[^A-Za-z0-9.-]+", "-", image.name)
        archive = self.archives / f"{stem}-{_digest(*parts)}.tar"
        return archive if archive.exists() else None

    def _prune(self, keep: list[Path]) -> None:
        """Old archives of the same images go: the cache holds one of each."""
        for old in self.archives.glob("*.tar"):
            if old not in keep:
                old.unlink(missing_ok=True)


def _kubernetes_module_dir() -> Path:
    go = base_binaries._go()
    proc = subprocess.run(
        [go, "mod", "download", "-json", f"k8s.io/kubernetes@v{base_binaries.K8S_VERSION}"],
        capture_output=True, text=True, cwd=tempfile.gettempdir(),
        env={**os.environ, "GO111MODULE": "on", "GOFLAGS": "-mod=mod"},
    )
    match = re.search(r'"Dir":\s*"([^"]+)"', proc.stdout)
    if match is None:
        raise ImageError(f"finding k8s.io/kubernetes v{base_binaries.K8S_VERSION} in the module cache failed:\n{proc.stdout}{proc.stderr}")
    return Path(match.group(1))


def debian_mirror() -> str:
    """The Debian archive this machine's apt uses (debootstrap needs one; no name is hard-coded)."""
    sources = Path("/etc/apt/sources.list.d")
    texts = [p.read_text() for p in sorted(sources.glob("*.sources"))] if sources.is_dir() else []
    for text in texts:
        for stanza in text.split("\n\n"):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            )
            if "deb" in fields.get("types", "").split() and BASE_SUITE in fields.get("suites", "").split():
                return fields["uris"].split()[0]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == BASE_SUITE:
                return words[1] if not words[1].startswith("[") else words[2]
    raise ImageError(f"no apt source for Debian {BASE_SUITE} found in /etc/apt: debootstrap needs one for the base image")


def import_into(archives: list[Path], ctr: list[str], log: Log = print) -> None:
    """Load the archives into containerd's CRI namespace (``ctr`` is the command prefix)."""
    started = time.monotonic()
    for archive in archives:
        proc = subprocess.run([*ctr, "-n", "k8s.io", "images", "import", str(archive)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageError(f"importing {archive} into containerd failed: {proc.stderr.strip()}")
    log(f"  {len(archives)} images imported into containerd in {time.monotonic() - started:.0f}s")


def main() -> int:
    import sys

    from ..cluster import REPO_ROOT

    try:
        for archive in Builder(REPO_ROOT, log=lambda m: print(m, file=sys.stderr, flush=True)).all():
            print(archive)
    except (ImageError, base_binaries.BinariesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
