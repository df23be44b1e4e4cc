"""Wait for a condition with a deadline: tests never sleep a fixed time.

One helper for every tier: ``wait_for`` in plain (thread) code, ``until`` on
an asyncio event loop, where sleeping would block the code under test. Both
poll ``check`` until it returns something truthy, return that value, and
fail naming ``what`` and the last value (or exception) seen. An exception
from ``check`` counts as "not yet" (404, connection refused, a file not
written yet). Importable on every interpreter of the agent's matrix (3.9+).
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float = 30.0, what: str = "the condition", interval: float = 0.2) -> T:
    """Return ``check()``'s first truthy value; fail naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        done, last = _poll(check)
        if done:
            return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, last)
        time.sleep(interval)


async def until(check: Callable[[], T], timeout: float = 30.0, what: str = "the condition", interval: float = 0.02) -> T:
    """``wait_for`` on the running event loop: the loop runs on between checks."""
    deadline = time.monotonic() + timeout
    while True:
        done, last = _poll(check)
        if done:
            return last  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, last)
        await asyncio.sleep(interval)


def _poll(check: Callable[[], object]) -> tuple[bool, object]:
    try:
        last = check()
    except Exception as exc:  # not there yet (404, connection refused, ...)
        return False, exc
    return bool(last), last


def _timed_out(timeout: float, what: str, last: object) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g}s waiting for {what}; last seen: {last!r}")
