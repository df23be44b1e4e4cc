"""Talking to the agent's /tune_gc endpoint in a pod, and nothing else.

Every failure is translated here, at the boundary, into one ``AgentError``
with a short ``reason`` (it lands in ``status.failures`` and Events), a
message a person reads, and whether retrying soon can help: an agent that
answers 4xx (bad settings, a wrong token) refuses until something changes.
The token is sent, never logged nor put in a message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import aiohttp

from gctuner.autopilot.goal import Goal
from gctuner.core.settings import Settings
from gctuner.policy import Endpoint

from .errors import AgentError

KEEPALIVE = 1.0
"""Seconds a connection to an agent stays open after a request (0: one connection per request).

A pod's connection is reused by the requests that follow each other: a live
read and the push it calls for, a retry. Kept briefly, so that a rollout to
10,000 pods never holds 10,000 idle sockets (each one a file in the operator
and in the pod's server). Measured in ``bench/convergence.py``."""


class AgentClient:
    """One aiohttp session for all pods, with a bounded connection pool (an ``AgentApi``)."""

    def __init__(self, timeout: float, max_parallel: int, keepalive: float = KEEPALIVE) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        connector = (
            aiohttp.TCPConnector(limit=max_parallel, keepalive_timeout=keepalive)
            if keepalive > 0
            else aiohttp.TCPConnector(limit=max_parallel, force_close=True)
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)

    async def close(self) -> None:
        await self._session.close()

    async def push(
        self, ip: str, endpoint: Endpoint, settings: Settings, token: str | None,
        applied_by: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """POST the settings (with who asks: ``applied_by``); succeed only when every process of the pod applied them."""
        answer = await self._call("POST", ip, endpoint, token, _with(settings.to_json(), applied_by))
        return _all_processes(answer)

    async def steer(
        self, ip: str, endpoint: Endpoint, goal: Goal, token: str | None, applied_by: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST ``{"goal": ...}``: the pod's autopilot steers to it; succeed only when every process follows."""
        return _all_processes(await self._call("POST", ip, endpoint, token, _with({"goal": goal.to_json()}, applied_by)))

    async def restore(self, ip: str, endpoint: Endpoint, token: str | None) -> dict[str, Any]:
        """DELETE: every process back to its own startup defaults."""
        return _all_processes(await self._call("DELETE", ip, endpoint, token))

    async def read(self, ip: str, endpoint: Endpoint) -> dict[str, Any]:
        """GET the live state of every process of the pod."""
        return await self._call("GET", ip, endpoint, None)

    async def _call(
        self, method: str, ip: str, endpoint: Endpoint, token: str | None, body: Any = None
    ) -> dict[str, Any]:
        url = f"http://{ip}:{endpoint.port}{endpoint.path}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self._session.request(method, url, json=body, headers=headers) as response:
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
                if response.status >= 400:
                    raise AgentError(
                        _reason(response.status), _message(response.status, answer), retryable=response.status >= 500
                    )
        except asyncio.TimeoutError:
            raise AgentError("Timeout", f"no answer from {url} within {self._timeout.total:g}s") from None
        except aiohttp.ClientConnectionError as exc:
            raise AgentError("Unreachable", f"{url}: {exc.__class__.__name__}: {exc}") from None
        if not isinstance(answer, dict):
            raise AgentError("BadAnswer", f"{url} did not answer with a JSON object")
        return answer


def _with(body: dict[str, Any], applied_by: Mapping[str, Any] | None) -> dict[str, Any]:
    """The record of the push (policy, generation), which the agent keeps and reports: no write to the pod."""
    return body if applied_by is None else {**body, "applied_by": dict(applied_by)}


def _all_processes(answer: dict[str, Any]) -> dict[str, Any]:
    processes = answer.get("processes") or {}
    applied, total = processes.get("applied"), processes.get("total")
    # the agent answers 202 for these (applied < total, or no process follows): never a success
    if not isinstance(applied, int) or not isinstance(total, int) or applied < total or total == 0:
        detail = answer.get("message") if total == 0 or applied != total else None
        raise AgentError("NotApplied", f"{applied} of {total} processes applied the settings in time"
                         + (f": {str(detail)[:300]}" if detail else ""))
    return answer


def _reason(status: int) -> str:
    if status in (401, 403):
        return "Unauthorized"
    return "Rejected" if status < 500 else "AgentError"


def _message(status: int, answer: Any) -> str:
    detail = answer.get("message") if isinstance(answer, dict) else None
    return f"HTTP {status}: {detail or 'no message'}"[:1000]
