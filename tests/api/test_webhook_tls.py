"""The real `serve` servers (uvicorn) over TLS with certificates from certs/.

Covers: a review over HTTPS verified against the generated CA (by IP, as the API server dials a
url clientConfig, so no SNI is sent); TLS 1.2 is the floor (a TLS 1.1-only client is refused);
a rotated certificate (same files, same CA) is served to new connections without a restart (the
client sees the new serial; the port and process are unchanged) and a broken rotation keeps the
old pair in service; /healthz, /readyz and /metrics on the plain-HTTP port; a clean stop;
accepted connections have TCP_NODELAY (no 40 ms Nagle/delayed-ACK wait per answer).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import warnings

import httpx
import pytest
from cryptography import x509

from app import serve
from tests.fixtures.webhook import CertBundle, jobflow, review
from tests.waiting import eventually


def peer_serial(port: int, ca_pem: bytes, *, maximum: ssl.TLSVersion | None = None) -> int:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if maximum is not None:
        with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point here
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            context.maximum_version = maximum
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def test_review_over_tls_and_rotation_without_restart(
    webhook_server: serve.RunningServers, webhook_certs: CertBundle
) -> None:
    port = webhook_server.servers.webhook_port
    verify = ssl.create_default_context(cadata=webhook_certs.ca_pem.decode())
    with httpx.Client(verify=verify, timeout=5) as client:
        answer = client.post(
            f"{webhook_server.webhook_url}/validate", json=review(jobflow(), uid="tls-1")
        )
        assert answer.status_code == 200
        assert answer.json()["response"] == {"uid": "tls-1", "allowed": True}
    assert peer_serial(port, webhook_certs.ca_pem) == webhook_certs.serving.serial_number

    rotated = webhook_certs.rotate()
    eventually(
        lambda: peer_serial(port, webhook_certs.ca_pem) == rotated.serial_number,
        timeout=10,
        message="the rotated certificate is served",
    )
    assert webhook_server.servers.webhook_port == port
    with httpx.Client(verify=verify, timeout=5) as client:  # a new connection, new certificate
        answer = client.post(
            f"{webhook_server.webhook_url}/mutate", json=review(jobflow(), uid="tls-2")
        )
        assert answer.json()["response"]["uid"] == "tls-2"

    # A half-finished rotation (certificate without its key) keeps the last good pair.
    (webhook_certs.directory / "tls.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    with pytest.raises(AssertionError):
        eventually(
            lambda: webhook_server.servers.tls.serial_number != rotated.serial_number, timeout=0.5
        )
    assert peer_serial(port, webhook_certs.ca_pem) == rotated.serial_number


def test_tls_below_1_2_is_refused(
    webhook_server: serve.RunningServers, webhook_certs: CertBundle
) -> None:
    port = webhook_server.servers.webhook_port
    context = webhook_server.servers.tls.server_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        peer_serial(port, webhook_certs.ca_pem, maximum=ssl.TLSVersion.TLSv1_1)
    assert peer_serial(port, webhook_certs.ca_pem, maximum=ssl.TLSVersion.TLSv1_2) == (
        webhook_certs.serving.serial_number
    )


def test_probes_and_metrics_over_http(
    webhook_server: serve.RunningServers, webhook_certs: CertBundle
) -> None:
    verify = ssl.create_default_context(cadata=webhook_certs.ca_pem.decode())
    with httpx.Client(verify=verify, timeout=5) as client:
        client.post(f"{webhook_server.webhook_url}/validate", json=review(jobflow()))
    with httpx.Client(base_url=webhook_server.ops_url, timeout=5) as ops:
        assert ops.get("/healthz").json() == {"status": "ok"}
        ready = ops.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"certificate": True, "serving": True}
        metrics = ops.get("/metrics").text
    assert (
        'zenflow_admission_reviews_total{operation="CREATE",result="allowed",'
        'webhook="validate"} 1.0'
    ) in metrics


@pytest.mark.parametrize("face", ["webhook", "ops"])
def test_connections_send_without_nagle_delay(
    webhook_server: serve.RunningServers, webhook_certs: CertBundle, face: str
) -> None:
    # With Nagle on, every answer waited ~40 ms for the client's delayed ACK (webhook and probes).
    servers = webhook_server.servers
    port = servers.webhook_port if face == "webhook" else servers.metrics_port
    server = servers.webhook if face == "webhook" else servers.ops
    context = ssl.create_default_context(cadata=webhook_certs.ca_pem.decode())
    with contextlib.ExitStack() as stack:
        raw = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
        if face == "webhook":
            stack.enter_context(context.wrap_socket(raw, server_hostname="127.0.0.1"))

        def server_sides() -> list[socket.socket]:
            connections = server.server_state.connections
            return [c.transport.get_extra_info("socket") for c in connections]

        sides = eventually(server_sides, timeout=5, message="the server sees the connection")
        assert all(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) for s in sides)


def test_missing_certificate_is_a_one_line_start_up_error(tmp_path: object) -> None:
    from tests.fixtures.webhook import serve_settings

    with pytest.raises(serve.ServeError, match=r"zen-flow certs --out DIR") as info:
        serve.Servers(serve_settings(tmp_path))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
