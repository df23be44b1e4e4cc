"""Tables of results: printed as markdown and kept in ``bench/results/``.

Each benchmark returns :class:`Table` objects; :func:`publish` prints them and
writes ``results/<name>.md`` (for the README to cite) and ``results/<name>.json``
(the raw numbers, for plots and comparisons between runs). Both record the
machine and its load average, because a figure means little without them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results")


@dataclasses.dataclass(frozen=True)
class Table:
    """One table: formatted ``rows`` for reading, ``raw`` measurements for the JSON."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: tuple[str, ...] = ()
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", _row(self.columns), _row(("---",) * len(self.columns))]
        lines += [_row(row) for row in self.rows]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def machine() -> dict[str, Any]:
    """What the figures were measured on, including how busy it was."""
    return {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
    }


def publish(name: str, summary: str, tables: list[Table], started: dict[str, Any]) -> None:
    """Print the tables under a header and write ``results/<name>.{md,json}``;
    ``started`` is :func:`machine` taken before the benchmark ran."""
    finished = machine()
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    header = (
        f"Measured {when} on {started['cpus']} CPUs ({started['platform']}), "
        f"CPython {started['python']}; load average {started['load_average_1m']} "
        f"before, {finished['load_average_1m']} after."
    )
    text = "\n\n".join([f"## {name}", summary, header, *(t.markdown() for t in tables)]) + "\n"
    print(text, flush=True)
    data = {
        "benchmark": name,
        "time": when,
        "machine": {"before": started, "after": finished},
        "tables": [dataclasses.asdict(table) for table in tables],
    }
    RESULTS.mkdir(exist_ok=True)
    _write(RESULTS / f"{name}.md", text)
    _write(RESULTS / f"{name}.json", json.dumps(data, indent=1) + "\n")


def _write(path: Path, text: str) -> None:
    """Replace ``path`` whole: an interrupted run leaves the last complete result."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def spread(values: Sequence[float], digits: int = 0) -> str:
    """``mean ± standard deviation``, the form every table uses for repeats."""
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {deviation:.{digits}f}"


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (no interpolation: a value that was measured)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]
