"""A mocked Kubernetes API (kmock) and real agents, for the operator's API-fault tests.

Not a test module. The API server is kmock's ``KubernetesEmulator``, made to
answer as a real one does where the operator and kopf depend on it:

- a write that an injected fault refuses is not applied (kmock stores every
  write before any reaction answers);
- an object created with ``generateName`` gets a name (the operator's Events);
- the namespaces and CRD resources are discoverable (kopf waits for both
  before it watches anything), and the test objects carry a resourceVersion
  (kopf's finalizer patch tests it);
- each request's arrival time is kept (in kmock 0.8 a reaction with only a
  side effect stops seeing requests after the first);
- a ``labelSelector`` (equality only, as the operator's pod watch uses it)
  filters lists and watches, and an object that stops matching arrives as
  DELETED with its previous content (still matching), as the API server's
  watch cache sends it.

The agents are the real agent core, one per fake pod, served as ``gctuner
sidecar`` serves it on its own port of 127.0.0.1, each with a fake ``gc``
module so that the test process's own collector is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import secrets
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any, Callable

import attrs
import kmock
import kopf
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.config import kube_config

from gctuner.api.endpoint import TuneEndpoint
from gctuner.api.routes import Routes
from gctuner.cli.server import SidecarServer
from gctuner.core.config import Config
from gctuner.core.runtime import GCRuntime
from gctuner.pod.shared import SharedState
from gctuner.pod.statedir import StateDir
from gctuner.policy import ENABLED_LABEL, PORT_ANNOTATION
from gctuner.testing import StandInGC
from gctuner_operator import handlers  # noqa: F401  (registers the operator's kopf handlers for operator())
from polling import until

NAMESPACE = "shop"
PODS = "v1/pods"
POLICIES = "gctuner.dev/v1alpha1/gcpolicies"
TOKEN = "kmock-token"
TUNED = [50000, 20, 100]
STARTUP = (700, 10, 10)
WRITE_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator, with refusals that leave the objects as they were."""

    _refusals: list[kmock.View] = attrs.field(factory=list, init=False)
    _arrivals: dict[int, float] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources[PODS] = {"kind": "Pod", "singular": "pod", "namespaced": True,
                                "verbs": WRITE_VERBS, "subresources": ["status"]}  # fmt: skip
        self.resources["v1/events"] = {"kind": "Event", "singular": "event", "namespaced": True,
                                       "verbs": WRITE_VERBS}  # fmt: skip
        self.resources[POLICIES] = {"kind": "GCPolicy", "singular": "gcpolicy", "namespaced": True,
                                    "verbs": WRITE_VERBS, "subresources": ["status"],
                                    "shortnames": ["gcpol"]}  # fmt: skip
        # kopf waits for these two to be discovered before it watches anything.
        self.resources["v1/namespaces"] = {"kind": "Namespace", "singular": "namespace", "namespaced": False,
                                           "verbs": WRITE_VERBS}  # fmt: skip
        self.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = {
            "kind": "CustomResourceDefinition", "singular": "customresourcedefinition", "namespaced": False,
            "verbs": WRITE_VERBS,
        }  # fmt: skip

    def refuse(self, view: kmock.View, code: int, reason: str) -> kmock.Reaction:
        """Answer the requests in ``view`` with a Kubernetes error; none of them is applied."""
        self._refusals.append(view)
        return view << code << status_body(code, reason, f"injected by the test: {reason}")

    async def _handle(self, request: kmock.Request) -> Any:
        self._arrivals[request.id] = asyncio.get_running_loop().time()
        if any(request in view for view in self._refusals):
            return await kmock.RawHandler._handle(self, request)  # answered by the refusal; nothing stored
        metadata = request.data.get("metadata") if isinstance(request.data, dict) else None
        named = isinstance(metadata, dict) and (metadata.get("name") or not metadata.get("generateName"))
        if request.action == kmock.action.CREATE and isinstance(metadata, dict) and not named:
            metadata["name"] = metadata["generateName"] + secrets.token_hex(3)
        return await super()._handle(request)

    # --- what tests read back --------------------------------------------------------

    def arrivals(self, view: kmock.View) -> list[float]:
        """When each request in ``view`` arrived (event loop time)."""
        return [self._arrivals[request.id] for request in view]

    def status(self, name: str = "web") -> dict[str, Any]:
        """The policy's status as stored (only writes that were not refused)."""
        return dict(self.objects[POLICIES, NAMESPACE, name].get("status") or {})

    # --- label selectors, as the API server applies them ----------------------------

    async def _serve_list(self, request: kmock.Request) -> Any:
        payload = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector and isinstance(payload, dict):
            payload["items"] = [item for item in payload["items"] if selected(item, selector)]
        return payload

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector")
        inside: dict[tuple[str, str], Any] = {}  # what the stream last sent of each object
        async for event in super()._serve_watch(request):
            if not selector or not isinstance(event, dict) or event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
                yield event
                continue
            obj = event["object"]
            key = (obj["metadata"].get("namespace"), obj["metadata"]["name"])
            if event["type"] == "DELETED" or not selected(obj, selector):
                if key in inside:  # left the selector: DELETED, with what it was while it matched
                    previous = inside.pop(key)
                    yield {"type": "DELETED", "object": obj if event["type"] == "DELETED" else previous}
                continue
            yield {"type": "MODIFIED" if key in inside else "ADDED", "object": obj}
            inside[key] = copy.deepcopy(obj)


