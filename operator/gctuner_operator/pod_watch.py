"""Our own watch of the opted-in pods, with a server-side label selector.

kopf has no server-side label selector (its ``labels=`` filters run in the
operator), so watching pods with it made the operator receive, parse and
drop every pod of the cluster: its memory and CPU grew with pods that never
opted in. This watch asks the API server for ``gctuner.dev/enabled=true``
only, so the operator's cost follows the opted-in pods.

The usual reflector, in plain JSON (building the client's ``V1Pod`` models
costs more CPU than everything else we do with a pod):

- list (paginated) and watch from the list's ``resourceVersion``, with
  bookmarks, so that a quiet watch keeps a fresh version to resume from;
- a watch that ends is resumed from the last version seen; 410 Gone (the
  version expired) relists at once; any other error relists after the
  operator's one jittered backoff;
- a relist is diffed against the pods we know: one that the new list lacks
  was deleted, or lost the label, while we were not watching; a GET tells
  which;
- a pod that loses the label arrives as DELETED (it left the selector), and
  the API server sends its *previous* content, label included: a DELETED
  event alone cannot tell an opt-out (whose startup defaults are due) from a
  deletion. A pod being deleted carries a ``deletionTimestamp``; any other
  DELETED is settled by a GET (404: gone; there without the label: opted
  out), in a task of its own so that the stream never waits on it.

Everything goes to the same level-triggered reconciler as before
(``Reconciler.pod_changed``): a relisted pod that did not change costs a
fingerprint comparison, never a push.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Protocol

import aiohttp

from gctuner.policy import ENABLED_LABEL, Key

from .backoff import backoff

logger = logging.getLogger(__name__)

SELECTOR = f"{ENABLED_LABEL}=true"
PAGE = 500
"""Pods per page of a list: bounded memory however many pods are opted in."""

MAX_LINE = 16 * 1024 * 1024
"""A watch event larger than this is not a pod (the API server's own limit is ~3 MB)."""

Json = dict[str, Any]


class PodSink(Protocol):
    """Where pod events go: ``Reconciler`` is one."""

    def pod_changed(self, key: Key, body: Mapping[str, Any] | None) -> None: ...

    def known_pods(self) -> Iterable[Key]:
        """The opted-in pods known now (to diff a relist against)."""


class WatchError(Exception):
    """The API server refused or broke a list or watch; ``status`` 0 if there was no answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status


def opted_in(body: Mapping[str, Any]) -> bool:
    return ((body.get("metadata") or {}).get("labels") or {}).get(ENABLED_LABEL) == "true"


def key_of(body: Mapping[str, Any]) -> Key:
    meta = body.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class PodWatch:
    """List and watch the opted-in pods of the cluster (or of ``namespaces``), forever."""

    def __init__(
        self, api: Any, sink: PodSink, namespaces: Sequence[str] = (), *,
        retry_base: float = 0.5, retry_max: float = 10.0, timeout: tuple[int, int] = (240, 360),
    ) -> None:  # fmt: skip
        self._api = api  # a kubernetes_asyncio ApiClient: kubeconfig, TLS and auth
        self._sink = sink
        self._namespaces = tuple(namespaces)
        self._retry_base = retry_base
        self._retry_max = retry_max
        self._timeout = timeout
        self.lists = 0
        """Lists started (the first, and one per relist): for tests and the log."""
        self.listed = asyncio.Event()
        """Set once every watched scope was listed the first time."""
        self._settling: set[asyncio.Task[None]] = set()
        self._gets = asyncio.Semaphore(16)

    async def run(self) -> None:
        scopes = self._namespaces or (None,)
        listed = [asyncio.Event() for _ in scopes]

        async def all_listed() -> None:
            for event in listed:
                await event.wait()
            self.listed.set()

        try:
            await asyncio.gather(all_listed(), *(self._reflect(ns, done) for ns, done in zip(scopes, listed)))
        finally:
            for task in self._settling:
                task.cancel()
            await asyncio.gather(*self._settling, return_exceptions=True)

    # --- one scope: the cluster, or one namespace ------------------------------------

    async def _reflect(self, namespace: str | None, listed: asyncio.Event) -> None:
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        failures = 0
        while True:
            try:
                version = await self._list(path, namespace)
                listed.set()
                failures = 0
                await self._watch(path, version)
                continue  # 410 Gone: relist at once
            except asyncio.CancelledError:
                raise
            except WatchError as exc:
                failures += 1
                delay = backoff(failures, self._retry_base, self._retry_max)
                logger.warning("pod list/watch %s failed (%s); relisting in %.1fs", path, exc, delay)
            except Exception:  # a bug in a handler must not end the watch for good
                failures += 1
                delay = backoff(failures, self._retry_base, self._retry_max)
                logger.exception("pod list/watch %s failed unexpectedly; relisting in %.1fs", path, delay)
            await asyncio.sleep(delay)

    async def _list(self, path: str, namespace: str | None) -> str:
        """Every opted-in pod, page by page, to the sink; then the ones that vanished. The version to watch from."""
        self.lists += 1
        seen: set[Key] = set()
        query: dict[str, Any] = {"labelSelector": SELECTOR, "limit": PAGE}
        while True:
            page = await self._get_json(path, query)
            for item in page.get("items") or ():
                key = key_of(item)
                seen.add(key)
                self._sink.pod_changed(key, item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            query["continue"] = meta["continue"]
        vanished = [k for k in self._sink.known_pods() if (namespace is None or k[0] == namespace) and k not in seen]
        for key in vanished:  # deleted, or opted out, while we were not watching: a GET tells which
            self._sink.pod_changed(key, await self._read(key))
        if vanished:
            logger.info("pod relist: %d known pods had left meanwhile", len(vanished))
        return str(meta["resourceVersion"])

    async def _read(self, key: Key) -> Json | None:
        """The pod as it is now; None if it is gone (or opted in again: then the next event brings it)."""
        try:
            body = await self._get_json(f"/api/v1/namespaces/{key[0]}/pods/{key[1]}", {})
        except WatchError as exc:
            if exc.status == 404:
                return None
            raise
        return body

    async def _watch(self, path: str, version: str) -> None:
        """Watch from ``version``, resuming after each server timeout; return on 410 Gone."""
        while True:
            seconds = random.randint(*self._timeout)
            query = {"labelSelector": SELECTOR, "watch": "true", "allowWatchBookmarks": "true",
                     "resourceVersion": version, "timeoutSeconds": seconds}  # fmt: skip
            async for event in self._stream(path, query, seconds):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        logger.info("pod watch %s: resource version %s expired; relisting", path, version)
                        return
                    raise WatchError(int(obj.get("code") or 0), str(obj.get("message", "watch error")))
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                key = key_of(obj)
                if kind != "DELETED":
                    self._sink.pod_changed(key, obj)
                elif (obj.get("metadata") or {}).get("deletionTimestamp"):
                    self._sink.pod_changed(key, None)  # deleted
                else:
                    self._settle(key)  # deleted, or it lost the label: a GET tells

    def _settle(self, key: Key) -> None:
        """Tell the sink what became of a pod that left the selector, once a GET says."""

        async def settle() -> None:
            failures = 0
            while True:
                try:
                    async with self._gets:
                        body = await self._read(key)
                    break
                except WatchError as exc:
                    failures += 1
                    delay = backoff(failures, self._retry_base, self._retry_max)
                    logger.warning("reading pod %s/%s failed (%s); retrying in %.1fs", *key, exc, delay)
                    await asyncio.sleep(delay)
            self._sink.pod_changed(key, body)

        task = asyncio.create_task(settle(), name=f"settle pod {key[0]}/{key[1]}")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    # --- HTTP: plain JSON -------------------------------------------------------------

    async def _send(self, path: str, query: Mapping[str, Any], timeout: Any) -> aiohttp.ClientResponse:
        try:
            response = await self._api.call_api(
                path, "GET", query_params=list(query.items()), header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"], _preload_content=False, _request_timeout=timeout,
            )  # fmt: skip
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise WatchError(0, f"GET {path}: {type(exc).__name__}: {exc}") from None
        if response.status >= 300:
            try:
                text = await response.text()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                text = ""
            finally:
                response.release()
            if response.status == 410:  # a list's continue token expired: relist at once, like a watch
                raise _Gone()
            try:
                message = json.loads(text).get("message", text)
            except (ValueError, AttributeError):
                message = text
            raise WatchError(response.status, f"GET {path}: {str(message)[:300]}")
        return response  # type: ignore[no-any-return]

    async def _get_json(self, path: str, query: Mapping[str, Any]) -> Json:
        while True:
            try:
                response = await self._send(path, query, aiohttp.ClientTimeout(total=60))
            except _Gone:
                query = {k: v for k, v in query.items() if k != "continue"}
                continue
            try:
                data = await response.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                raise WatchError(0, f"GET {path}: {type(exc).__name__}: {exc}") from None
            finally:
                response.release()
            if not isinstance(data, dict):
                raise WatchError(0, f"GET {path}: not a JSON object")
            return data

    async def _stream(self, path: str, query: Mapping[str, Any], seconds: int) -> AsyncIterator[Json]:
        """The watch's events, one JSON object per line, until the server ends the stream."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=seconds + 30)
        try:
            response = await self._send(path, query, timeout)
        except _Gone:
            yield {"type": "ERROR", "object": {"code": 410}}
            return
        buffer = b""
        try:
            async for chunk in response.content.iter_any():  # not readline: its limit is 128 KiB
                buffer += chunk
                while (end := buffer.find(b"\n")) >= 0:
                    line, buffer = buffer[:end], buffer[end + 1 :]
                    if line.strip():
                        yield json.loads(line)
                if len(buffer) > MAX_LINE:
                    raise WatchError(0, f"watch {path}: an event larger than {MAX_LINE} bytes")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise WatchError(0, f"watch {path}: {type(exc).__name__}: {exc}") from None
        finally:
            response.release()


class _Gone(Exception):
    """HTTP 410 on a request: what was asked for expired."""
