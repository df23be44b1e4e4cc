"""Certificates and keys for the local control plane.

A real cluster serves TLS signed by a cluster CA and signs ServiceAccount
tokens with a key of its own; ours does the same, so clients verify the
server (no ``insecure-skip-tls-verify``) and ``kubectl create token`` issues
real ServiceAccount tokens that RBAC tests can use. :class:`Authority` also
issues the client certificates a real node needs (``realnode/pki.py``).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BRIDGE_HOST = "10.88.0.1"  # where a real node's pods reach the API server (realnode/forward.py)
LOOPBACK = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
_SERVICE = (
    x509.DNSName("kubernetes"), x509.DNSName("kubernetes.default"), x509.DNSName("kubernetes.default.svc"),
    x509.IPAddress(ipaddress.ip_address("10.96.0.1")), x509.IPAddress(ipaddress.ip_address(BRIDGE_HOST)),
)


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """Paths of the files the API server and its clients need."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path


def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


class Authority:
    """A CA written to ``folder`` (``ca.crt``, ``ca.key``), issuing certificates valid for 30 days."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name("gctuner-local-ca")
        usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                              key_encipherment=False, data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False)
        cert = self._builder(self._name, self._key.public_key(), ca=True).add_extension(usage, critical=True)
        self.ca = self._write("ca", cert.sign(self._key, hashes.SHA256()), self._key)

    def _builder(self, subject: x509.Name, public_key: Any, *, ca: bool) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.timezone.utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    def _write(self, stem: str, cert: x509.Certificate, key: Any) -> Pair:
        pair = Pair(self.folder / f"{stem}.crt", self.folder / f"{stem}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        pair.key.write_bytes(_pem_key(key))
        pair.key.chmod(0o600)
        return pair

    def issue(self, stem: str, cn: str, org: str | None = None, *, server: bool = False,
              sans: Sequence[x509.GeneralName] = ()) -> Pair:
        """A key and a certificate for a client (``CN=cn, O=org``: user and group), or a server."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(_name(cn, org), key.public_key(), ca=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return self._write(stem, builder.sign(self._key, hashes.SHA256()), key)

    def api_server(self) -> Pki:
        """The API server's serving certificate (loopback, the ``kubernetes`` Service's names, the
        bridge's address) and the ServiceAccount key pair."""
        serving = self.issue("apiserver", "kube-apiserver", server=True, sans=[*LOOPBACK, *_SERVICE])
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_private, sa_public = self.folder / "sa.key", self.folder / "sa.pub"
        sa_private.write_bytes(_pem_key(sa_key))
        sa_private.chmod(0o600)
        sa_public.write_bytes(
            sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        return Pki(self.ca.cert, serving.cert, serving.key, sa_public, sa_private)


def generate(folder: Path) -> Pki:
    """Write a CA, the API server's serving certificate, and a ServiceAccount key pair."""
    return Authority(folder).api_server()
