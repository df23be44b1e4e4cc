"""What the reconciler needs of its two clients, so fakes in tests type-check.

``agent_client.AgentClient`` and ``kube.Kube`` are the real ones; each
raises only its error of ``errors`` (``AgentError``, ``KubeError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gctuner.autopilot.goal import Goal
from gctuner.core.settings import Settings
from gctuner.policy import Endpoint, SecretRef


class AgentApi(Protocol):
    async def push(
        self, ip: str, endpoint: Endpoint, settings: Settings, token: str | None,
        applied_by: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """POST the settings; succeed only when every process of the pod applied them."""

    async def steer(
        self, ip: str, endpoint: Endpoint, goal: Goal, token: str | None, applied_by: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST the goal (Auto); succeed only when every process of the pod follows it."""

    async def restore(self, ip: str, endpoint: Endpoint, token: str | None) -> dict[str, Any]:
        """DELETE: every process back to its own startup defaults."""

    async def read(self, ip: str, endpoint: Endpoint) -> dict[str, Any]:
        """GET the live state of every process of the pod."""

    async def close(self) -> None: ...


class KubeApi(Protocol):
    async def pod_exists(self, namespace: str, name: str) -> bool:
        """Whether the pod still exists (the only read of a single pod; never a write)."""

    async def patch_policy_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...

    async def post_event(self, involved: Mapping[str, str], type_: str, reason: str, message: str) -> None: ...

    async def token(self, namespace: str, ref: SecretRef) -> str:
        """The bearer token a policy's ``tokenSecretRef`` names."""

    async def close(self) -> None: ...
