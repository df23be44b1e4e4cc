"""The local kubelet builds a container's environment and command line as a real kubelet does."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gctuner_localcluster.podenv import (
    ConfigError,
    base_env,
    command_line,
    container_env,
    decode_object_data,
    expand,
    field_value,
)

ENV = {"VAR_A": "A", "VAR_B": "B", "EMPTY": ""}

POD = {
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                 "labels": {"app": "web", "tier": "front"}, "annotations": {"team": "gc"}},
    "spec": {"nodeName": "local", "serviceAccountName": "default"},
    "status": {"podIP": "127.0.1.7", "podIPs": [{"ip": "127.0.1.7"}], "hostIP": "127.0.0.1",
               "hostIPs": [{"ip": "127.0.0.1"}]},
}


# Cases from Kubernetes' third_party/forked/golang/expansion/expand_test.go.
@pytest.mark.parametrize("text, expected", [
    ("$(VAR_A)", "A"),
    ("___$(VAR_B)___", "___B___"),
    ("$(VAR_A)-$(VAR_B)", "A-B"),
    ("$(VAR_A)$(VAR_B)", "AB"),
    ("$(EMPTY)", ""),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$$(VAR_A)", "$(VAR_A)"),
    ("$$$(VAR_A)", "$A"),
    ("$$$$(VAR_A)", "$$(VAR_A)"),
    ("$$", "$"),
    ("$", "$"),
    ("x$", "x$"),
    ("$VAR_A", "$VAR_A"),
    ("$(VAR_A", "$(VAR_A"),
    ("$(", "$("),
    ("$()", "$()"),
    ("$(VAR_$(VAR_A))", "$(VAR_$(VAR_A))"),
    ("--bind=$(VAR_A):80", "--bind=A:80"),
])
def test_expand_matches_kubernetes(text: str, expected: str) -> None:
    assert expand(text, ENV) == expected


@given(st.text())
def test_doubled_dollars_always_read_back_as_written(text: str) -> None:
    assert expand(text.replace("$", "$$"), ENV) == text


@pytest.mark.parametrize("path, expected", [
    ("metadata.name", "web-1"),
    ("metadata.namespace", "shop"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.labels['missing']", ""),
    ("metadata.annotations['team']", "gc"),
    ("metadata.labels", 'app="web"\ntier="front"'),
    ("spec.nodeName", "local"),
    ("status.podIP", "127.0.1.7"),
    ("status.podIPs", "127.0.1.7"),
    ("status.hostIP", "127.0.0.1"),
])
def test_field_refs(path: str, expected: str) -> None:
    assert field_value(POD, path) == expected


def test_unknown_field_ref_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="spec.bogus"):
        field_value(POD, "spec.bogus")


def reader(objects: Mapping[tuple[str, str], Mapping[str, str]]):
    async def read(kind: str, namespace: str, name: str) -> Mapping[str, str] | None:
        assert namespace == "shop"
        return objects.get((kind, name))
    return read


async def test_env_is_resolved_in_order_with_each_entry_seeing_only_earlier_ones() -> None:
    container = {
        "name": "app",
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
        "env": [
            {"name": "LATER_REF", "value": "[$(FIRST)]"},
            {"name": "FIRST", "value": "one"},
            {"name": "SECOND", "value": "$(FIRST)-two $(POD_NAME) $(CFG_level) $$(FIRST)"},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "token"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "NOPE", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": True}}},
            {"name": "BLANK"},
        ],
    }
    read = reader({("secret", "token"): {"token": "s3cret"},
                   ("configmap", "settings"): {"mode": "fast", "level": "3"}})
    env = await container_env(POD, container, {"POD_NAME": "web-1"}, read)
    assert env == {
        "POD_NAME": "web-1", "CFG_mode": "fast", "CFG_level": "3",
        "LATER_REF": "[$(FIRST)]", "FIRST": "one", "SECOND": "one-two web-1 3 $(FIRST)",
        "NAME": "web-1", "TOKEN": "s3cret", "MODE": "fast", "BLANK": "",
    }


@pytest.mark.parametrize("ref, message", [
    ({"secretKeyRef": {"name": "absent", "key": "x"}}, 'secret "absent" not found'),
    ({"configMapKeyRef": {"name": "settings", "key": "nokey"}}, "couldn't find key nokey"),
])
async def test_a_missing_required_reference_stops_the_start(ref: dict, message: str) -> None:
    container = {"name": "app", "env": [{"name": "X", "valueFrom": ref}]}
    with pytest.raises(ConfigError, match=message):
        await container_env(POD, container, {}, reader({("configmap", "settings"): {"mode": "fast"}}))


def test_command_and_args_are_expanded_from_the_final_env() -> None:
    container = {"name": "web", "command": ["python", "-m", "http.server"],
                 "args": ["--bind", "$(POD_IP)", "$(PORT)", "$$(POD_IP)"]}
    argv = command_line(container, {"POD_IP": "127.0.1.7", "PORT": "8080"})
    assert argv == ["python", "-m", "http.server", "--bind", "127.0.1.7", "8080", "$(POD_IP)"]


def test_a_container_without_command_says_why_it_cannot_run() -> None:
    with pytest.raises(ConfigError, match="has no command.*ignores its image"):
        command_line({"name": "web", "image": "nginx", "args": ["-g"]}, {})


def test_base_env_puts_the_venv_first_and_keeps_the_node_environment_out() -> None:
    inherited = {"PATH": "/usr/bin:/bin", "HOME": "/root", "KUBECONFIG": "/admin", "SECRET": "x"}
    env = base_env(POD, "127.0.1.7", "/repo/.venv/bin", inherited)
    assert env == {"PATH": "/repo/.venv/bin:/usr/bin:/bin", "HOME": "/root", "HOSTNAME": "web-1",
                   "POD_IP": "127.0.1.7", "POD_NAME": "web-1", "POD_NAMESPACE": "shop"}


def test_secret_data_is_decoded_and_config_map_data_is_kept() -> None:
    secret = {"data": {"token": base64.b64encode(b"s3cret").decode()}}
    assert decode_object_data("secret", secret) == {"token": "s3cret"}
    assert decode_object_data("configmap", {"data": {"a": "1"}}) == {"a": "1"}
    assert decode_object_data("configmap", {}) == {}
