"""Certificates for a control plane with a real node.

One CA signs: the API server's serving certificate; client certificates for
the kubelet (``system:node:127.0.0.1`` in ``system:nodes``, so the Node
authorizer and NodeRestriction apply), for the controller-manager and the
scheduler (their own users, bound by the default RBAC policy), and for the
API server when it calls the kubelet (logs, exec); and the kubelet's serving
certificate for 127.0.0.1, which the API server verifies.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NODE_NAME = "127.0.0.1"
BRIDGE_HOST = "10.88.0.1"  # where pods reach the API server (forward.py)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class NodePki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path  # the API server's
    serving_key: Path
    sa_public: Path
    sa_private: Path
    kubelet_client: Pair  # the kubelet -> API server
    kubelet_serving: Pair  # the kubelet's own port
    apiserver_kubelet_client: Pair  # API server -> kubelet
    controller_manager: Pair
    scheduler: Pair


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _sign(subject: x509.Name, public_key, ca_name: x509.Name, ca_key, *, ca=False, usages=(), sans=()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate(folder: Path) -> NodePki:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("gctuner-local-ca")
    ca_cert = _sign(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)

    def write(stem: str, cert, key) -> Pair:
        pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_pem_key(key))
        pair.key.chmod(0o600)
        return pair

    def issue(stem: str, cn: str, org: str | None = None, *, server=False, sans=()) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = _sign(_name(cn, org), key.public_key(), ca_name, ca_key, usages=[usage], sans=sans)
        return write(stem, cert, key)

    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    ca = write("ca", ca_cert, ca_key)
    serving = issue("apiserver", "kube-apiserver", server=True,
                    sans=[*loopback, x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"),
                          x509.DNSName("kubernetes.default.svc"), x509.IPAddress(ipaddress.ip_address("10.96.0.1")),
                          x509.IPAddress(ipaddress.ip_address(BRIDGE_HOST))])
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "sa.key").write_bytes(_pem_key(sa_key))
    (folder / "sa.key").chmod(0o600)
    (folder / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return NodePki(
        ca_cert=ca.cert,
        ca_key=ca.key,
        serving_cert=serving.cert,
        serving_key=serving.key,
        sa_public=folder / "sa.pub",
        sa_private=folder / "sa.key",
        kubelet_client=issue("kubelet-client", f"system:node:{NODE_NAME}", "system:nodes"),
        kubelet_serving=issue("kubelet-serving", NODE_NAME, server=True, sans=loopback),
        apiserver_kubelet_client=issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        controller_manager=issue("controller-manager", "system:kube-controller-manager"),
        scheduler=issue("scheduler", "system:kube-scheduler"),
    )


def kubeconfig(path: Path, server: str, ca: Path, pair: Pair, user: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: local\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\n"
        f"users:\n- name: {user}\n  user:\n    client-certificate: {pair.cert}\n    client-key: {pair.key}\n"
        f"contexts:\n- name: {user}@local\n  context:\n    cluster: local\n    user: {user}\n"
        f"current-context: {user}@local\n"
    )
    path.chmod(0o600)
    return path
