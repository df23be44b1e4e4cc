"""The few writes and reads the reconciler makes to the Kubernetes API.

kopf watches policies and ``pod_watch`` the opted-in pods; these are the
other calls: a policy's status, its Events, the token Secrets, and whether an
opted-out pod still exists. None writes to a pod.
Errors are translated here: a pod or policy that vanished meanwhile is not an
error (the watch will tell), anything else raises ``KubeError``, retryable
unless the API server refused the request itself (a 4xx other than a
conflict or throttling: retrying the same request cannot help).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import socket
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Callable

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from gctuner.policy import SecretRef

from .errors import KubeError, SecretNotForGctuner
from .resources import GROUP, PLURAL, VERSION

TOKEN_LABEL = "gctuner.dev/token"
"""The label (value ``"true"``) that marks a Secret as one the operator may send to agents."""

TOKEN_TYPES = frozenset({"Opaque", ""})
"""Secret types a token may have: never one a controller fills in (a ServiceAccount's token)."""

TRANSIENT = frozenset({408, 409, 429})
"""4xx answers that may pass: a timeout, a conflict with another write, throttling."""


async def connect() -> Any:
    """In-cluster credentials in a pod, else the kubeconfig (as kopf does)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in TRANSIENT


class Kube:
    """The real ``KubeApi``."""

    def __init__(self, api: Any, secret_ttl: float = 30.0) -> None:
        self._api = api
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._secret_ttl = secret_ttl
        self._secrets: dict[tuple[str, SecretRef], tuple[float, str]] = {}

    async def close(self) -> None:
        await self._api.close()

    async def pod_exists(self, namespace: str, name: str) -> bool:
        response = await _translated(
            f"reading pod {namespace}/{name}", self._core.read_namespaced_pod(name, namespace, _preload_content=False)
        )
        try:
            if response.status >= 400 and response.status != 404:
                raise KubeError(f"reading pod {namespace}/{name}: HTTP {response.status}",
                                retryable=_retryable(response.status))  # fmt: skip
            return bool(response.status < 300)
        finally:
            response.release()

    async def patch_policy_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        await self._call(
            self._custom.patch_namespaced_custom_object_status,
            GROUP, VERSION, namespace, PLURAL, name, {"status": status},
        )

    async def post_event(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on a policy, as ``kubectl describe`` shows them.

        Posted here rather than with ``kopf.event``: kopf's Event queue exists
        only inside its per-object handler tasks, and rollouts finish in ours.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{involved['name']}.", namespace=involved["namespace"]),
            involved_object=client.V1ObjectReference(
                api_version=f"{GROUP}/{VERSION}", kind="GCPolicy", **involved
            ),
            type=type_, reason=reason, message=message[:1024], count=1,
            first_timestamp=now, last_timestamp=now,
            source=client.V1EventSource(component="gctuner-operator"),
            reporting_component="gctuner.dev/operator", reporting_instance=socket.gethostname(),
        )
        await _translated("posting an Event", self._core.create_namespaced_event(involved["namespace"], body))

    async def token(self, namespace: str, ref: SecretRef) -> str:
        """The bearer token from a Secret, cached briefly so a rollout reads it once."""
        cached = self._secrets.get((namespace, ref))
        if cached and time.monotonic() - cached[0] < self._secret_ttl:
            return cached[1]
        secret = await _translated(
            f"cannot read Secret {namespace}/{ref.name}", self._core.read_namespaced_secret(ref.name, namespace)
        )
        labels = secret.metadata.labels if secret.metadata is not None else None
        token = token_from(namespace, ref, labels, secret.type, secret.data)
        self._secrets[(namespace, ref)] = (time.monotonic(), token)
        return token

    @staticmethod
    async def _call(method: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """A JSON merge patch: custom resources accept no strategic merge, and
        ``null`` removes a key (a status block with nothing to say).

        The answer is not turned into the client's models: we never read it,
        and building a ``V1Pod`` (parsing every timestamp) cost the operator
        more CPU than the rest of a push.
        """
        what = getattr(method, "__name__", "patch")
        response = await _translated(
            what, method(*args, _content_type="application/merge-patch+json", _preload_content=False)
        )
        try:
            if response.status == 404:
                return  # deleted meanwhile: the watch brings the news
            if response.status >= 400:
                detail = (await response.text())[:300]
                raise KubeError(
                    f"{what}: HTTP {response.status} {response.reason}: {detail}", retryable=_retryable(response.status)
                )
        finally:
            response.release()


def token_from(
    namespace: str, ref: SecretRef, labels: Mapping[str, str] | None, type_: str | None,
    data: Mapping[str, str] | None,
) -> str:
    """The token of a Secret meant for gctuner, else ``SecretNotForGctuner`` (its data untouched).

    The operator may ``get`` any Secret (RBAC cannot select by label), and the
    pods choose where a push goes: sending any other Secret would hand it to
    whoever may create a policy and a pod in the namespace.
    """
    where = f"Secret {namespace}/{ref.name}"
    if (labels or {}).get(TOKEN_LABEL) != "true":
        raise SecretNotForGctuner(
            f"{where} is not meant for gctuner (no label {TOKEN_LABEL}=true), so nothing was sent; if it holds "
            f"the agents' token: kubectl label secret {ref.name} -n {namespace} {TOKEN_LABEL}=true"
        )
    if (type_ or "") not in TOKEN_TYPES:
        raise SecretNotForGctuner(f"{where} is of type {type_}, so nothing was sent: a gctuner token is an Opaque Secret")
    value = (data or {}).get(ref.key)
    if value is None:
        raise KubeError(f"{where} has no key {ref.key!r}", retryable=False)
    return base64.b64decode(value).decode().strip()


async def _translated(what: str, call: Awaitable[Any]) -> Any:
    """Await ``call``; every way it can fail becomes a ``KubeError`` (an API server away included)."""
    try:
        return await call
    except ApiException as exc:
        raise KubeError(f"{what}: HTTP {exc.status} {exc.reason}", retryable=_retryable(exc.status)) from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise KubeError(f"{what}: {exc.__class__.__name__}: {exc}") from None
