"""The interpreter's garbage collector, behind one small object.

``GCRuntime`` is the only place that calls ``gc.set_threshold``, ``gc.freeze``
and friends. The ``gc`` module is injected, so tests pass a fake instead of
changing the collector of the test process.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import sys
import sysconfig
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from gctuner.core.settings import Settings

INCREMENTAL_RELEASES = ((3, 14, 0), (3, 14, 5))
"""CPython releases whose default build runs the incremental collector: it
shipped in 3.14.0 and was reverted to the generational one in 3.14.5 (as 3.13
had done before its release)."""


@dataclasses.dataclass(frozen=True)
class Flavour:
    """Which collector this interpreter runs, and which thresholds it honours.

    Reported as data so that a client can tell "applied" from "has an effect":
    a free-threaded build accepts three thresholds and uses one.
    """

    name: str
    honoured: tuple[bool, bool, bool]
    note: str
    heap_scaled: bool = False
    """threshold0 is scaled up with the live heap unless threshold1 is 0."""

    rss_gated: bool = False
    """A due collection is skipped while the process's RSS has not grown 10 %."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "honoured": list(self.honoured), "note": self.note}


GENERATIONAL = Flavour(
    "generational",
    (True, True, True),
    "three generations; every threshold is honoured",
)
INCREMENTAL = Flavour(
    "incremental",
    (True, True, False),
    "young and old generation, the old one scanned in increments: threshold1 "
    "sets how slowly the old generation is scanned, threshold2 is ignored",
)
FREE_THREADED = Flavour(
    "free-threaded",
    (True, True, False),
    "free-threaded build, one non-generational collector: threshold0 is scaled "
    "up with the live heap, threshold1 = 0 switches that scaling off, threshold2 "
    "is ignored",
    heap_scaled=True,
)
FREE_THREADED_RSS_GATED = dataclasses.replace(
    FREE_THREADED,
    note=FREE_THREADED.note + "; a due collection is skipped while the process's "
    "RSS has not grown 10 % since the last one",
    rss_gated=True,
)
FREE_THREADED_RSS_GATE_SINCE = (3, 14)
"""Free-threaded releases that gate collections on RSS growth."""


def detect_flavour(version_info: Sequence[Any], free_threaded: bool) -> Flavour:
    """The collector of an interpreter of this version and build."""
    if free_threaded:
        gated = tuple(version_info[:2]) >= FREE_THREADED_RSS_GATE_SINCE
        return FREE_THREADED_RSS_GATED if gated else FREE_THREADED
    first, after_last = INCREMENTAL_RELEASES
    if first <= tuple(version_info[:3]) < after_last:
        return INCREMENTAL
    return GENERATIONAL


def is_free_threaded() -> bool:
    """True on a free-threaded build, whether or not the GIL was re-enabled.

    The build decides the collector; ``PYTHON_GIL=1`` does not bring the
    generational one back.
    """
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED")) or not gil_enabled()


class GCRuntime:
    """Apply, restore and report the collector settings of this process.

    The startup defaults are captured at construction, so build one early
    (the process-wide one is made at the first use of the agent). They are the
    process's own: 3.13 starts at (2000, 10, 10), older versions at (700, 10, 10),
    and an app that set its own thresholds at import keeps those on restore.
    """

    def __init__(
        self,
        gc_module: ModuleType | Any = gc,
        *,
        version_info: Sequence[Any] = sys.version_info,
        free_threaded: bool | None = None,
    ) -> None:
        self._gc = gc_module
        self._python = ".".join(str(part) for part in version_info[:3])
        if free_threaded is None:
            free_threaded = is_free_threaded()
        self.flavour = detect_flavour(version_info, free_threaded)
        self.defaults: tuple[int, ...] = tuple(gc_module.get_threshold())
        self._froze = False
        self._frozen_before: int = 0
        """Objects already frozen (by the app, by ``GCTUNER_FREEZE_AFTER_PRELOAD``
        in gunicorn's master) when we first froze: ours cannot be told from them."""

    def thresholds(self) -> tuple[int, ...]:
        """The thresholds in force now (cheap: the follower polls it)."""
        return tuple(self._gc.get_threshold())

    def frozen(self) -> int:
        """Objects in the permanent generation.

        Not cheap on every version (CPython counts the list), so it is read
        when something changed, never in a polling loop.
        """
        return int(self._gc.get_freeze_count())

    def apply(self, settings: Settings) -> None:
        """Set the thresholds, then freeze. Those left out are the startup
        defaults', so what a process runs depends on the settings alone, never
        on which earlier ones it happened to apply (a follower that skipped a
        generation runs what the others run)."""
        given = tuple(settings.thresholds)
        self._gc.set_threshold(*given, *self.defaults[len(given):])
        if settings.freeze:
            if not self._froze:
                self._frozen_before = self.frozen()
            self._gc.freeze()
            self._froze = True

    def collect(self) -> None:
        """A full collection now: the autopilot near its memory budget."""
        self._gc.collect()

    def restore(self) -> None:
        """Back to the startup thresholds; never unfreeze what the app froze.

        ``gc.unfreeze`` unfreezes everything, ours and the app's alike. So it is
        called only if nothing was frozen before our first freeze; if the app
        (or gunicorn's master under ``GCTUNER_FREEZE_AFTER_PRELOAD``) had frozen
        objects already, everything stays frozen, ours included, and the
        process's ``frozen`` count says so. ``freeze: false`` never unfreezes.
        """
        self._gc.set_threshold(*self.defaults)
        if self._froze:
            if self._frozen_before == 0:
                self._gc.unfreeze()
            self._froze = False

    def snapshot(self) -> dict[str, Any]:
        """Everything a client needs to see what this process's collector does."""
        return {
            "pid": os.getpid(),
            "python": self._python,
            "flavour": self.flavour.to_json(),
            "thresholds": list(self.thresholds()),
            "defaults": list(self.defaults),
            "counts": list(self._gc.get_count()),
            "frozen": self.frozen(),
            "stats": self.stats(),
        }

    def stats(self) -> list[dict[str, int]]:
        """Collections, collected and uncollectable objects per generation
        since the interpreter started (``gc.get_stats``)."""
        return [dict(stats) for stats in self._gc.get_stats()]
