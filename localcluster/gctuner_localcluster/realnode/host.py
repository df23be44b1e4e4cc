"""What the real node changes on the host, written down so that it can all be undone.

Every change (a cgroup folder, the bridge, a mount, a folder such as
``/run/containerd`` that the runtime insists on) is recorded in the
cluster's ``host-state.json`` *before* it is made; :func:`undo` removes
exactly what the record lists, newest first, and works from the record
alone, so ``cluster-down`` after a crashed supervisor cleans up too.  Nothing
that the record does not list is touched: no other cgroup, no sysctl, no
mount.

One real node at a time per machine (the runtime's shim sockets, network
namespaces and CNI cache live at fixed host paths): a lock says so.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

CGROUP_ROOT_NAME = "gctuner-localcluster"
BRIDGE = "gctuner0"
POD_SUBNET = "10.88.0.0/24"
BRIDGE_ADDRESS = "10.88.0.1/24"
LOCK_PATH = Path("/run/gctuner-realnode.lock")
FIXED_HOST_DIRS = (Path("/run/containerd"), Path("/var/lib/cni"), Path("/var/run/netns"), Path("/var/log/containers"))

Log = Callable[[str], None]


class HostError(RuntimeError):
    """The host cannot run the real node; the message says what is missing."""


def preflight() -> None:
    """Root, overlayfs, cgroup hierarchies: say plainly what the machine lacks."""
    problems = []
    if os.geteuid() != 0:
        problems.append("root (containers, cgroups and the bridge need it): run as root")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the overlay file system (modprobe overlay)")
    if not cgroup_hierarchies():
        problems.append("cgroup hierarchies under /sys/fs/cgroup")
    if problems:
        raise HostError("this machine cannot run the real node; it lacks: " + "; ".join(problems))


def cgroup_hierarchies() -> list[Path]:
    """The mount points of the cgroup v1 hierarchies (or the one v2 mount)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0] if right else ""
        if fstype in ("cgroup", "cgroup2"):
            found.append(Path(left.split()[4]))
    return found


def mounts_under(*roots: Path) -> list[Path]:
    """Mount points at or below any of ``roots``, deepest first."""
    roots = tuple(Path(os.path.realpath(r)) for r in roots)  # /var/run is /run here
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].encode().decode("unicode_escape"))
        if any(point == r or r in point.parents for r in roots):
            points.append(point)
    return sorted(set(points), key=lambda p: len(p.parts), reverse=True)


class Ledger:
    """The record of host changes, in ``workdir/host-state.json``."""

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "host-state.json"
        self.entries: list[dict[str, Any]] = json.loads(self.path.read_text()) if self.path.exists() else []

    def add(self, kind: str, **fields: Any) -> None:
        self.entries.append({"kind": kind, **fields})
        self.path.write_text(json.dumps(self.entries, indent=1))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["kind"] == kind]


class Lock:
    """The machine-wide one-real-node lock (flock: it dies with its holder)."""

    def __init__(self) -> None:
        self._fd: int | None = None

    def acquire(self, timeout: float = 0) -> None:
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = Path(LOCK_PATH).read_text().strip() or "another process"
                    os.close(fd)
                    raise HostError(
                        f"another real node runs on this machine ({holder}); one at a time: "
                        "stop it first (make cluster-down in its clone)"
                    ) from None
                time.sleep(1)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} in {os.getcwd()}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HostError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


# --- changes -----------------------------------------------------------------


def note_fixed_dirs(ledger: Ledger) -> None:
    """The runtime's fixed host paths that do not exist yet: ours to remove at the end."""
    for path in FIXED_HOST_DIRS:
        if not path.exists():
            ledger.add("dir", path=str(path))
    netns = Path("/var/run/netns")
    ledger.add("netns", before=sorted(p.name for p in netns.iterdir()) if netns.is_dir() else [])


def note_log_links(ledger: Ledger, pod_logs: Path) -> None:
    """The kubelet links /var/log/containers/* to its pod logs (a fixed path): ours go at the end."""
    ledger.add("loglinks", folder="/var/log/containers", target=str(pod_logs))


