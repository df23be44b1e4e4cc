"""Readiness probes, with the kubelet's defaults and thresholds.

``httpGet`` and ``tcpSocket`` are supported; ``exec`` and ``grpc`` are not
(a container with such a probe counts as ready once running, and the kubelet
logs that once), which is enough for the apps this project runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

USER_AGENT = "kube-probe/1.37"


class Probe:
    """One container's readiness probe: its timing and a single check."""

    def __init__(self, spec: Mapping, container: Mapping, pod_ip: str, http: aiohttp.ClientSession) -> None:
        self.initial_delay = float(spec.get("initialDelaySeconds", 0))
        self.period = float(spec.get("periodSeconds", 10))
        self.timeout = float(spec.get("timeoutSeconds", 1))
        self.success_threshold = int(spec.get("successThreshold", 1))
        self.failure_threshold = int(spec.get("failureThreshold", 3))
        self._spec = spec
        self._ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if p.get("name")}
        self._pod_ip = pod_ip
        self._http = http

    @staticmethod
    def supported(spec: Mapping) -> bool:
        return "httpGet" in spec or "tcpSocket" in spec

    def _port(self, handler: Mapping) -> int | None:
        port = handler.get("port")
        if isinstance(port, int):
            return port
        if isinstance(port, str) and port.isdigit():
            return int(port)
        return self._ports.get(port)

    async def check(self) -> bool:
        """True when the container answers as the probe asks; any error is a failure."""
        handler = self._spec.get("httpGet") or self._spec.get("tcpSocket") or {}
        port = self._port(handler)
        if port is None:
            return False
        host = handler.get("host") or self._pod_ip
        try:
            if "httpGet" in self._spec:
                return await self._http_get(handler, host, port)
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
            writer.close()
            return True
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return False

    async def _http_get(self, handler: Mapping, host: str, port: int) -> bool:
        scheme = handler.get("scheme", "HTTP").lower()
        path = handler.get("path", "/")
        if not path.startswith("/"):
            path = "/" + path
        headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
        headers.update({h["name"]: h["value"] for h in handler.get("httpHeaders", [])})
        async with self._http.get(
            f"{scheme}://{host}:{port}{path}", headers=headers, ssl=False,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
        ) as response:
            return 200 <= response.status < 400
