"""The container's memory use and limit, from its cgroup (v1 or v2).

Re-read at every decision: Kubernetes resizes a container's limit in place.
The use is the working set (``memory.current`` less ``inactive_file``, as
the kubelet counts it for eviction), since clean page cache is given back
before the OOM killer acts and is not the heap's doing. The limit is the
lowest one on the path from the process's cgroup up to the root of the
mount, since a parent's limit binds its children too.

Outside any limited cgroup (a process on a laptop, a benchmark) the use can
still come from the processes' own RSS, which their records carry; the
budget must then be given in bytes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

UNLIMITED = 2**60
"""cgroup v1 spells "no limit" as a huge number (9223372036854771712)."""

MAX_READ = 64 * 1024
"""Bytes read from one cgroup file at most (``memory.stat`` is ~1-2 KiB)."""


@dataclasses.dataclass(frozen=True)
class MemoryReading:
    """What the container uses and may use, and where that was read."""

    used: int | None
    limit: int | None
    source: str

    def to_json(self) -> dict[str, object]:
        return {"usedBytes": self.used, "limitBytes": self.limit, "source": self.source}


class CgroupMemory:
    """Reads this process's cgroup; ``proc`` and ``root`` are seams for tests."""

    def __init__(self, proc: Path = Path("/proc/self"), root: Path = Path("/sys/fs/cgroup")) -> None:
        self._proc = proc
        self._root = root

    def read(self) -> MemoryReading:
        """The reading; ``used`` and ``limit`` are None where nothing could be read."""
        try:
            lines = _read(self._proc / "cgroup").splitlines()
        except OSError:
            return MemoryReading(None, None, "no cgroup")
        for line in lines:
            _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
            unified = controllers == ""
            if unified and any((folder / "memory.max").exists() for folder in (self._root / path.lstrip("/"), self._root)):
                return self._v2(path)
            if "memory" in controllers.split(","):
                return self._v1(path)
        return MemoryReading(None, None, "no memory cgroup")

    def _v2(self, path: str) -> MemoryReading:
        here = _existing(self._root, path, "memory.current")
        used = _working_set(here / "memory.current", here / "memory.stat", "inactive_file")
        limit = _lowest_limit(self._root, here, "memory.max")
        return MemoryReading(used, limit, f"cgroup v2 {here}")

    def _v1(self, path: str) -> MemoryReading:
        base = self._root / "memory"
        here = _existing(base, path, "memory.usage_in_bytes")
        used = _working_set(here / "memory.usage_in_bytes", here / "memory.stat", "total_inactive_file")
        limit = _lowest_limit(base, here, "memory.limit_in_bytes")
        return MemoryReading(used, limit, f"cgroup v1 {here}")


def _existing(base: Path, path: str, name: str) -> Path:
    """The process's own cgroup folder; in a cgroup namespace the path in
    ``/proc/self/cgroup`` may name the host's hierarchy: then the mount's root is ours."""
    here = base / path.lstrip("/")
    return here if (here / name).exists() else base


def _working_set(usage_file: Path, stat_file: Path, inactive_key: str) -> int | None:
    usage = _int(usage_file)
    if usage is None:
        return None
    try:
        for line in _read(stat_file).splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key and value.strip().isdigit():
                return max(0, usage - int(value))
    except OSError:
        pass
    return usage


def _lowest_limit(base: Path, here: Path, name: str) -> int | None:
    limits = []
    folder = here
    while True:
        value = _int(folder / name)
        if value is not None and value < UNLIMITED:
            limits.append(value)
        if folder == base or base not in folder.parents:
            break
        folder = folder.parent
    return min(limits, default=None)


def _int(path: Path) -> int | None:
    try:
        text = _read(path).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2's no limit) is None


def _read(path: Path) -> str:
    with open(path, "rb") as file:
        return file.read(MAX_READ).decode("ascii", "replace")


def process_rss(statm: Path = Path("/proc/self/statm"), page_size: int = 4096) -> int | None:
    """This process's resident set in bytes (one small read), or None off Linux."""
    try:
        fields = _read(statm).split()
        return int(fields[1]) * page_size
    except (OSError, IndexError, ValueError):
        return None
