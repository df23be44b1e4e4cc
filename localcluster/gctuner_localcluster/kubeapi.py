"""A thin JSON client for the API server, and list+watch that survives errors.

Why not the generated ``CoreV1Api`` models: turning every pod of every watch
event into model objects costs more CPU than everything else the kubelet
does, and we only read a handful of fields.  So we keep kubernetes_asyncio
for what it does well (kubeconfig, TLS, auth) and speak plain JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any, Callable

import aiohttp
from kubernetes_asyncio import client, config

log = logging.getLogger("kubelet")

Json = dict[str, Any]
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer from the API server (or no answer: ``status`` 0)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class KubeApi:
    """Requests as the kubeconfig's user, with a bound on concurrent writes."""

    def __init__(self, api_client: client.ApiClient, write_concurrency: int) -> None:
        self._client = api_client
        self._writes = asyncio.Semaphore(write_concurrency)

    @classmethod
    async def connect(cls, kubeconfig: str, write_concurrency: int = 16) -> KubeApi:
        configuration = client.Configuration()
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        return cls(client.ApiClient(configuration), write_concurrency)

    async def close(self) -> None:
        await self._client.close()

    async def _send(
        self, method: str, path: str, query: Iterable[tuple[str, Any]], body: Any,
        content_type: str, timeout: Any,
    ) -> aiohttp.ClientResponse:
        try:
            response = await self._client.call_api(
                path, method, query_params=list(query),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body, auth_settings=["BearerToken"],
                _preload_content=False, _request_timeout=timeout,
            )
            if response.status < 300:
                return response
            text = await response.text()
            response.release()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ApiError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        try:
            reason = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            reason = text
        raise ApiError(response.status, f"{method} {path}: {reason}")

    async def request(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None,
        body: Any = None, content_type: str = "application/json", timeout: float = 30,
    ) -> Json:
        """One request; the decoded JSON answer.  Writes wait for a free slot."""
        items = (query or {}).items()
        if method == "GET":
            response = await self._send(method, path, items, body, content_type, timeout)
        else:
            async with self._writes:
                response = await self._send(method, path, items, body, content_type, timeout)
        try:
            return await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ApiError(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            response.release()

    async def list_all(self, path: str, query: Mapping[str, Any]) -> tuple[list[Json], str]:
        """Every item, page by page; and the resourceVersion to watch from."""
        items: list[Json] = []
        page: dict[str, Any] = {**query, "limit": 500}
        while True:
            answer = await self.request("GET", path, query=page)
            items.extend(answer.get("items") or [])
            meta = answer.get("metadata", {})
            if not meta.get("continue"):
                return items, meta["resourceVersion"]
            page["continue"] = meta["continue"]

    async def watch(self, path: str, query: Mapping[str, Any], timeout: int) -> AsyncIterator[Json]:
        """Yield watch events (``{"type", "object"}``) until the server ends the stream."""
        params = {**query, "watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": timeout}
        deadline = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout + 30)
        response = await self._send("GET", path, params.items(), None, "application/json", deadline)
        try:
            async for line in response.content:
                if line.strip():
                    yield json.loads(line)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise ApiError(0, f"watch {path}: {type(exc).__name__}: {exc}") from exc
        finally:
            response.release()


class Reflector:
    """List, then watch from the list's resourceVersion; relist on 410 Gone or any error.

    ``on_list`` gets the complete current set (so the caller can drop what
    vanished while we were not watching); ``on_event`` gets each later event.
    """

    def __init__(
        self, api: KubeApi, path: str, query: Mapping[str, Any],
        on_list: Callable[[list[Json]], None],
        on_event: Callable[[str, Json], None],
        max_backoff: float = 10.0,
    ) -> None:
        self._api, self._path, self._query = api, path, dict(query)
        self._on_list, self._on_event = on_list, on_event
        self._max_backoff = max_backoff
        self._what = f"{path}?{'&'.join(f'{k}={v}' for k, v in self._query.items())}"  # for log lines

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                items, version = await self._api.list_all(self._path, self._query)
                self._on_list(items)
                backoff = 0.5
                await self._watch_from(version)
            except ApiError as exc:
                log.warning("list/watch %s failed (%s); relisting in %.1fs", self._what, exc, backoff)
            except Exception:  # a bug in a handler must not end the watch for good
                log.exception("list/watch %s: handler failed; relisting in %.1fs", self._what, backoff)
            else:
                continue
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self._max_backoff)

    async def _watch_from(self, version: str) -> None:
        """Watch until the resourceVersion expires (return: relist) or an error (raise)."""
        while True:
            query = {**self._query, "resourceVersion": version}
            events = self._api.watch(self._path, query, timeout=random.randint(240, 360))
            try:
                async with contextlib.aclosing(events):  # close the stream even when a handler raises
                    async for event in events:
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            raise ApiError(obj.get("code", 0), obj.get("message", "watch error"))
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if kind != "BOOKMARK":
                            self._on_event(kind, obj)
            except ApiError as exc:
                if exc.status == 410:  # our resourceVersion expired: relist at once
                    return
                raise
