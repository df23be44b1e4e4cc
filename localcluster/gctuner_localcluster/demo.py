"""``make demo``: a GCPolicy reaching every gunicorn worker of the examples'
Deployments, on the real node (pods are containers from our own images).

Starts the real-node cluster, installs the operator as users do (``kubectl
apply -k deploy/examples/localcluster``: its Deployment, from its image),
deploys the examples' Deployments as they are written for any cluster, shows
every process's live thresholds before and after the example GCPolicy, with
``kubectl get gcpolicies`` and ``gctuner status``, then waits for Ctrl-C and
tears everything down.  The live thresholds are read from each pod's own
``/tune_gc`` at its address on the cluster's bridge, as the operator reads
them, so what is shown is what the processes run, not what was asked.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import NoReturn

from .cluster import REPO_ROOT
from .realnode.cluster import RealNodeCluster, cleanup

EXAMPLES = REPO_ROOT / "deploy" / "examples"
OVERLAY = EXAMPLES / "localcluster"
WORKDIR = REPO_ROOT / ".gctuner" / "demo"
TOKEN = "demo-token-change-me"  # deploy/examples/flask/secret.yaml
ROLLOUT_TIMEOUT = "300s"  # a first start unpacks the images


@dataclasses.dataclass(frozen=True)
class App:
    """One example as the demo runs it: ``deploy/examples/<folder>/`` holds its
    ``deployment.yaml`` and ``policy.yaml``; the Deployment, its ``app`` label
    and the GCPolicy are all called ``name``."""

    name: str
    folder: str
    replicas: int = 2
    port: int = 5000  # where its pods answer /tune_gc

    @property
    def deployment(self) -> Path:
        return EXAMPLES / self.folder / "deployment.yaml"

    @property
    def policy(self) -> Path:
        return EXAMPLES / self.folder / "policy.yaml"


# The Flask app with the agent inside, and an app with no gctuner in it tuned by the sidecar container.
APPS = (App("web", "flask"), App("plain", "sidecar"))


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def progress(message: str) -> None:
    print(f"    {message.strip()}", flush=True)


def kubectl_shown(cluster: RealNodeCluster, *args: str) -> None:
    """Run kubectl and print what it said, indented, as the user would see it."""
    out = cluster.kubectl(*args).stdout
    print("\n".join(f"    {line}" for line in out.rstrip().splitlines()), flush=True)


def live_state(ip: str, port: int = 5000, token: str = TOKEN) -> dict:
    """What every process of the pod runs right now (the pod's GET /tune_gc, with the token)."""
    request = urllib.request.Request(f"http://{ip}:{port}/tune_gc", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:  # a pod address on the cluster's own bridge
        return json.load(response)


def show_pods(cluster: RealNodeCluster) -> None:
    """Every pod of every example: its containers (restarts) and each process's live thresholds."""
    for app in APPS:
        pods = json.loads(cluster.kubectl("get", "pods", "-l", f"app={app.name}", "-o", "json").stdout)["items"]
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            ip = pod["status"]["podIP"]
            containers = ", ".join(
                f"{c['name']} (restarts {c['restartCount']})" for c in pod["status"].get("containerStatuses", [])
            )
            print(f"    pod {pod['metadata']['name']}  {ip}  containers: {containers}")
            state = live_state(ip, app.port)
            for process in state["processes"]:
                frozen = ", frozen" if process.get("frozen") else ""
                print(f"      pid {process['pid']:>4}: thresholds {tuple(process['thresholds'])}{frozen}")
    print(flush=True)


def wait_applied(cluster: RealNodeCluster, policy: str, want: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(cluster.kubectl("get", "gcpolicy", policy, "-o", "json").stdout).get("status", {})
        if status.get("appliedPods") == want:
            return
        time.sleep(0.5)
    raise RuntimeError(f"the policy {policy} did not reach {want} pods in {timeout:.0f}s; "
                       f"see kubectl -n gctuner-system logs deployment/gctuner-operator")


def gctuner_status(cluster: RealNodeCluster) -> None:
    """``gctuner status`` as a user runs it: the virtualenv's command, the cluster's kubeconfig."""
    gctuner = Path(sys.executable).parent / "gctuner"
    done = subprocess.run([str(gctuner), "status"], env=cluster.env(), capture_output=True, text=True, timeout=60)
    print("\n".join(f"    {line}" for line in (done.stdout + done.stderr).rstrip().splitlines()), flush=True)


def demo(cluster: RealNodeCluster) -> None:
    step("installing the operator as users do: kubectl apply -k deploy/examples/localcluster")
    kubectl_shown(cluster, "apply", "-k", str(OVERLAY))
    kubectl_shown(cluster, "-n", "gctuner-system", "rollout", "status", "deployment/gctuner-operator",
                  f"--timeout={ROLLOUT_TIMEOUT}")
    step("deploying the examples' Deployments, and the token Secret they mount")
    kubectl_shown(cluster, "apply", "-f", str(EXAMPLES / "flask" / "secret.yaml"),
                  *[arg for app in APPS for arg in ("-f", str(app.deployment))])
    for app in APPS:
        kubectl_shown(cluster, "rollout", "status", f"deployment/{app.name}", f"--timeout={ROLLOUT_TIMEOUT}")
    kubectl_shown(cluster, "get", "pods", "-o", "wide")
    step("before any policy: every process runs Python's defaults")
    show_pods(cluster)
    step("applying the examples' policies: " + ", ".join(str(app.policy.relative_to(REPO_ROOT)) for app in APPS))
    started = time.monotonic()
    kubectl_shown(cluster, "apply", *[arg for app in APPS for arg in ("-f", str(app.policy))])
    for app in APPS:
        wait_applied(cluster, app.name, want=app.replicas)
    step(f"applied to every process of every pod in {time.monotonic() - started:.1f}s")
    kubectl_shown(cluster, "get", "gcpolicies")
    step("gctuner status")
    gctuner_status(cluster)
    step("live thresholds, read from each pod's /tune_gc")
    show_pods(cluster)


def _interrupted(*_: object) -> NoReturn:
    """Ctrl-C or SIGTERM: stop, and let the teardown finish (a second Ctrl-C must not cut it short)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run() -> int:
    signal.signal(signal.SIGINT, _interrupted)
    signal.signal(signal.SIGTERM, _interrupted)
    started = time.monotonic()
    try:
        errors = cleanup(WORKDIR, progress) if WORKDIR.exists() else []
        if errors:
            print(f"error: a previous demo left host changes that could not be undone: {'; '.join(errors)}")
            return 1
        shutil.rmtree(WORKDIR, ignore_errors=True)  # a fresh cluster: no pods or policies of an earlier run
        WORKDIR.mkdir(parents=True)
        step("starting the real-node cluster (etcd, kube-apiserver, controller-manager, scheduler, containerd, kubelet)")
        with RealNodeCluster(workdir=WORKDIR, log=progress) as cluster:
            step(f"cluster up in {time.monotonic() - started:.0f}s")
            try:
                demo(cluster)
                step(f"all of it in {time.monotonic() - started:.0f}s")
                print(TRY_THIS.format(kubeconfig=cluster.kubeconfig, bin=cluster.assets.folder,
                                      venv=Path(sys.executable).parent, logs=WORKDIR / "logs"), flush=True)
                while True:
                    time.sleep(3600)
            finally:
                step("stopping: deleting every pod, then the node and the control plane")
    except KeyboardInterrupt:
        step("stopped; nothing left running")
        return 0
    except Exception as exc:  # noqa: BLE001  (one line that says what failed and where its log is)
        print(f"error: {exc}", file=sys.stderr)
        return 1


TRY_THIS = """\
The demo keeps running. In another terminal, try:

  export KUBECONFIG={kubeconfig} PATH={bin}:{venv}:$PATH
  kubectl get gcpol web -w                                   # watch the rollout
  kubectl patch gcpol web --type=merge -p '{{"spec":{{"thresholds":[100000,50,200]}}}}'
  kubectl describe gcpol web                                 # conditions and events
  gctuner status                                             # every pod, every process
  kubectl scale deployment web --replicas=3                  # a new pod is tuned too
  kubectl -n gctuner-system logs deployment/gctuner-operator

Logs: {logs}    Press Ctrl-C here to stop everything.
"""


if __name__ == "__main__":
    sys.exit(run())
