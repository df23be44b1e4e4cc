"""A real Prometheus scraping the local cluster, and the Prometheus Operator's CRDs.

The server and ``promtool`` are Debian's package (``make prometheus``). Its
build has no Kubernetes service discovery (Debian leaves it out), so
:class:`PodDiscovery` stands in for ``kubernetes_sd_configs`` with role
``pod``: it lists the pods from the API server with the scrape job's own
namespaces and label selectors, with Prometheus's own ServiceAccount token
(so ``deploy/monitoring/prometheus/rbac.yaml`` is proven to suffice), and
writes file-based service discovery targets carrying the very
``__meta_kubernetes_pod_*`` labels Kubernetes discovery gives. The jobs'
``relabel_configs`` then run unchanged: the scrape config users get is the
one tested. The token is used for listing pods only; no scrape carries it.

:func:`operator_crds` fetches the Prometheus Operator's CRDs (PodMonitor,
ServiceMonitor, PrometheusRule) from its Go module through the Go module
proxy, cached like the Kubernetes binaries.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import binaries
from .controlplane import free_port
from .process import ManagedProcess, http_ok

PROMETHEUS_OPERATOR_MODULE = "github.com/prometheus-operator/prometheus-operator"
PROMETHEUS_OPERATOR_VERSION = "v0.85.0"
OPERATOR_CRDS = ("podmonitors", "servicemonitors", "prometheusrules")


class PrometheusError(RuntimeError):
    """Prometheus or promtool is missing, or its API answered an error."""


def binary(name: str) -> str:
    """``prometheus`` or ``promtool`` from PATH; an error that says how to install it."""
    found = shutil.which(name)
    if found is None:
        raise PrometheusError(f"{name} not found: run `make prometheus` (Debian's package, as root)")
    return found


# --- stand-in for kubernetes_sd_configs (role: pod) ---------------------------

_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def meta_name(name: str) -> str:
    """A Kubernetes label or annotation name as Prometheus's discovery spells it."""
    return _UNSAFE.sub("_", name)


