"""A TLS server context whose certificate and key are re-read when their files change.

cert-manager (or a kubelet Secret volume, which swaps a `..data` symlink) replaces tls.crt and
tls.key while the webhook runs; the API server must then see the new certificate without a
restart. The design:

- `ReloadingTLS.server_context()` is the one `ssl.SSLContext` handed to uvicorn. Its
  `sni_callback` runs inside every handshake (OpenSSL calls it even when the client sends no SNI,
  as the API server does when it dials an IP) and swaps the connection onto the *current*
  context: `ssl_object.context = current`, the mechanism Python documents for SNI. Each current
  context is built whole from one (cert, key) pair and never mutated afterwards, so a handshake
  sees either the old pair or the new pair, never a certificate with the other's key.
- `reload_if_changed()` stats both files (following symlinks; mtime, size, inode) and, when
  anything moved, builds a new context. A pair that does not load (half-written, key and
  certificate that do not match) is logged and the previous context stays in service; the next
  poll tries again. A watcher thread calls it every `interval` seconds.

Invariant: once `load()` succeeded, every handshake is served with a complete, matching pair.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

logger = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 1.0  # seconds; rotation is rare, a stat() per second costs nothing


class TLSLoadError(RuntimeError):
    """The certificate/key pair cannot be loaded (missing file, bad PEM, key mismatch)."""


@dataclass(frozen=True)
class _Loaded:
    context: ssl.SSLContext
    fingerprint: tuple[tuple[int, int, int], tuple[int, int, int]]
    serial_number: int
    not_after: str


def _stat_key(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)  # follows symlinks: a swapped ..data link changes inode and mtime
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def build_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A TLS >= 1.2 server context for one certificate/key pair."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    except (OSError, ssl.SSLError) as exc:
        raise TLSLoadError(f"cannot load TLS pair {cert_file} / {key_file}: {exc}") from None
    return context


class ReloadingTLS:
    """Serve the certificate currently in ``cert_file``/``key_file``; see the module docstring."""

    def __init__(
        self, cert_file: Path, key_file: Path, *, interval: float = DEFAULT_POLL_INTERVAL
    ) -> None:
        self.cert_file = Path(cert_file)
        self.key_file = Path(key_file)
        self.interval = interval
        self._lock = threading.Lock()  # serialises reloads; handshakes only read self._current
        self._current: _Loaded | None = None
        self._server_context: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def is_loaded(self) -> bool:
        return self._current is not None

    @property
    def serial_number(self) -> int | None:
        current = self._current
        return current.serial_number if current else None

    # -- loading ---------------------------------------------------------------------------
    def _load_pair(self) -> _Loaded:
        try:
            before = (_stat_key(self.cert_file), _stat_key(self.key_file))
        except OSError as exc:
            raise TLSLoadError(
                f"cannot load TLS pair {self.cert_file} / {self.key_file}: "
                f"{exc.strerror or exc} ({exc.filename})"
            ) from None
        context = build_context(self.cert_file, self.key_file)
        try:
            cert = x509.load_pem_x509_certificate(self.cert_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise TLSLoadError(f"cannot parse {self.cert_file}: {exc}") from None
        return _Loaded(context, before, cert.serial_number, cert.not_valid_after_utc.isoformat())

    def load(self) -> None:
        """Load the pair now; raises TLSLoadError (one line) when it cannot be served."""
        with self._lock:
            self._current = self._load_pair()
        logger.info(
            "serving certificate loaded",
            extra={
                "cert_file": str(self.cert_file),
                "serial": hex(self._current.serial_number),
                "not_after": self._current.not_after,
            },
        )

    def reload_if_changed(self) -> bool:
        """Reload when either file changed; True when a new pair went into service."""
        with self._lock:
            try:
                now = (_stat_key(self.cert_file), _stat_key(self.key_file))
            except OSError:
                return False  # mid-rotation (file briefly absent): keep serving, poll again
            current = self._current
            if current is not None and current.fingerprint == now:
                return False
            try:
                loaded = self._load_pair()
            except TLSLoadError as exc:
                logger.warning(
                    "new TLS pair not loadable yet; keeping the previous one",
                    extra={"error": str(exc)},
                )
                return False
            self._current = loaded
        logger.info(
            "serving certificate reloaded",
            extra={
                "cert_file": str(self.cert_file),
                "serial": hex(loaded.serial_number),
                "not_after": loaded.not_after,
            },
        )
        return True

    # -- the context uvicorn serves with ----------------------------------------------------
    def _select(
        self,
        ssl_object: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        base: ssl.SSLContext,
    ) -> None:
        current = self._current
        if current is not None and current.context is not base:
            ssl_object.context = current.context
        return None

    def server_context(self) -> ssl.SSLContext:
        """The context to give the server; loads the pair first if that has not happened."""
        if self._current is None:
            self.load()
        if self._server_context is None:
            assert self._current is not None
            # The base context carries the first pair too, so a client is served even if a future
            # Python stopped calling the SNI hook for clients that send no server name.
            base = build_context(self.cert_file, self.key_file)
            base.sni_callback = self._select
            self._server_context = base
        return self._server_context

    # -- the watcher -----------------------------------------------------------------------
    def start(self) -> None:
        """Poll the files in a daemon thread until stop()."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="tls-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reload_if_changed()
            except Exception:  # thread boundary: a watcher crash must not stop rotation forever
                logger.exception("TLS reload check failed")
