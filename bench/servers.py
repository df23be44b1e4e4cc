"""A WSGI app under a real gunicorn on 127.0.0.1, for benchmarks and tests.

gunicorn binds port 0 and logs the port it got, so two servers (or a test run
beside a benchmark) never race for a port. The process management (own
process group, early-exit detection with the log's tail, SIGTERM then SIGKILL
within a bound) is the local cluster's :class:`ManagedProcess`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from gctuner_localcluster.process import ManagedProcess

GUNICORN = Path(sys.executable).with_name("gunicorn")
STOP_SECONDS = 15.0
"""SIGKILL after this long: gunicorn's own ``--graceful-timeout`` is 5 s."""


@dataclasses.dataclass(frozen=True)
class Server:
    """A running server: its base URL and its master's pid."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU used so far by the master and its live workers:
        a cost per request that other load on the machine hardly changes."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return sum(cpu_seconds(int(pid)) for pid in [self.pid, *children])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far; 0 for a process that is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:  # a worker that just exited
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@contextlib.contextmanager
def gunicorn(
    app: str,
    *,
    chdir: Path,
    workers: int,
    env: Mapping[str, str],
    log: Path,
    options: Sequence[str] = (),
    timeout: float = 60.0,
    executable: Path = GUNICORN,
    cgroup: Path | None = None,
) -> Iterator[Server]:
    """Serve ``app`` (``module:variable`` in ``chdir``) with ``workers`` sync
    workers; yield it once it listens and every worker has booted.

    ``executable``: another interpreter's gunicorn. ``cgroup``: a cgroup v1
    folder the master enters (through a shell that writes its own pid to
    ``cgroup.procs`` and then execs gunicorn) before it forks any worker."""
    command = [str(executable), "--workers", str(workers), "--bind", "127.0.0.1:0", "--chdir", str(chdir),
               "--graceful-timeout", "5", *options, app]  # fmt: skip
    if cgroup is not None:
        command = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup / "cgroup.procs"), *command]
    server = ManagedProcess("gunicorn", command, log, env=env)
    url: list[str] = []

    def ready() -> bool:
        text = log.read_text(errors="replace")
        found = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
        if found and text.count("Booting worker with pid") >= workers:
            url.append(found.group(1))
        return bool(url)

    server.start()
    try:
        server.wait_until(ready, timeout, f"listening with {workers} workers")
        assert server.pid is not None  # started above
        yield Server(url[0], server.pid)
    finally:
        server.stop(grace=STOP_SECONDS)
