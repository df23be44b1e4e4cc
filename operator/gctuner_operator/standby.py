"""When the operator may judge pods, and when it may act on them.

Two gates stand between the pod watch and any push:

1. **Every policy is known.** kopf holds its own handlers back until its
   index of policies is fully listed, but our pod watch is not a kopf
   handler. So the watch starts only once kopf's index holds every policy
   that a fresh list of the API server shows (listed again until it does:
   a policy deleted meanwhile drops out of the next list). After a restart,
   no pod is judged before every policy is known, so none is handed a
   policy of lower precedence, or its defaults, by mistake.

2. **This replica is the active one.** With peering (``--peering``), kopf
   pauses its handlers while a replica of higher priority lives (or one of
   the same priority: then both pause). It does not tell its handlers, and our
   watch and work queue are not its handlers: ``Leadership`` reads the same
   peering object and applies kopf's own rule (every live peer other than us
   has a lower priority, and we are listed). A standby keeps its pod index
   warm and pushes nothing, writes no status; on taking over it checks every
   pod live, because the other replica may have changed them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from .pod_watch import PodWatch
from .resources import GROUP, PLURAL, VERSION

logger = logging.getLogger(__name__)

PEERING_GROUP = "kopf.dev/v1"
POLL_SECONDS = 1.0


async def get_json(api: Any, path: str) -> Any:
    """One GET as plain JSON, or None on 404; raises on any other failure."""
    response = await api.call_api(
        path, "GET", header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
        _preload_content=False, _request_timeout=30,
    )  # fmt: skip
    try:
        if response.status == 404:
            return None
        if response.status >= 300:
            raise RuntimeError(f"GET {path}: HTTP {response.status}: {(await response.text())[:300]}")
        return await response.json(content_type=None)
    finally:
        response.release()


async def policies_known(api: Any, index: Mapping[Any, Collection[Any]], namespaces: Sequence[str] = ()) -> None:
    """Return once kopf's ``index`` (namespace -> policies) holds every policy the API server lists."""
    paths = [f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}" for ns in namespaces] or [
        f"/apis/{GROUP}/{VERSION}/{PLURAL}"
    ]
    waited = 0.0
    while True:
        try:
            listed = set()
            for path in paths:
                for item in (await get_json(api, path) or {}).get("items") or ():
                    listed.add((item["metadata"]["namespace"], item["metadata"]["name"]))
            known = {(p.namespace, p.name) for store in list(index.values()) for p in store}
            if listed <= known:
                logger.info("all %d policies are known: watching the opted-in pods", len(listed))
                return
        except Exception as exc:  # noqa: BLE001  (the API server away: try again)
            logger.warning("listing the policies failed (%s); retrying", exc)
        if waited >= 30 and int(waited) % 30 == 0:
            logger.info("waiting for kopf to list every policy (a standby replica waits until it takes over)")
        await asyncio.sleep(0.2 if waited < 5 else POLL_SECONDS)
        waited += 0.2 if waited < 5 else POLL_SECONDS


class Leadership:
    """Whether this replica may act: always when standalone; with peering, as kopf decides."""

    def __init__(
        self, api: Any, peering: str | None, identity: str, priority: int, namespaces: Sequence[str] = ()
    ) -> None:
        self._api = api
        self._peering = peering
        self._identity = identity
        self._priority = priority
        self._namespaces = tuple(namespaces)
        self.active = asyncio.Event()
        self.standby = asyncio.Event()
        if peering is None:
            self.active.set()
        else:
            self.standby.set()  # kopf, too, starts paused until it sees its peers

    async def run(self) -> None:
        if self._peering is None:
            return
        while True:
            try:
                active = await self._decide()
            except Exception as exc:  # noqa: BLE001  (cannot tell: keep the last decision)
                logger.warning("reading the peering %s failed (%s)", self._peering, exc)
            else:
                if active and not self.active.is_set():
                    logger.info("this replica is the active one (peering %s): acting", self._peering)
                    self.standby.clear()
                    self.active.set()
                elif not active and self.active.is_set():
                    logger.info("another replica is active (peering %s): standing by", self._peering)
                    self.active.clear()
                    self.standby.set()
            await asyncio.sleep(POLL_SECONDS)

    async def _decide(self) -> bool:
        if self._namespaces:
            paths = [f"/apis/{PEERING_GROUP}/namespaces/{ns}/kopfpeerings/{self._peering}" for ns in self._namespaces]
        else:
            paths = [f"/apis/{PEERING_GROUP}/clusterkopfpeerings/{self._peering}"]
        for path in paths:
            body = await get_json(self._api, path)
            if not leads((body or {}).get("status") or {}, self._identity, self._priority):
                return False
        return True


def leads(peers: Mapping[str, Any], identity: str, priority: int, now: datetime.datetime | None = None) -> bool:
    """kopf's rule: we are listed, and every other live peer has a lower priority."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if identity not in peers:
        return False
    for name, info in peers.items():
        if name == identity or not isinstance(info, dict):
            continue
        try:
            seen = datetime.datetime.fromisoformat(str(info.get("lastseen")))
            if seen.tzinfo is None:
                seen = seen.replace(tzinfo=datetime.timezone.utc)
            dead = seen + datetime.timedelta(seconds=int(info.get("lifetime", 60))) <= now
        except (TypeError, ValueError):
            dead = False
        if not dead and int(info.get("priority", 0)) >= priority:
            return False
    return True


class Operated(Protocol):
    """What ``operate`` drives: the ``Reconciler``."""

    def start(self) -> None: ...

    async def pause(self) -> None: ...

    def resync(self) -> None: ...


async def operate(
    reconciler: Operated, watch: PodWatch, leadership: Leadership, api: Any,
    policies: Mapping[Any, Collection[Any]], namespaces: Sequence[str] = (),
) -> None:  # fmt: skip
    """Gate 1 (every policy known), then the pod watch; the reconciler runs while this replica leads."""
    tasks = [asyncio.create_task(leadership.run(), name="gctuner leadership")]
    try:
        await policies_known(api, policies, namespaces)
        tasks.append(asyncio.create_task(watch.run(), name="gctuner pod watch"))
        while True:
            await leadership.active.wait()
            reconciler.start()
            reconciler.resync()
            await leadership.standby.wait()
            await reconciler.pause()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
