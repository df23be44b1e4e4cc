"""The autopilot's decisions, as plain data and functions.

``mode: Auto``: no thresholds are given, only a goal; one process per pod
(elected in :mod:`gctuner.pod.pilot`) steers the pod's thresholds towards it.
This package holds what that process computes, and nothing that runs by
itself: the goal (:mod:`.goal`), the container's memory (:mod:`.memory`),
the GC time measured from every process's records (:mod:`.telemetry`) and the
decision (:mod:`.decide`). No threads, no files written, no ``gc`` calls.
"""
