"""Only Secrets meant for gctuner are ever sent (issue 14, the operator as a confused deputy)."""

from __future__ import annotations

import base64

import pytest

from gctuner.policy import SecretRef
from gctuner_operator.errors import KubeError, SecretNotForGctuner
from gctuner_operator.kube import TOKEN_LABEL, token_from

REF = SecretRef("gctuner-token", "token")
DATA = {"token": base64.b64encode(b"s3cret-value\n").decode()}


def test_a_labelled_opaque_secret_gives_its_token() -> None:
    assert token_from("shop", REF, {TOKEN_LABEL: "true"}, "Opaque", DATA) == "s3cret-value"


@pytest.mark.parametrize("labels", [None, {}, {TOKEN_LABEL: "false"}, {TOKEN_LABEL: "True"}, {"app": "db"}])
def test_an_unlabelled_secret_is_refused_for_good_and_never_shown(labels: dict[str, str] | None) -> None:
    with pytest.raises(SecretNotForGctuner) as refused:
        token_from("shop", SecretRef("db-password", "token"), labels, "Opaque", DATA)
    error = refused.value
    assert (error.reason, error.retryable) == ("SecretNotForGctuner", False)
    assert "shop/db-password is not meant for gctuner" in error.message
    assert "kubectl label secret db-password -n shop gctuner.dev/token=true" in error.message
    assert "s3cret" not in str(error)


def test_a_service_account_token_is_refused_even_when_labelled() -> None:
    """Someone who may only create Secrets could make one the token controller fills in."""
    with pytest.raises(SecretNotForGctuner) as refused:
        token_from("shop", REF, {TOKEN_LABEL: "true"}, "kubernetes.io/service-account-token", DATA)
    assert "kubernetes.io/service-account-token" in refused.value.message and not refused.value.retryable


def test_a_missing_key_is_still_an_api_error() -> None:
    with pytest.raises(KubeError) as missing:
        token_from("shop", SecretRef("gctuner-token", "other"), {TOKEN_LABEL: "true"}, "Opaque", DATA)
    assert not missing.value.retryable
