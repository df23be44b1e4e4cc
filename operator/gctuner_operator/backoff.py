"""The one retry delay of the operator: exponential, capped, jittered.

Pods that failed together (a node down, an API server away) must not all
come back in the same instant: each delay is shortened by a random share of
up to ``JITTER``, so it never exceeds the cap and never collapses to zero.
"""

from __future__ import annotations

import random
from typing import Callable

JITTER = 0.2
"""The largest share by which a delay is shortened at random."""


def backoff(attempt: int, base: float, cap: float, rng: Callable[[], float] = random.random) -> float:
    """Seconds to wait before try ``attempt + 1``: ``base * 2 ** (attempt - 1)``, at most ``cap``, jittered."""
    delay = min(cap, base * 2.0 ** max(0, attempt - 1))
    return delay * (1 - JITTER * rng())
