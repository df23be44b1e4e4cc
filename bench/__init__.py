"""Benchmarks: ``python -m bench [names...]`` or ``make bench``.

Not timed tests: each module measures one thing with bounded load and returns
tables (:mod:`bench.report`), which are printed and kept in ``bench/results/``
for the README to cite. One module per benchmark, each with
``run() -> list[Table]`` and a docstring that says what it measures and how;
:mod:`bench.servers` starts the servers they (and the integration tests) use.
"""
