"""certs.authority and certs.rotation: what the API server needs from the webhook certificate.

Covers: the CA is a CA (pathLen 0) and signs the serving certificate; the serving certificate
carries every DNS name and IP as subjectAltNames, is for serverAuth, uses ECDSA P-256, and
expires within the CA; bad names and addresses are one-line errors; write_bundle writes
ca.crt/tls.crt/tls.key with the key at 0600, reuses a kept CA, and replaces files atomically;
ReloadingTLS loads a pair, ignores unchanged files, picks up a rotated pair and keeps serving the
old one while the new pair does not match.
"""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import authority, rotation


@pytest.fixture(scope="module")
def ca() -> authority.Issued:
    return authority.create_ca()


def test_ca_is_a_leaf_only_ca(ca: authority.Issued) -> None:
    cert = ca.certificate
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert constraints.path_length == 0
    assert cert.issuer == cert.subject


def test_serving_certificate_names_every_host(ca: authority.Issued) -> None:
    serving = authority.issue_serving(
        ca,
        dns_names=["zen-flow-webhook.zen-flow.svc", "localhost"],
        ip_addresses=["127.0.0.1", "::1"],
    )
    cert = serving.certificate
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["zen-flow-webhook.zen-flow.svc", "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.issuer == ca.certificate.subject
    assert cert.not_valid_after_utc <= ca.certificate.not_valid_after_utc
    ca.certificate.public_key().verify(  # type: ignore[call-arg]
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
    )


def test_each_certificate_has_its_own_serial(ca: authority.Issued) -> None:
    first = authority.issue_serving(ca, dns_names=["a.example"])
    second = authority.issue_serving(ca, dns_names=["a.example"])
    assert first.serial_number != second.serial_number


@pytest.mark.parametrize(
    ("dns", "ips", "expected"),
    [
        ([], [], "at least one"),
        (["bad_name"], [], "--dns 'bad_name' is not a DNS name"),
        (["-lead.example"], [], "is not a DNS name"),
        (["ok.example"], ["300.1.1.1"], "--ip '300.1.1.1' is not an IP address"),
    ],
)
def test_bad_names_are_one_line_errors(
    ca: authority.Issued, dns: list[str], ips: list[str], expected: str
) -> None:
    with pytest.raises(authority.CertificateError, match=expected) as info:
        authority.issue_serving(ca, dns_names=dns, ip_addresses=ips)
    assert "\n" not in str(info.value)


def test_write_bundle_modes_and_ca_reuse(tmp_path: Path) -> None:
    ca, serving = authority.write_bundle(tmp_path, dns_names=["localhost"], keep_ca_key=True)
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600
    assert (tmp_path / "tls.crt").read_bytes() == serving.cert_pem
    assert (tmp_path / "ca.crt").read_bytes() == ca.cert_pem
    again_ca, again = authority.write_bundle(tmp_path, dns_names=["localhost"])
    assert again_ca.cert_pem == ca.cert_pem  # the caBundle stays valid
    assert again.serial_number != serving.serial_number
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "ca.key", "tls.crt", "tls.key"]


def test_without_kept_key_a_new_ca_is_made(tmp_path: Path) -> None:
    ca, _ = authority.write_bundle(tmp_path, dns_names=["localhost"])
    assert not (tmp_path / "ca.key").exists()
    ca2, _ = authority.write_bundle(tmp_path, dns_names=["localhost"])
    assert ca2.cert_pem != ca.cert_pem


def test_reloader_follows_rotation_and_rejects_mismatched_pairs(tmp_path: Path) -> None:
    _, first = authority.write_bundle(tmp_path, dns_names=["localhost"], keep_ca_key=True)
    tls = rotation.ReloadingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")
    tls.load()
    assert tls.serial_number == first.serial_number
    assert tls.reload_if_changed() is False  # nothing changed

    ca = authority.load_ca(tmp_path)
    assert ca is not None
    other = authority.issue_serving(ca, dns_names=["localhost"])
    # A certificate whose key has not arrived yet: keep serving the old pair.
    authority.write_atomic(tmp_path / "tls.crt", other.cert_pem, mode=0o644)
    assert tls.reload_if_changed() is False
    assert tls.serial_number == first.serial_number
    authority.write_atomic(tmp_path / "tls.key", other.key_pem, mode=0o600)
    assert tls.reload_if_changed() is True
    assert tls.serial_number == other.serial_number


def test_missing_files_are_a_load_error(tmp_path: Path) -> None:
    tls = rotation.ReloadingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")
    with pytest.raises(rotation.TLSLoadError, match=r"tls\.crt"):
        tls.load()
    assert not tls.is_loaded


def test_reloader_follows_a_kubelet_secret_volume_swap(tmp_path: Path) -> None:
    """The kubelet projects a Secret as tls.crt -> ..data/tls.crt and swaps the ..data symlink
    to a new timestamped directory in one rename; the files' own paths never change."""
    ca = authority.create_ca()

    def project(version: str) -> authority.Issued:
        issued = authority.issue_serving(ca, dns_names=["localhost"])
        target = tmp_path / version
        target.mkdir()
        (target / "tls.crt").write_bytes(issued.cert_pem)
        (target / "tls.key").write_bytes(issued.key_pem)
        link = tmp_path / "..data_tmp"
        link.symlink_to(version)
        link.replace(tmp_path / "..data")  # atomic, as the kubelet's AtomicWriter does
        return issued

    first = project("..2026_01_01")
    for name in ("tls.crt", "tls.key"):
        (tmp_path / name).symlink_to(f"..data/{name}")
    tls = rotation.ReloadingTLS(tmp_path / "tls.crt", tmp_path / "tls.key")
    tls.load()
    assert tls.serial_number == first.serial_number
    second = project("..2026_02_01")
    assert tls.reload_if_changed() is True
    assert tls.serial_number == second.serial_number