def selected(obj: Mapping[str, Any], selector: str) -> bool:
    labels = obj.get("metadata", {}).get("labels") or {}
    return all(labels.get(k) == v for k, _, v in (term.partition("=") for term in selector.split(",")))


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``Status`` as the API server sends with an error (and in a watch's ERROR event)."""
    return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
            "code": code, "reason": reason, "message": message}  # fmt: skip


def policy_body(name: str = "web") -> dict[str, Any]:
    return {
        "apiVersion": "gctuner.dev/v1alpha1",
        "kind": "GCPolicy",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "resourceVersion": "1",
                     "generation": 1, "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "thresholds": TUNED},
    }  # fmt: skip


def pod_body(name: str, port: int) -> dict[str, Any]:
    """A running, ready, opted-in pod whose agent listens on 127.0.0.1:``port``."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-{name}", "resourceVersion": "1",
                     "labels": {"app": "web", ENABLED_LABEL: "true"},
                     "annotations": {PORT_ANNOTATION: str(port)}},
        "spec": {"containers": [{"name": "app", "image": "app"}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "app", "image": "app", "imageID": "", "restartCount": 0,
                                          "ready": True}]},
    }  # fmt: skip


# --- the agents ----------------------------------------------------------------------


class Agent:
    """One pod's agent: the real endpoint and shared state, as ``gctuner sidecar`` serves them."""

    def __init__(self, state_dir: Path) -> None:
        self.shared = SharedState(StateDir(state_dir), GCRuntime(StandInGC(STARTUP)))
        endpoint = TuneEndpoint(Config(token=TOKEN, metrics=False, record_pauses=False), shared=self.shared)
        self.server = SidecarServer(("127.0.0.1", 0), Routes(endpoint))
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"agent-{self.port}", daemon=True)  # fmt: skip
        self._thread.start()

    @property
    def thresholds(self) -> list[int]:
        """What the pod's collector runs now."""
        return list(self.shared.runtime.thresholds())

    @property
    def applied_by(self) -> dict[str, Any] | None:
        """Who asked for what the pod runs, as its agent keeps it (the operator never writes to pods)."""
        desired = self.shared.desired()
        return None if desired is None or desired.applied_by is None else desired.applied_by.to_json()

    @property
    def pushes(self) -> int:
        """POSTs and DELETEs it applied: each publishes one generation."""
        desired = self.shared.desired()
        return 0 if desired is None else desired.generation

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.shared.stop()


@contextlib.contextmanager
def agents(root: Path) -> Iterator[Callable[[str], Agent]]:
    """``start(name)`` gives a new agent; every one started is stopped at the end."""
    started: list[Agent] = []

    def start(name: str) -> Agent:
        started.append(Agent(root / name))
        return started[-1]

    try:
        yield start
    finally:
        for agent in started:
            agent.stop()


# --- the whole operator ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def operator(api: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[kopf.Memo]:
    """The real operator (kopf and our handlers) in this event loop, logged in to ``api``."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "kmock",
        "clusters": [{"name": "kmock", "cluster": {"server": str(api.url).rstrip("/")}}],
        "users": [{"name": "test", "user": {"token": "kmock"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
    }))  # fmt: skip
    # kopf's login and our kube.connect() both call kubernetes_asyncio's load_kube_config(),
    # which reads $KUBECONFIG once, at import; and it sets a process-wide default (undone after).
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.setattr(client.Configuration, "_default", None)
    for name in ("KUBERNETES_SERVICE_HOST", "GCTUNER_TOKEN_FILE", "GCTUNER_METRICS_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GCTUNER_TOKEN", TOKEN)

    settings = kopf.OperatorSettings()
    settings.process.ultimate_exiting_timeout = None  # never SIGKILL the test process
    memo, ready, stop = kopf.Memo(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        clusterwide=True, standalone=True, settings=settings, memo=memo, ready_flag=ready, stop_flag=stop,
    ))  # fmt: skip
    try:
        await until(lambda: ready.is_set() or task.done(), 20, "the operator to start")
        assert not task.done(), task.exception()
        yield memo
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
