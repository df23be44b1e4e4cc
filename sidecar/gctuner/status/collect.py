"""``gctuner status``: what ``kubectl get gcpolicies`` cannot show.

Lists the GCPolicies and the opted-in pods with the user's ``kubectl``, reads
every ready pod's ``GET /tune_gc`` (through the API server's pod proxy, so
it works from a laptop: the user needs ``get`` on ``pods/proxy``; or at the
pod's IP with ``--via direct``, from inside the cluster network), a few at a
time, each with a timeout, and prints the joined report
(:mod:`gctuner.status.report`) as tables or JSON. A pod that does not
answer shows why; it never holds up the others.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import ipaddress
import json
import socket
import urllib.error
import urllib.request
from typing import Any, Callable

from gctuner.policy import ENABLED_LABEL, Body, Key, PodView, PolicyView, winner
from gctuner.status.kubectl import Kubectl, KubectlError
from gctuner.status.output import FORMATS, format_report
from gctuner.status.report import LiveRead, Report, Target, build, targets

Reader = Callable[[Target], LiveRead]


def add_parser(commands: Any) -> None:
    """Register ``gctuner status`` on the CLI's subcommands."""
    status = commands.add_parser(
        "status",
        help="per policy and per pod: the settings asked for, what the processes run, GC pauses, failures",
        description="Per GCPolicy and per opted-in pod, what kubectl get cannot show: which policy "
        "governs each pod, the thresholds it asks for, what every process of the pod runs now and how many "
        "applied it, their GC pauses since start, and why a pod failed. Pods are read through the API "
        "server's pod proxy (RBAC: get on pods/proxy), or with --via direct at their own IP.",
    )
    status.add_argument("policy", nargs="?", help="only this GCPolicy and the pods it governs")
    scope = status.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="the namespace (default: the context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    status.add_argument("-l", "--selector", help="only the opted-in pods that also match this label selector")
    status.add_argument("-o", "--output", choices=FORMATS, default="table",
                        help="table (default), wide (the pods' IP, Python and flavour too), json or yaml, as kubectl")
    status.add_argument("--via", choices=["auto", "proxy", "direct"], default="auto",
                        help="how pods are read: through the API server's pod proxy, or at their IP (from inside "
                        "the cluster network); auto: the proxy, but loopback pod IPs (a local cluster) directly")
    status.add_argument("--kubeconfig", help="passed to kubectl")
    status.add_argument("--context", help="passed to kubectl")
    status.add_argument("--kubectl", default="kubectl", metavar="PATH", help="the kubectl to run (default: from PATH)")
    status.add_argument("--timeout", type=float, default=5.0, help="seconds per call (default: 5)")
    status.add_argument("--parallel", type=int, default=8, help="pods read at the same time (default: 8)")
    status.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """List, read, join, print. Every policy of the namespace is listed even for
    one policy's report: which one governs a pod depends on all of them."""
    kubectl = Kubectl(args.kubectl, args.kubeconfig, args.context, args.timeout)
    scope = ["--all-namespaces"] if args.all_namespaces else ["--namespace", args.namespace] if args.namespace else []
    try:
        policies = kubectl.get_json("gcpolicies.gctuner.dev", *scope)["items"]
    except KubectlError as error:
        if "doesn't have a resource type" in str(error):
            raise KubectlError(f"{error}: is gctuner installed? (kubectl apply -k deploy/)") from None
        raise
    selector = ",".join(s for s in (f"{ENABLED_LABEL}=true", args.selector) if s)
    pods = kubectl.get_json("pods", "--selector", selector, *scope)["items"]
    if args.policy:
        if not any(p["metadata"]["name"] == args.policy for p in policies):
            raise ValueError(f'GCPolicy "{args.policy}" not found')
        pods = [pod for pod in pods if _governed_by(policies, pod, args.policy)]
    reader = choose_reader(args.via, kubectl, args.timeout)
    report = build(policies, pods, read_all(targets(policies, pods), reader, args.parallel))
    if args.policy:
        report = Report([p for p in report.policies if p.name == args.policy], report.pods)
    print(format_report(report, args.output, args.all_namespaces))
    return 0


def read_all(found: list[Target], reader: Reader, parallel: int) -> dict[Key, LiveRead]:
    """Every target's live state, ``parallel`` at a time."""
    if not found:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(parallel, len(found)))) as pool:
        return {(t.namespace, t.name): read for t, read in zip(found, pool.map(reader, found))}


def choose_reader(via: str, kubectl: Kubectl, timeout: float) -> Reader:
    """``auto`` reads a pod with a loopback IP directly: API servers refuse to
    proxy to loopback addresses, and such a pod runs on this very machine (as
    on gctuner's local cluster); every other pod through the proxy."""
    proxy, direct = proxy_reader(kubectl), direct_reader(timeout)
    if via != "auto":
        return proxy if via == "proxy" else direct
    return lambda target: direct(target) if ipaddress.ip_address(target.ip).is_loopback else proxy(target)


def proxy_reader(kubectl: Kubectl) -> Reader:
    """GET through the API server's pod proxy, as the user."""

    def read(target: Target) -> LiveRead:
        path = f"/api/v1/namespaces/{target.namespace}/pods/{target.name}:{target.port}/proxy{target.path}"
        try:
            return _parsed(kubectl.raw(path))
        except KubectlError as error:
            return LiveRead(error=str(error))

    return read


def direct_reader(timeout: float) -> Reader:
    """GET at the pod's own IP, as the operator does."""

    def read(target: Target) -> LiveRead:
        host = f"[{target.ip}]" if ":" in target.ip else target.ip
        url = f"http://{host}:{target.port}{target.path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return _parsed(response.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as error:
            return LiveRead(error=f"{url} answered {error.code} {error.reason}")
        except urllib.error.URLError as error:
            return LiveRead(error=f"{url}: {error.reason}")
        except socket.timeout:  # TimeoutError from 3.10 on; the agent runs on 3.9 too
            return LiveRead(error=f"{url}: no answer within {timeout:g}s")
        except OSError as error:  # reset, refused after connecting, ...
            return LiveRead(error=f"{url}: {error}")

    return read


def _parsed(body: str) -> LiveRead:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "processes" not in answer:
        return LiveRead(error=f"not a gctuner answer: {body[:80]!r}")
    return LiveRead(answer)


def _governed_by(policies: list[Body], pod: Body, name: str) -> bool:
    """The pod follows the policy ``name`` (the others of its namespace compete, as in the operator)."""
    policy = winner(map(PolicyView.from_body, policies), PodView.from_body(pod))
    return policy is not None and policy.name == name
