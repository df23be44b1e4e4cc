"""The session operator's log: what the RBAC check at the end of the session reads.

Shared by the ``operator`` fixture and the tests that restart the API server
(a plain module, so both import the same list).
"""

from __future__ import annotations

RBAC_WARMUPS: list[tuple[int, int]] = []
"""Spans of the operator's log written while a test restarted the API server."""


def forbidden_lines(log: str) -> list[str]:
    """The log's lines saying the API server refused the operator, outside the warm-up spans
    (an API server restarting: its authorizer's cache refills)."""
    for start, end in RBAC_WARMUPS:
        log = log[:start] + " " * (end - start) + log[end:]
    return [line for line in log.splitlines() if "Forbidden" in line]
