"""The HTTPS call to an admission webhook: a POST of the review with the webhook's timeout, the
certificate verified against its ``caBundle`` for the URL host or the service's
``<name>.<namespace>.svc``, and every failure a ``WebhookCallError`` worded like the Go client's
(``Post "<url>": ...``)."""

from __future__ import annotations

import base64
import binascii
import functools
import http.client
import json
import socket
import ssl
import time
import urllib.parse
from typing import Any

from kubesim.admissionreview import WebhookCallError

MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # a webhook reply larger than this is treated as invalid


class _HTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to ``host:port`` while verifying the certificate for ``server_hostname``: a service
    reference is dialled at its resolved loopback address but must present the service's name."""

    def __init__(
        self, host: str, port: int, *, server_hostname: str, context: ssl.SSLContext, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._ctx = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        try:
            self.sock = self._ctx.wrap_socket(sock, server_hostname=self._server_hostname)
        except BaseException:
            sock.close()
            raise


@functools.lru_cache(maxsize=64)
def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify against the base64 PEM caBundle, or the system roots when it is empty.

    Cached per bundle: building a context parses the CA each time, and a context is safe to
    share between threads for client connections."""
    if not ca_bundle:
        return ssl.create_default_context()
    try:
        pem = base64.b64decode(ca_bundle, validate=False).decode("ascii")
        return ssl.create_default_context(cadata=pem)
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as exc:
        raise WebhookCallError(f"invalid caBundle: {exc}") from exc


def post_review(
    url: str, body: bytes, *, server_hostname: str | None, ca_bundle: str | None, timeout: float
) -> Any:
    """POST the review and return the decoded JSON reply; any failure is WebhookCallError with
    a message shaped like the Go client's (``Post "<url>": <error>``)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "https":
        raise WebhookCallError(f'Post "{url}": webhooks must be called over https')
    host = parts.hostname or ""
    port = parts.port or 443
    ctx = ssl_context(ca_bundle)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = _HTTPSConnection(
        host, port, server_hostname=server_hostname or host, context=ctx, timeout=timeout
    )
    deadline = time.monotonic() + timeout
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        resp = conn.getresponse()
        data = resp.read(MAX_RESPONSE_BYTES + 1)
    except TimeoutError:
        raise WebhookCallError(f'Post "{url}": context deadline exceeded') from None
    except ssl.SSLCertVerificationError as exc:
        raise WebhookCallError(
            f'Post "{url}": tls: failed to verify certificate: {exc.verify_message}'
        ) from None
    except ConnectionRefusedError:
        raise WebhookCallError(
            f'Post "{url}": dial tcp {host}:{port}: connect: connection refused'
        ) from None
    except socket.gaierror:
        raise WebhookCallError(f'Post "{url}": dial tcp: lookup {host}: no such host') from None
    except (OSError, http.client.HTTPException) as exc:
        raise WebhookCallError(f'Post "{url}": {exc or type(exc).__name__}') from None
    finally:
        conn.close()
    if time.monotonic() > deadline:
        raise WebhookCallError(f'Post "{url}": context deadline exceeded')
    if len(data) > MAX_RESPONSE_BYTES:
        raise WebhookCallError("webhook response is too large")
    if not 200 <= resp.status < 300:
        snippet = data[:200].decode("utf-8", "replace")
        raise WebhookCallError(
            f"the server responded with the status code {resp.status} but did not return more "
            f"information: {snippet}"
        )
    try:
        return json.loads(data)
    except ValueError as exc:
        raise WebhookCallError(f"received invalid webhook response: {exc}") from None
