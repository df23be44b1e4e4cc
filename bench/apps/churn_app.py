"""A second shape for the autopilot benchmark: a small heap and a high rate of cyclic garbage.

Unlike the reference app (a 300 MB catalogue that every full collection
scans), this one keeps almost nothing: each request builds a session graph of
small objects in reference cycles (a doubly linked list of events, each
pointing back at its session, tags in dicts), summarises it and drops it, so
only the collector frees it. Young collections are then all it does, and
each costs in proportion to what it finds: raising threshold0 makes them
rarer but not cheaper per object, so the GC time share falls much less than
on a heap where each collection costs about the same.

Two knobs make it the memory-pressure workload (both off by default):

- ``CHURN_PAYLOAD_BYTES``: every event also holds a buffer of this many
  bytes, which only the collector frees with its cycle. A high threshold0
  then holds ``threshold0 / objects-per-event`` payloads alive per process:
  memory, not only objects;
- ``CHURN_CACHE_MB``: a per-process cache that grows by ``CHURN_GROW_BYTES``
  per request up to this many MB, as a cache warming up does: the live heap
  creeps towards the memory limit during the run.
"""

from __future__ import annotations

import os
import random
from typing import Any

from flask import Flask

from gctuner.flask import GCTuner

EVENTS = int(os.environ.get("CHURN_EVENTS", "400"))
"""Events per request; each is three tracked objects (instance, its dict of tags, a list)."""
PAYLOAD_BYTES = int(os.environ.get("CHURN_PAYLOAD_BYTES", "0"))
PAYLOAD_EVERY = int(os.environ.get("CHURN_PAYLOAD_EVERY", "8"))
"""One event in this many carries a payload (when ``CHURN_PAYLOAD_BYTES`` is set)."""
CACHE_MB = float(os.environ.get("CHURN_CACHE_MB", "0"))
GROW_BYTES = int(os.environ.get("CHURN_GROW_BYTES", "4096"))

CACHE: list[bytes] = []
"""Grows by one ``GROW_BYTES`` entry per request up to ``CACHE_MB``: long-lived."""

app = Flask(__name__)
GCTuner(app)


class Session:
    """A request's session: the root of a cyclic graph."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.first: Event | None = None
        self.last: Event | None = None


class Event:
    """One event, linked both ways and back to its session: three cycles per event."""

    def __init__(self, session: Session, kind: int, previous: Event | None, payload: bytes | None) -> None:
        self.session = session
        self.previous = previous
        self.next: Event | None = None
        self.tags = {"kind": kind, "weight": kind * 7 % 13}
        self.path = [kind, session.number]
        self.payload = payload
        if previous is not None:
            previous.next = self


@app.get("/order")
def order() -> dict[str, Any]:
    """Build a session of ``EVENTS`` events, summarise it, drop it."""
    rng = random.Random()
    session = Session(rng.randrange(1_000_000))
    previous = None
    for index in range(EVENTS):
        payload = bytes(PAYLOAD_BYTES) if PAYLOAD_BYTES and index % PAYLOAD_EVERY == 0 else None
        previous = Event(session, rng.randrange(16), previous, payload)
        if session.first is None:
            session.first = previous
    session.last = previous
    if CACHE_MB and len(CACHE) * GROW_BYTES < CACHE_MB * 2**20:
        CACHE.append(os.urandom(GROW_BYTES))  # incompressible, never shared
    weights: dict[int, int] = {}
    event = session.first
    while event is not None:
        weights[event.tags["kind"]] = weights.get(event.tags["kind"], 0) + event.tags["weight"]
        event = event.next
    return {"session": session.number, "events": EVENTS, "weights": weights, "cached": len(CACHE)}
