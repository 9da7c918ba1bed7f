"""Request/response exchanges with the API server on kept-alive connections: urllib3 opens
each connection (TLS as the kubeconfig says: CA, client certificate, server name and hostname
checks, socket options), h11 frames HTTP/1.1 on it.

Why not urllib3 for the exchange too: with http.client under it, a request cost the controller
~0.35 ms of CPU (headers parsed by the email package, a Timeout and two response objects per
request, the body sent as a TLS record of its own), h11 ~0.23 ms on the same Job create, and
the controller makes ~1.6 requests per step (bench/controller.py). Streams (watches, pod logs)
stay on urllib3, as does everything when a proxy is configured.

Invariants:
- One exchange at a time per connection. A connection goes back to the idle stack only when
  both sides finished the message and h11 says it may carry the next one (keep-alive, no
  ``Connection: close``); anything else, an error included, closes it.
- A request sent on a reused connection that the server had already closed (reset, or EOF
  before any byte of an answer) is sent once more on a new connection: the server never read
  it (Go's net/http and urllib3 retry this case too). Every other failure is raised, as an
  ``OSError`` (the caller's Transient), never retried here.
- ``timeout`` bounds the whole exchange (connect, send and every read), like urllib3's total.
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import h11
import urllib3

# Bytes asked of the socket per read: an answer of a few KiB (a Job, a flow) is one read.
READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # lower-case names (h11 lower-cases them)
    body: bytes


class _ServerClosed(http.client.RemoteDisconnected):
    """The server closed the connection before any byte of an answer: on a kept-alive one, it
    had closed it before our request reached it. Said as urllib3 says it ("Connection
    aborted", http.client's RemoteDisconnected), which is what the command line recognises
    (a plain-http URL to a TLS port ends this way)."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"Connection aborted: the server closed the connection ({detail})")


class _Connection:
    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.sock: Any = conn.sock
        self.h11 = h11.Connection(our_role=h11.CLIENT)

    def close(self) -> None:
        self.conn.close()

    def _settimeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the API server did not answer in time")
        self.sock.settimeout(left)

    def exchange(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        deadline: float,
    ) -> Answer:
        h = self.h11
        try:
            out = h.send(h11.Request(method=method, target=target, headers=headers))
            if body:
                out += h.send(h11.Data(data=body))
            out += h.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise ConnectionError(f"cannot send the request: {exc}") from exc
        self._settimeout(deadline)
        try:
            self.sock.sendall(out)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _ServerClosed(str(exc)) from exc
        answered = False
        status, names, chunks = 0, {}, []
        try:
            while True:
                event = h.next_event()
                if event is h11.NEED_DATA:
                    self._settimeout(deadline)
                    try:
                        data = self.sock.recv(READ_SIZE)
                    except ConnectionResetError as exc:
                        if not answered:
                            raise _ServerClosed(str(exc)) from exc
                        raise
                    if not data and not answered:
                        raise _ServerClosed("no answer")
                    answered = True
                    h.receive_data(data)
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    names = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the server closed the connection mid-answer")
                # an InformationalResponse (1xx) is followed by the real one
        except h11.RemoteProtocolError as exc:
            raise ConnectionError(f"malformed answer from the API server: {exc}") from exc
        return Answer(status, names, _decoded(b"".join(chunks), names.get("content-encoding")))

    def reusable(self) -> bool:
        h = self.h11
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            return True
        return False


def _decoded(body: bytes, encoding: str | None) -> bytes:
    """We ask for no encoding; a server that compresses anyway is still read."""
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    return body


class Transport:
    """Exchanges on connections of ``pool`` (urllib3's, for the API server's origin); at most
    ``max_idle`` connections are kept open between requests."""

    def __init__(self, pool: urllib3.HTTPConnectionPool, *, host: str, max_idle: int) -> None:
        self._pool = pool
        self._host = host  # the Host header: the configured server's netloc
        self._max_idle = max(1, max_idle)
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self, deadline: float) -> _Connection:
        conn = self._pool._new_conn()  # the pool's TLS settings and socket options
        conn.timeout = max(deadline - time.monotonic(), 0.001)
        conn.connect()
        return _Connection(conn)

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,
    ) -> Answer:
        deadline = time.monotonic() + timeout
        fields = [("Host", self._host), *headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            fields.append(("Content-Length", str(len(body or b""))))
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = self._connect(deadline)
            try:
                answer = conn.exchange(method, target, fields, body, deadline)
            except _ServerClosed:
                conn.close()
                if reused:
                    continue  # the server closed it while idle: it never read this request
                raise
            except BaseException:
                conn.close()
                raise
            self._release(conn)
            return answer

    def _release(self, conn: _Connection) -> None:
        if conn.reusable():
            with self._lock:
                if not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
