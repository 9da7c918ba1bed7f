"""A tiny certificate authority for the webhook's serving certificate, built on `cryptography`.

The API server verifies the webhook against the `caBundle` in the webhook configuration and the
host name it dials (the URL host, or `<service>.<namespace>.svc`), so the serving certificate
carries every DNS name and IP the webhook is reached by as subjectAltNames; the common name is
informational only (Go's TLS stack ignores it).

Key type: ECDSA P-256. It is accepted by Go's crypto/tls (the real API server), by OpenSSL and by
every Kubernetes tool, and it is ~50x faster to generate than RSA-2048, which keeps tests fast.
Lifetimes: the CA ten years, the serving certificate one year; a backdated `not_valid_before`
absorbs small clock skew between the issuer and the API server.

Invariants: private keys are written with mode 0600 and every file is replaced atomically
(written beside the target, then `os.replace`), so a process that watches the files (see
`certs.rotation`) never reads a half-written certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_LIFETIME = datetime.timedelta(days=3650)  # long-lived: rotating it means re-registering caBundle
SERVING_LIFETIME = datetime.timedelta(days=365)  # re-issued by `zen-flow certs` or cert-manager
CLOCK_SKEW = datetime.timedelta(minutes=5)  # backdate so a slightly slow peer clock still accepts

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


class CertificateError(ValueError):
    """A user-supplied name, address or file that cannot make a certificate (one clear line)."""


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key, both as PEM bytes."""

    cert_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def serial_number(self) -> int:
        return self.certificate.serial_number


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _key_usage(*, is_ca: bool) -> x509.KeyUsage:
    """ECDSA keys sign (TLS handshakes, certificates); only the CA signs certificates and CRLs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def create_ca(
    common_name: str = "zen-flow-webhook-ca", *, lifetime: datetime.timedelta = CA_LIFETIME
) -> Issued:
    """A self-signed CA that may sign leaf certificates only (pathLen 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(is_ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _parse_ips(ip_addresses: Sequence[str]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    parsed = []
    for text in ip_addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            raise CertificateError(f"--ip {text!r} is not an IP address (e.g. 127.0.0.1)") from None
    return parsed


def _check_dns(dns_names: Sequence[str]) -> None:
    for dns in dns_names:
        labels = dns.split(".")
        ok = (
            bool(dns)
            and len(dns) <= 253
            and all(
                0 < len(label) <= 63
                and (label.replace("-", "").isalnum() or label == "*")
                and label.isascii()
                and not label.startswith("-")
                and not label.endswith("-")
                for label in labels
            )
        )
        if not ok:
            raise CertificateError(
                f"--dns {dns!r} is not a DNS name (e.g. zen-flow-webhook.zen-flow.svc)"
            )


def issue_serving(
    ca: Issued,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    lifetime: datetime.timedelta = SERVING_LIFETIME,
) -> Issued:
    """A TLS server certificate signed by ``ca`` for every given DNS name and IP address."""
    if not dns_names and not ip_addresses:
        raise CertificateError(
            "a serving certificate needs at least one --dns name or --ip address"
        )
    _check_dns(dns_names)
    ips = _parse_ips(ip_addresses)
    ca_cert = ca.certificate
    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise CertificateError(
            "the CA key is not an ECDSA key; recreate the CA with `zen-flow certs`"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = dns_names[0] if dns_names else str(ips[0])
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    sans += [x509.IPAddress(ip) for ip in ips]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(is_ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` in one step; the file never exists with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_ca(directory: Path) -> Issued | None:
    """The CA kept in ``directory`` (ca.crt + ca.key), or None when either file is missing."""
    cert, key = directory / CA_CERT_FILE, directory / CA_KEY_FILE
    if not (cert.is_file() and key.is_file()):
        return None
    issued = Issued(cert.read_bytes(), key.read_bytes())
    try:
        issued.certificate  # noqa: B018 - parse now so a corrupt file is one clear error
    except ValueError:
        raise CertificateError(
            f"{cert} is not a PEM certificate; remove it to create a new CA"
        ) from None
    return issued


def write_bundle(
    directory: Path,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    keep_ca_key: bool = False,
) -> tuple[Issued, Issued]:
    """Write ca.crt, tls.crt and tls.key (0600) to ``directory``; returns (ca, serving).

    A CA already kept in the directory (ca.crt + ca.key) is reused, so re-running re-issues the
    serving certificate without changing the caBundle the API server trusts. ``keep_ca_key``
    writes ca.key (0600) so a later run can do that.
    """
    ca = load_ca(directory)
    if ca is None:
        ca = create_ca()
    serving = issue_serving(ca, dns_names=dns_names, ip_addresses=ip_addresses)
    write_atomic(directory / CA_CERT_FILE, ca.cert_pem, mode=PUBLIC_MODE)
    if keep_ca_key:
        write_atomic(directory / CA_KEY_FILE, ca.key_pem, mode=PRIVATE_MODE)
    # Key before certificate: a watcher that sees the new certificate finds its key already there.
    write_atomic(directory / KEY_FILE, serving.key_pem, mode=PRIVATE_MODE)
    write_atomic(directory / CERT_FILE, serving.cert_pem, mode=PUBLIC_MODE)
    return ca, serving