def make_cgroups(ledger: Ledger) -> str:
    """``/gctuner-localcluster`` in every hierarchy: the kubelet's cgroupRoot."""
    for hierarchy in cgroup_hierarchies():
        folder = hierarchy / CGROUP_ROOT_NAME
        if folder.exists():
            continue  # left by a crash: ours by name, undo removes it
        ledger.add("cgroup", path=str(folder))
        folder.mkdir()
        for name in ("cpuset.cpus", "cpuset.mems"):  # a v1 cpuset child starts empty
            if (hierarchy / name).exists():
                (folder / name).write_text((hierarchy / name).read_text())
    for hierarchy in cgroup_hierarchies():
        if not any(e["path"] == str(hierarchy / CGROUP_ROOT_NAME) for e in ledger.of("cgroup")):
            ledger.add("cgroup", path=str(hierarchy / CGROUP_ROOT_NAME))
    return "/" + CGROUP_ROOT_NAME


def make_bridge(ledger: Ledger) -> None:
    """The pods' bridge, with the host's address on it (pods get no route beyond it)."""
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True).returncode == 0:
        raise HostError(f"a network link {BRIDGE} exists already: a real node runs, or one crashed (make cluster-down)")
    ledger.add("link", name=BRIDGE)
    _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def make_shared_mount(ledger: Ledger, folder: Path) -> None:
    """A bind of ``folder`` on itself, shared, so mounts made there from the kubelet's
    private mount namespace reach the host (and so containerd and runc)."""
    folder.mkdir(parents=True, exist_ok=True)
    ledger.add("mount", path=str(folder))
    _run("mount", "--bind", str(folder), str(folder))
    _run("mount", "--make-rshared", str(folder))


# --- undo --------------------------------------------------------------------


def kill_in_cgroups(ledger: Ledger) -> None:
    """SIGKILL whatever still runs in the cgroups we made (pods' processes only)."""
    for entry in ledger.of("cgroup"):
        root = Path(entry["path"])
        if not root.exists():
            continue
        for procs in root.rglob("cgroup.procs"):
            try:
                pids = [int(p) for p in procs.read_text().split()]
            except OSError:
                continue
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _rmdir_tree(root: Path) -> None:
    for _ in range(50):
        if not root.exists():
            return
        folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        try:
            for folder in [*folders, root]:
                folder.rmdir()
            return
        except OSError:
            time.sleep(0.2)
    raise HostError(f"could not remove the cgroup {root} (something still runs in it)")


def undo(ledger: Ledger, log: Log = print, extra_mount_roots: tuple[Path, ...] = ()) -> list[str]:
    """Undo every recorded change, newest first; return what could not be undone."""
    errors: list[str] = []
    kill_in_cgroups(ledger)
    # Mounts the runtime and the kubelet left below our folders, then our own binds.
    roots = (ledger.path.parent / "node",) + tuple(Path(e["path"]) for e in ledger.of("mount")) + extra_mount_roots
    roots += tuple(Path(e["path"]) for e in ledger.of("dir"))
    for point in mounts_under(*roots):
        proc = subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)
        if proc.returncode != 0 and point in mounts_under(point):
            errors.append(f"umount {point}: {proc.stderr.strip()}")
    for entry in reversed(ledger.entries):
        try:
            if entry["kind"] == "netns":
                folder = Path("/var/run/netns")
                for path in folder.glob("cni-*") if folder.is_dir() else []:
                    if path.name not in entry["before"]:
                        subprocess.run(["umount", "-l", str(path)], capture_output=True)
                        path.unlink(missing_ok=True)
            elif entry["kind"] == "loglinks":
                folder = Path(entry["folder"])
                for link in folder.iterdir() if folder.is_dir() else []:
                    if link.is_symlink() and os.readlink(link).startswith(entry["target"]):
                        link.unlink()
            elif entry["kind"] == "cgroup":
                _rmdir_tree(Path(entry["path"]))
            elif entry["kind"] == "link":
                if subprocess.run(["ip", "link", "show", entry["name"]], capture_output=True).returncode == 0:
                    _run("ip", "link", "del", entry["name"])
            elif entry["kind"] == "dir":
                shutil.rmtree(entry["path"], ignore_errors=True)
        except (HostError, OSError) as exc:
            errors.append(str(exc))
    if not errors:
        ledger.path.unlink(missing_ok=True)
    return errors
