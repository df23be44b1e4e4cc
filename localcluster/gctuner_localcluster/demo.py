"""``make demo``: a GCPolicy reaching real gunicorn processes running as pods.

Starts the local cluster and the operator, deploys the example Flask service
(``deploy/examples/flask``: two opted-in pods and one that is not), applies
the example GCPolicy, shows ``kubectl get gcpolicies`` and every pod's live
thresholds read from its own endpoint, then waits for Ctrl-C.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
import urllib.request

from .cluster import REPO_ROOT, LocalCluster
from .operatorproc import OperatorProcess

EXAMPLE = REPO_ROOT / "deploy" / "examples" / "flask"
CRD = REPO_ROOT / "crds" / "gcpolicies.gctuner.dev.yaml"
WORKDIR = REPO_ROOT / ".gctuner" / "demo"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def live_thresholds(ip: str) -> str:
    """What every process of the pod reports right now (GET /tune_gc)."""
    with urllib.request.urlopen(f"http://{ip}:5000/tune_gc", timeout=5) as response:
        state = json.load(response)
    procs = ", ".join(f"pid {p['pid']}: {tuple(p['thresholds'])}" for p in state["processes"])
    return f"{len(state['processes'])} processes | {procs}"


def wait_applied(cluster: LocalCluster, want: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = json.loads(cluster.kubectl("get", "gcpolicy", "web", "-o", "json").stdout).get("status", {})
        if status.get("appliedPods") == want:
            return
        time.sleep(0.3)
    raise RuntimeError(f"the policy did not reach {want} pods in {timeout:.0f}s; see {WORKDIR / 'logs'}")


def show(cluster: LocalCluster) -> None:
    print(cluster.kubectl("get", "gcpolicies").stdout)
    pods = json.loads(cluster.kubectl("get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
    print("Live thresholds, read from each pod's /tune_gc:")
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        opted = pod["metadata"].get("labels", {}).get("gctuner.dev/enabled") == "true"
        label = "opted in " if opted else "not opted"
        print(f"  {pod['metadata']['name']:6} {label} {pod['status']['podIP']:>11}  {live_thresholds(pod['status']['podIP'])}")
    print()


def run() -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    step("starting the local cluster (etcd, kube-apiserver, local kubelet)")
    WORKDIR.mkdir(parents=True, exist_ok=True)
    with LocalCluster(workdir=WORKDIR) as cluster:
        step("installing the GCPolicy CRD and starting the operator")
        cluster.kubectl("apply", "-f", str(CRD))
        cluster.kubectl("wait", "--for=condition=Established", "crd/gcpolicies.gctuner.dev", "--timeout=30s")
        operator = OperatorProcess(cluster, WORKDIR / "logs" / "operator.log").start()
        try:
            step("deploying the example Flask app: 3 pods of gunicorn with 2 workers each")
            for name in ("secret.yaml", "pods.yaml"):
                cluster.kubectl("apply", "-f", str(EXAMPLE / name))
            cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=web", "--timeout=90s")
            step("before any policy: every pod runs Python's defaults")
            show(cluster)
            step("applying deploy/examples/flask/policy.yaml (thresholds [50000, 20, 100])")
            started = time.monotonic()
            cluster.kubectl("apply", "-f", str(EXAMPLE / "policy.yaml"))
            wait_applied(cluster, want=2)
            step(f"applied to both opted-in pods in {time.monotonic() - started:.1f}s")
            show(cluster)
            print(TRY_THIS.format(kubeconfig=cluster.kubeconfig, bin=cluster.assets.folder, logs=WORKDIR / "logs"), flush=True)
            stop.wait()
            step("stopping the operator and the cluster")
        finally:
            operator.stop()
    return 0


TRY_THIS = """\
The demo keeps running. In another terminal, try:

  export KUBECONFIG={kubeconfig} PATH={bin}:$PATH
  kubectl get gcpol web -w                                   # watch the rollout
  kubectl patch gcpol web --type=merge -p '{{"spec":{{"thresholds":[100000,50,200]}}}}'
  kubectl describe gcpol web                                 # conditions and events
  kubectl get pod web-1 -o jsonpath='{{.metadata.annotations.gctuner\\.dev/applied}}'
  kubectl label pod web-3 gctuner.dev/enabled=true           # opt the third pod in
  kubectl apply -f deploy/examples/flask/policy.yaml         # (any manifest of yours too)

Logs: {logs}    Press Ctrl-C here to stop everything.
"""


if __name__ == "__main__":
    sys.exit(run())
