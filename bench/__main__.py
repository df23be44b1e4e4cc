"""``python -m bench [names...]``: run the benchmarks named (all by default), in order.

Each prints its tables and writes ``bench/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import signal
import sys
import time

from . import report

BENCHMARKS = ("agent_overhead", "pause_cost", "propagation", "convergence", "footprint",
              "reference_workload", "autopilot")
"""Every benchmark, as the name of its module in this package."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"one of {', '.join(BENCHMARKS)} (default: all)")  # fmt: skip
    names = parser.parse_args(argv).names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"no benchmark named {unknown[0]!r}; the benchmarks are {', '.join(BENCHMARKS)}")
    # Servers and clusters run in their own sessions and are stopped by the
    # benchmarks' ``with`` blocks: make SIGTERM (``timeout`` in ``make bench``)
    # unwind them like Ctrl-C, instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    for name in names:
        module = importlib.import_module(f"{__package__}.{name}")
        started, began = report.machine(), time.monotonic()
        print(f"==> {name}", flush=True)
        tables = module.run()
        # The module's docstring says what is measured and how: it heads the results.
        report.publish(name, inspect.cleandoc(module.__doc__ or ""), tables, started)
        print(f"==> {name}: {time.monotonic() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
