"""A container's environment and command line, as a real kubelet builds them.

Pure functions (the API reads come in as a callable), so the rules that pods
rely on can be unit-tested: ``$(VAR)`` expansion is a port of Kubernetes'
``third_party/forked/golang/expansion`` (``$$`` escapes, an unknown or
unclosed reference stays as written), and env entries are resolved in order,
each seeing only the ones before it.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Awaitable, Mapping
from typing import Callable

# (kind, namespace, name) -> the object's ``data`` decoded to text, or None if absent.
ObjectReader = Callable[[str, str, str], Awaitable[Mapping[str, str] | None]]


class ConfigError(Exception):
    """The container cannot be started as specified (kubelet's CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``$(NAME)`` from ``env``; ``$$`` is a literal ``$``."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            if nxt == "$":
                out.append("$")
                cursor += 1
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close < 0:
                    out.append("$(")  # incomplete reference: kept as written
                    cursor += 1
                else:
                    name = text[cursor + 2:close]
                    out.append(env.get(name, f"$({name})"))
                    cursor = close
            else:
                out.append("$" + nxt)
                cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


def field_value(pod: Mapping, path: str) -> str:
    """The value of a downward-API ``fieldRef.fieldPath``, as the kubelet supports them."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(i["ip"] for i in status.get("hostIPs", [])),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(i["ip"] for i in status.get("podIPs", [])),
    }
    if path in simple:
        return simple[path]
    match = _SUBSCRIPT.match(path)
    if match:
        return meta.get(match.group(1), {}).get(match.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = meta.get(path.split(".")[1], {})
        return "\n".join(f'{k}="{v}"' for k, v in sorted(items.items()))
    raise ConfigError(f"unsupported fieldRef.fieldPath {path!r}")


async def _key_ref(ref: Mapping, kind: str, namespace: str, read: ObjectReader) -> str | None:
    data = await read(kind, namespace, ref.get("name", ""))
    optional = ref.get("optional", False)
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref.get('name', '')}")
    return data[ref["key"]]


async def container_env(
    pod: Mapping, container: Mapping, base: Mapping[str, str], read: ObjectReader
) -> dict[str, str]:
    """The process environment: ``base`` (always-set variables), then ``envFrom``, then ``env``."""
    namespace = pod["metadata"]["namespace"]
    env = dict(base)
    for source in container.get("envFrom", []):
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            if key not in source:
                continue
            ref = source[key]
            data = await read(kind, namespace, ref.get("name", ""))
            if data is None and not ref.get("optional", False):
                raise ConfigError(f'{kind} "{ref.get("name", "")}" not found')
            prefix = source.get("prefix", "")
            env.update({prefix + k: v for k, v in (data or {}).items()})
    for var in container.get("env", []):
        source = var.get("valueFrom")
        if source is None:
            value: str | None = expand(var.get("value", ""), env) if var.get("value") else ""
        elif "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in source:
            value = await _key_ref(source["configMapKeyRef"], "configmap", namespace, read)
        elif "secretKeyRef" in source:
            value = await _key_ref(source["secretKeyRef"], "secret", namespace, read)
        else:
            raise ConfigError(f"env {var['name']}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[var["name"]] = value
    return env


def command_line(container: Mapping, env: Mapping[str, str]) -> list[str]:
    """``command`` + ``args`` with ``$(VAR)`` expanded; we never run an image's entrypoint."""
    command = container.get("command") or []
    if not command:
        raise ConfigError(
            f"container {container['name']!r} has no command: the local kubelet runs "
            "a container's command and args as a process and ignores its image"
        )
    return [expand(part, env) for part in (*command, *container.get("args", []))]


def decode_object_data(kind: str, obj: Mapping) -> dict[str, str]:
    """A ConfigMap's ``data`` or a Secret's base64 ``data``, as text."""
    data = obj.get("data") or {}
    if kind == "secret":
        return {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in data.items()}
    return dict(data)


def base_env(pod: Mapping, pod_ip: str, venv_bin: str, inherited: Mapping[str, str] = os.environ) -> dict[str, str]:
    """What every container gets before its own ``env``.

    Only a few harmless variables pass through from the kubelet's environment:
    a real container never sees the node's environment (e.g. ``KUBECONFIG``),
    and a test that passes here must pass on a real cluster.
    """
    meta = pod["metadata"]
    env = {k: inherited[k] for k in ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR") if k in inherited}
    path = inherited.get("PATH", os.defpath)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{path}",
        HOSTNAME=meta["name"],
        POD_IP=pod_ip,
        POD_NAME=meta["name"],
        POD_NAMESPACE=meta["namespace"],
    )
    return env
