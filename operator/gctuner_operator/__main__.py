"""``gctuner-operator``: run the operator (kopf) against the current kubeconfig."""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket

import kopf

from .handlers import NAMESPACES, OVERRIDES, PEERING  # importing the module registers the handlers


def main() -> None:
    parser = argparse.ArgumentParser(prog="gctuner-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--liveness", metavar="URL", default=None,
                        help="serve a liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics", metavar="HOST:PORT", default=None,
                        help="serve Prometheus metrics, e.g. 0.0.0.0:9090 (or GCTUNER_METRICS_ADDRESS)")
    parser.add_argument("--peering", metavar="NAME", default=None,
                        help="coordinate with other replicas through this ClusterKopfPeering (default: standalone)")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority: the highest acts (default: random, so that replicas never tie)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    kopf.configure(verbose=args.verbose)
    # Equal priorities make kopf pause every replica; a random one breaks the tie.
    priority = args.priority if args.priority is not None else random.randint(1, 1_000_000)
    # Ours, so that our pod watch can tell from the peering object whether kopf pauses this replica.
    # The uid, not getpass.getuser(): an image's USER 10001 has no passwd entry, and getuser() raises there.
    identity = os.environ.get("POD_ID") or f"{os.getuid()}@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"
    peering = {"name": args.peering, "identity": identity, "priority": priority} if args.peering else None
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=priority,
        # kopf's Identity is a NewType of str, not exported.
        identity=identity,  # type: ignore[arg-type]
        # Read with the rest of the config in the startup handler; the flag wins over the environment.
        memo=kopf.Memo({OVERRIDES: {"metrics_address": args.metrics}, PEERING: peering, NAMESPACES: args.namespace}),
    )


if __name__ == "__main__":
    main()
