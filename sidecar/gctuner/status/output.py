"""``gctuner status -o``: kubectl's output formats. No I/O here.

``table`` (the default, also spelled as kubectl does: no ``-o``), ``wide``
(the pods' table with their IP, Python and collector flavour after the name),
``json``, and ``yaml`` (the same data as ``json``, written without a
third-party library: the agent package imports nothing outside the standard
library).
"""

from __future__ import annotations

import json
import re
from typing import Any

from gctuner.status.report import Report
from gctuner.status.table import render

FORMATS = ("table", "wide", "json", "yaml")


def format_report(report: Report, output: str, all_namespaces: bool) -> str:
    if output == "json":
        return json.dumps(report.to_json(), indent=2)
    if output == "yaml":
        return to_yaml(report.to_json()).rstrip("\n")
    text = render(report, all_namespaces)
    return wide(report, text) if output == "wide" and report.pods else text


def wide(report: Report, text: str) -> str:
    """``text`` (as :func:`render` wrote it) with IP, PYTHON and FLAVOUR after each pod's name."""
    head, _, pods = text.rpartition("\n\n")
    lines = pods.splitlines()
    columns = len(lines[0].split())
    rows = [line.split(None, columns - 1) for line in lines]
    at = rows[0].index("POD") + 1
    extra = [["IP", "PYTHON", "FLAVOUR"]] + [[p.ip or "-", p.python or "-", p.flavour or "-"] for p in report.pods]
    rows = [row[:at] + more + row[at:] for row, more in zip(rows, extra)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
    return f"{head}\n\n{table}" if head else table


_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./-]*$")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML of JSON data; strings that could read as anything else are quoted."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for key, item in value.items():
            if _is_scalar(item) or item in ({}, []):
                out.append(f"{pad}{_scalar(str(key))}: {_scalar(item)}\n")
            else:
                out.append(f"{pad}{_scalar(str(key))}:\n{to_yaml(item, indent + 2)}")
        return "".join(out)
    if isinstance(value, list):
        if not value:
            return pad + "[]\n"
        out = []
        for item in value:
            if _is_scalar(item) or item in ({}, []):
                out.append(f"{pad}- {_scalar(item)}\n")
            else:
                nested = to_yaml(item, indent + 2)
                out.append(f"{pad}- {nested[indent + 2:]}")
        return "".join(out)
    return pad + _scalar(value) + "\n"


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (dict, list))


def _scalar(value: Any) -> str:
    if value == {}:
        return "{}"
    if value == []:
        return "[]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _RESERVED:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar
