"""kubesim's own PKI and kubeconfig: a throw-away CA, a serving certificate, a bearer token.

Kept inside kubesim on purpose (kubesim imports nothing of zen-flow). The CA certificate is
embedded in the kubeconfig as ``certificate-authority-data`` so kubectl and the official client
verify TLS for real; the serving certificate covers ``localhost``, ``127.0.0.1`` and ``::1`` plus
the host the server binds. Files are written with mode 0600 (the key and the kubeconfig hold
secrets).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERT_VALIDITY = dt.timedelta(days=365)
CLOCK_SKEW = dt.timedelta(minutes=5)  # backdate notBefore so a slightly skewed client accepts it


@dataclass(frozen=True)
class Pki:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_pki(hosts: list[str]) -> Pki:
    now = dt.datetime.now(dt.UTC) - CLOCK_SKEW
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kubesim-ca"))
        .issuer_name(_name("kubesim-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys(["localhost", "127.0.0.1", "::1", *hosts]):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kubesim"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Pki(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_private(path: Path, data: bytes | str) -> None:
    """Write a file readable by its owner only (created 0600, never world-readable in between)."""
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.chmod(path, 0o600)


def kubeconfig_yaml(
    *,
    url: str,
    ca_pem: bytes,
    token: str,
    name: str = "kubesim",
    namespace: str = "default",
    users: Mapping[str, str] | None = None,
) -> str:
    """The kubeconfig: the admin context ``name`` (current), and one context per entry of
    ``users`` (user name -> token), named after the user, on the same cluster."""
    ca_b64 = base64.b64encode(ca_pem).decode()
    others = dict(users or {})
    entries = [(name, f"{name}-admin", token), *((u, u, t) for u, t in others.items())]
    # written by hand (not yaml.dump) to keep the layout kubectl users recognise; user names
    # are quoted (JSON is YAML) since they may hold ':' (system:serviceaccount:...)
    q = json.dumps
    return (
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        f"- name: {name}\n"
        "  cluster:\n"
        f"    server: {url}\n"
        f"    certificate-authority-data: {ca_b64}\n"
        "users:\n"
        + "".join(f"- name: {q(user)}\n  user:\n    token: {q(tok)}\n" for _, user, tok in entries)
        + "contexts:\n"
        + "".join(
            f"- name: {q(ctx)}\n  context:\n    cluster: {name}\n    user: {q(user)}\n"
            f"    namespace: {namespace}\n"
            for ctx, user, _ in entries
        )
        + f"current-context: {name}\n"
    )
