"""One tree of errors, translated at the client boundaries (``agent_client``, ``kube``).

Each carries a one-word ``reason`` (it lands in ``status.failures`` and in
Events), a ``message`` a person reads, and whether trying again soon can
help: a timeout or a 5xx may pass, a 4xx (bad settings, a wrong token, a
refused spec) will not until something changes, so it is retried only at
the longest backoff or on the next change.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Something the operator asked for did not happen."""

    def __init__(self, reason: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.retryable = retryable


class AgentError(OperatorError):
    """A push, read or restore at a pod's agent that did not succeed."""


class KubeError(OperatorError):
    """A Kubernetes API call that failed for a reason other than the object being gone."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__("APIError", message, retryable=retryable)


class InvalidSpec(OperatorError):
    """The governing policy's spec is one that every agent would refuse: nothing is pushed."""

    def __init__(self, message: str) -> None:
        super().__init__("InvalidSpec", message, retryable=False)


class SecretNotForGctuner(OperatorError):
    """The policy names a Secret not marked as a gctuner token: nothing is read from it, nothing is sent.

    Whoever may create a policy and a pod, but not read Secrets, must never get
    one through the operator: only Secrets labelled ``gctuner.dev/token: "true"``
    (which only someone who may write, hence read, the Secret can add) are sent.
    """

    def __init__(self, message: str) -> None:
        super().__init__("SecretNotForGctuner", message, retryable=False)
