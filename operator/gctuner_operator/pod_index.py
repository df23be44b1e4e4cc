"""Our own map of opted-in pods, kept from pod events, and which events matter.

Not a kopf index: kopf holds every handler back until each indexed object
has been seen, and its bookkeeping for that wakes every waiting object on
each one seen, O(n²) over all the pods of a cluster. Called for every pod
event, opted in or not, so the common case (a pod that never opted in) must
cost a label lookup and nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from gctuner.policy import ENABLED_LABEL, Key, PodView

Change = Literal["none", "reconcile", "verify"]
"""What a pod event asks for: nothing, a reconcile, or one that reads the pod live first."""


class PodIndex:
    def __init__(self, pods: dict[Key, PodView]) -> None:
        self.pods = pods
        """Opted-in pods, by key."""
        self.leaving: dict[Key, PodView] = {}
        """Opted out (label removed) but still running: their startup defaults are due."""
        self._seen: dict[Key, tuple[Any, ...]] = {}

    def observe(self, key: Key, body: Mapping[str, Any] | None, tracked: bool) -> Change:
        """Keep the maps up to date with a pod event (``body`` None: deleted).
        ``tracked``: the operator has acted on this pod before."""
        labels = (body.get("metadata", {}).get("labels") or {}) if body is not None else {}
        if body is None or labels.get(ENABLED_LABEL) != "true":
            if key not in self.pods and not tracked:
                return "none"  # never ours
            self.pods.pop(key, None)
            self._seen.pop(key, None)
            if body is None:  # deleted: nothing left to hand back
                self.leaving.pop(key, None)
            else:
                self.leaving[key] = PodView.from_body(body)
            return "reconcile"
        pod = self.pods[key] = PodView.from_body(body)
        self.leaving.pop(key, None)
        previous = self._seen.get(key)
        fingerprint = (pod.ip, pod.ready, tuple(sorted(pod.labels.items())), pod.port, pod.path, pod.restarts)
        self._seen[key] = fingerprint
        if fingerprint == previous:
            return "none"
        restarted = previous is not None and previous[-1] != pod.restarts
        return "verify" if restarted else "reconcile"  # a restarted process is back on its defaults