def pod_targets(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The target groups Kubernetes discovery (role ``pod``) makes of one pod:
    one target per declared container port, one per container without ports."""
    meta, status, spec = pod["metadata"], pod.get("status", {}), pod.get("spec", {})
    ip = status.get("podIP")
    if not ip:
        return []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))
    common = {
        "__meta_kubernetes_namespace": meta["namespace"],
        "__meta_kubernetes_pod_name": meta["name"],
        "__meta_kubernetes_pod_ip": ip,
        "__meta_kubernetes_pod_uid": meta.get("uid", ""),
        "__meta_kubernetes_pod_node_name": spec.get("nodeName", ""),
        "__meta_kubernetes_pod_host_ip": status.get("hostIP", ""),
        "__meta_kubernetes_pod_phase": status.get("phase", ""),
        "__meta_kubernetes_pod_ready": str(ready).lower(),
    }
    for kind, values in (("label", meta.get("labels") or {}), ("annotation", meta.get("annotations") or {})):
        for key, value in values.items():
            common[f"__meta_kubernetes_pod_{kind}_{meta_name(key)}"] = value
            common[f"__meta_kubernetes_pod_{kind}present_{meta_name(key)}"] = "true"
    host = f"[{ip}]" if ":" in ip else ip
    groups = []
    for container in spec.get("containers", []):
        labels = {**common, "__meta_kubernetes_pod_container_name": container["name"],
                  "__meta_kubernetes_pod_container_image": container.get("image", ""),
                  "__meta_kubernetes_pod_container_init": "false"}
        if not container.get("ports"):
            groups.append({"targets": [host], "labels": labels})
        for port in container.get("ports", []):
            groups.append({"targets": [f"{host}:{port['containerPort']}"], "labels": {
                **labels,
                "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
            }})
    return groups


def stand_in_target(address: str, namespace: str, pod: str, port_name: str) -> dict[str, Any]:
    """A local process (the operator) as the pod it would be in a cluster."""
    return {"targets": [address], "labels": {
        "__meta_kubernetes_namespace": namespace, "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_pod_ready": "true",
        "__meta_kubernetes_pod_container_port_name": port_name,
        "__meta_kubernetes_pod_container_port_number": address.rpartition(":")[2],
    }}


class PodDiscovery:
    """Writes each job's file-SD targets from the API server's pod list, every ``interval`` seconds."""

    def __init__(self, api_url: str, ca_file: Path, token_file: Path, folder: Path, interval: float = 1.0) -> None:
        self.api_url, self.token_file, self.folder, self.interval = api_url, token_file, folder, interval
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self.jobs: dict[str, list[dict[str, Any]]] = {}  # job -> its kubernetes_sd_configs
        self.stand_ins: dict[str, list[dict[str, Any]]] = {}  # job -> target groups of local processes
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-discovery", daemon=True)
        folder.mkdir(parents=True, exist_ok=True)

    def file_for(self, job: str) -> Path:
        return self.folder / f"{meta_name(job)}.json"

    def refresh(self) -> None:
        for job in {*self.jobs, *self.stand_ins}:
            groups = list(self.stand_ins.get(job, []))
            for sd in self.jobs.get(job, []):
                for pod in self._pods(sd):
                    groups.extend(pod_targets(pod))
            _write_atomically(self.file_for(job), json.dumps(groups, indent=1, sort_keys=True))

    def _pods(self, sd: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        if sd.get("role") != "pod":
            raise PrometheusError(f"only role: pod is stood in for, not {sd.get('role')!r}")
        query = {}
        for selector in sd.get("selectors", []):
            if selector.get("role") == "pod":
                query.update({k: selector[k] for k in ("label", "field") if k in selector})
        params = urllib.parse.urlencode({f"{k}Selector": v for k, v in query.items()})
        names = (sd.get("namespaces") or {}).get("names") or [None]
        for namespace in names:
            path = f"/api/v1/namespaces/{urllib.parse.quote(namespace)}/pods" if namespace else "/api/v1/pods"
            request = urllib.request.Request(f"{self.api_url}{path}?{params}")
            request.add_header("Authorization", f"Bearer {self.token_file.read_text().strip()}")
            with urllib.request.urlopen(request, timeout=5, context=self._context) as response:
                yield from json.load(response)["items"]

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except (OSError, ValueError, KeyError) as error:  # the API server restarting: next round
                self.errors.append(f"{type(error).__name__}: {error}")

    def start(self) -> PodDiscovery:
        self.refresh()  # the first list must work: a wrong token or RBAC fails here, loudly
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


def _write_atomically(path: Path, text: str) -> None:
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(partial, path)


def file_sd_jobs(scrape_configs: Iterable[Mapping[str, Any]], discovery: PodDiscovery, interval: str) -> list[dict[str, Any]]:
    """The jobs as given, their ``kubernetes_sd_configs`` handed to ``discovery``
    and replaced by its files; every interval and timeout ``interval``."""
    jobs = []
    for given in scrape_configs:
        job = copy.deepcopy(dict(given))
        name = job["job_name"]
        discovery.jobs[name] = job.pop("kubernetes_sd_configs", [])
        job["file_sd_configs"] = [{"files": [str(discovery.file_for(name))], "refresh_interval": interval}]
        job["scrape_interval"] = job["scrape_timeout"] = interval
        jobs.append(job)
    return jobs


# --- the server ---------------------------------------------------------------


class Prometheus:
    """``prometheus`` on loopback with the given jobs and rule files; its HTTP API."""

    def __init__(self, workdir: Path, scrape_configs: list[dict[str, Any]], rule_files: Iterable[Path] = (),
                 interval: str = "1s") -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": scrape_configs,
        }, indent=1))
        checked = subprocess.run([binary("promtool"), "check", "config", str(self.config)],
                                 capture_output=True, text=True, timeout=60)
        if checked.returncode != 0:
            raise PrometheusError(f"promtool check config {self.config}:\n{checked.stdout}{checked.stderr}")
        self.process = ManagedProcess("prometheus", [
            binary("prometheus"), f"--config.file={self.config}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=2h", "--log.level=warn",
        ], workdir / "prometheus.log")

    def start(self, timeout: float = 60) -> Prometheus:
        self.process.start()
        self.process.wait_until(lambda: http_ok(f"{self.url}/-/ready"), timeout, "ready")
        return self

    def stop(self) -> None:
        self.process.stop()

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>``; its ``data``, or :class:`PrometheusError` with Prometheus's error."""
        url = f"{self.url}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as error:  # 400/422: a bad query, with Prometheus's reason
            answer = json.load(error)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {answer.get('errorType')}: {answer.get('error')}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        data = self.api("query", query=expr)
        if data["resultType"] != "vector":
            raise PrometheusError(f"{expr}: a {data['resultType']}, not a vector")
        result: list[dict[str, Any]] = data["result"]
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets", state="active")["activeTargets"]
        return targets


# --- the Prometheus Operator's CRDs -------------------------------------------


def operator_crds(version: str = PROMETHEUS_OPERATOR_VERSION, names: Iterable[str] = OPERATOR_CRDS) -> list[Path]:
    """The CRD manifests ``monitoring.coreos.com_<name>.yaml`` of the Prometheus
    Operator ``version``, from its Go module (``go mod download`` in a throwaway
    module), kept under the cache's ``prometheus-operator/<version>/``."""
    cache = binaries.cache_dir().parents[1] / "prometheus-operator" / version
    wanted = [cache / f"monitoring.coreos.com_{name}.yaml" for name in names]
    if all(p.is_file() for p in wanted):
        return wanted
    go = shutil.which("go") or "/usr/local/go/bin/go"
    work = Path(tempfile.mkdtemp(prefix="prometheus-operator-"))
    try:
        env = {**os.environ, "GOMODCACHE": str(work / "mod"), "GOFLAGS": "-modcacherw", "GOWORK": "off"}
        subprocess.run([go, "mod", "init", "gctuner.local/crds"], cwd=work, env=env, check=True, capture_output=True)
        done = subprocess.run([go, "mod", "download", "-json", f"{PROMETHEUS_OPERATOR_MODULE}@{version}"],
                              cwd=work, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise PrometheusError(f"go mod download {PROMETHEUS_OPERATOR_MODULE}@{version}: {done.stdout}{done.stderr}")
        source = Path(json.loads(done.stdout)["Dir"]) / "example" / "prometheus-operator-crd"
        staging = Path(tempfile.mkdtemp(prefix=f"{version}.partial-", dir=_mkdir(cache.parent)))
        for path in wanted:
            shutil.copyfile(source / path.name, staging / path.name)
        if cache.exists():
            shutil.rmtree(cache)
        staging.rename(cache)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return wanted


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
