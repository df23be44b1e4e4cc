"""The gctuner operator: pushes GCPolicy settings to opted-in pods.

``kopf run -m gctuner_operator`` (or the ``gctuner-operator`` script)
imports this package, which registers the handlers of ``handlers``.
"""

from . import handlers

__all__ = ["handlers"]
