"""The ``gctuner`` command: one subcommand per job, each a small function.

``gctuner sidecar`` serves the endpoint for an app container that follows the
shared state directory; ``gctuner install-follower DIR`` prepares that app
container (see :mod:`gctuner.cli.install`); ``gctuner status`` shows what the
policies did to every opted-in pod (see :mod:`gctuner.status.collect`).
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from gctuner.api.endpoint import TuneEndpoint
from gctuner.api.routes import Routes
from gctuner.cli.install import install_follower
from gctuner.cli.server import SidecarServer
from gctuner.core.config import NAMES, Config
from gctuner.pod.publisher import Publisher
from gctuner.pod.statedir import StateDir
from gctuner.status import collect
from gctuner.status.kubectl import KubectlError

DEFAULT_PORT = 9471


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Runtime garbage-collector tuning for every process of a pod.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sidecar = commands.add_parser(
        "sidecar",
        help="serve /tune_gc for an app container that follows a shared state directory",
        description="Configuration: the options below, then the environment "
        f"({', '.join(NAMES.values())}).",
    )
    sidecar.add_argument("--host", default="0.0.0.0", help="address to bind (default: all)")
    sidecar.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    sidecar.add_argument(
        "--state-dir",
        help=f"the directory shared with the app container (default: ${NAMES['state_dir']})",
    )
    sidecar.set_defaults(run=_sidecar)

    install = commands.add_parser(
        "install-follower",
        help="copy the agent and a sitecustomize.py that follows the state into DIR",
    )
    install.add_argument("directory", metavar="DIR")
    install.set_defaults(run=_install)

    collect.add_parser(commands)

    args = parser.parse_args(kubectl_flags_last(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.run(args))
    except (OSError, ValueError, KubectlError) as error:
        parser.exit(2, f"gctuner {args.command}: {error}\n")


def _sidecar(args: argparse.Namespace) -> int:
    config = Config.from_env()
    if args.state_dir:
        config = dataclasses.replace(config, state_dir=args.state_dir)
    if config.state_dir is None:
        raise ValueError(
            f"name the directory shared with the app container: --state-dir or {NAMES['state_dir']}"
        )
    publisher = Publisher(StateDir(config.state_dir))
    publisher.state_dir.ensure()
    server = SidecarServer((args.host, args.port), Routes(TuneEndpoint(config, shared=publisher)))
    signal.signal(signal.SIGTERM, lambda *_: server.stop_soon())
    print(f"gctuner sidecar: serving {server.url} for {config.state_dir}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


KUBECTL_FLAGS = ("-n", "--namespace", "--context", "--kubeconfig")
"""kubectl's global flags that ``status`` takes: kubectl accepts them before the
subcommand too (``kubectl gctuner -n shop status``)."""


def kubectl_flags_last(argv: Sequence[str]) -> list[str]:
    """``KUBECTL_FLAGS`` given before the subcommand, moved after it."""
    moved: list[str] = []
    rest = list(argv)
    while rest:
        flag, _, _ = rest[0].partition("=")
        if rest[0] in KUBECTL_FLAGS and len(rest) > 1:
            moved += rest[:2]
            del rest[:2]
        elif flag in KUBECTL_FLAGS or (rest[0].startswith("-n") and len(rest[0]) > 2 and not rest[0].startswith("--")):
            moved.append(rest.pop(0))
        else:
            break
    return rest[:1] + moved + rest[1:] if moved and rest else list(argv)


def _prog() -> str:
    """``kubectl gctuner`` when kubectl runs us as its plugin ``kubectl-gctuner``."""
    return "kubectl gctuner" if Path(sys.argv[0]).name.startswith("kubectl-gctuner") else "gctuner"


def _install(args: argparse.Namespace) -> int:
    target = install_follower(args.directory)
    print(f"gctuner: installed the follower in {target}; run the app with PYTHONPATH={target}")
    return 0
