"""gctuner: tune CPython's garbage collector at runtime, in every process of a pod.

The public surface is what the documentation names; the rest lives in the
subpackages and the adapters' own modules, so that importing ``gctuner``
imports no web framework nor prometheus_client:

- ``gctuner.flask.GCTuner``, ``gctuner.wsgi.GCTunerMiddleware``,
  ``gctuner.asgi.GCTunerMiddleware``, the ``gctuner.gunicorn`` hooks and
  ``gctuner.metrics.GCCollector``: an app opts in;
- :func:`follow` / :func:`follow_config`: this process follows the shared
  state without serving the endpoint (what the sidecar's ``sitecustomize``
  does); :func:`step_aside`: a server's master stops counting;
- :class:`Config`: the options every adapter takes, by field name;
- ``gctuner.testing``: stand-ins for the tests of an app;
- the pieces an adapter is built from: ``gctuner.api`` (the endpoint as data),
  ``gctuner.pod`` (every process of a pod), ``gctuner.core`` (one process);
- the ``gctuner`` command: ``gctuner.cli.main``.
"""

from __future__ import annotations

from gctuner.core.config import Config
from gctuner.pod.agent import follow, follow_config, step_aside

__all__ = ["Config", "follow", "follow_config", "step_aside"]
