"""controller.transport against real HTTP servers: what a server may do to a kept-alive
connection, and what the transport then does.

Covers: Content-Length and chunked answers on one kept-alive connection (one connection for
many requests); ``Connection: close`` answers (the next request opens a new connection); a
server that closed an idle connection (the request is sent again on a new one, once); a server
that resets the connection before answering a fresh one (an OSError, not retried); a gzip
answer; the whole-exchange timeout; and the Kube client's requests going through it against
kubesim over TLS (one connection per concurrent request, reused).
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import urllib3

from controller import transport

pytestmark = pytest.mark.timeout(60)

Handler = Callable[[socket.socket, bytes], bool]  # (connection, request head) -> keep open


def _read_request(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        rest += conn.recv(65536)
    return head


class Server:
    """A plain-HTTP server on a thread; ``handler`` writes each answer by hand."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            while True:
                head = _read_request(conn)
                if head is None:
                    return
                self.requests.append(head)
                if not self.handler(conn, head):
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], tuple[Server, transport.Transport]]]:
    made: list[tuple[Server, transport.Transport]] = []

    def make(handler: Handler) -> tuple[Server, transport.Transport]:
        server = Server(handler)
        pool = urllib3.HTTPConnectionPool("127.0.0.1", server.port)
        lean = transport.Transport(pool, host=f"127.0.0.1:{server.port}", max_idle=4)
        made.append((server, lean))
        return server, lean

    yield make
    for server, lean in made:
        lean.close()
        server.close()


def _answer(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_content_length_and_chunked_answers_share_one_connection(serve) -> None:  # type: ignore[no-untyped-def]
    turn = iter(range(100))

    def handler(conn: socket.socket, head: bytes) -> bool:
        if next(turn) % 2:
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'5\r\n{"a":\r\n2\r\n1}\r\n0\r\n\r\n'
            )
        else:
            conn.sendall(_answer(b'{"a":1}', "Content-Type: application/json"))
        return True

    server, lean = serve(handler)
    for _ in range(6):
        answer = lean.request("POST", "/x", {"Accept": "application/json"}, b"{}", timeout=5)
        assert (answer.status, answer.body) == (200, b'{"a":1}')
    assert server.connections == 1
    assert b"content-length: 2" in server.requests[0].lower()


def test_connection_close_answers_make_the_next_request_open_a_new_connection(serve) -> None:  # type: ignore[no-untyped-def]
    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(_answer(b"ok", "Connection: close"))
        return False

    server, lean = serve(handler)
    for _ in range(3):
        assert lean.request("GET", "/x", {}, None, timeout=5).body == b"ok"
    assert server.connections == 3


def test_a_connection_the_server_closed_while_idle_is_replaced_and_the_request_sent_again(
    serve,  # type: ignore[no-untyped-def]
) -> None:
    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(_answer(b"ok"))
        return False  # closes without saying so: the client finds out on its next request

    server, lean = serve(handler)
    assert lean.request("GET", "/one", {}, None, timeout=5).body == b"ok"
    time.sleep(0.2)  # the server's close has arrived
    assert lean.request("POST", "/two", {}, b"{}", timeout=5).body == b"ok"
    assert server.connections == 2
    assert [r.split(b" ")[1] for r in server.requests] == [b"/one", b"/two"]  # sent once each


def test_a_fresh_connection_closed_before_any_answer_is_an_error_not_a_retry(serve) -> None:  # type: ignore[no-untyped-def]
    server, lean = serve(lambda conn, head: False)  # reads the request, closes, answers nothing
    with pytest.raises(OSError):
        lean.request("POST", "/x", {}, b"{}", timeout=5)
    assert len(server.requests) == 1


def test_a_gzip_answer_is_read(serve) -> None:  # type: ignore[no-untyped-def]
    body = gzip.compress(b'{"kind":"Status"}')

    def handler(conn: socket.socket, head: bytes) -> bool:
        conn.sendall(_answer(body, "Content-Encoding: gzip"))
        return True

    _, lean = serve(handler)
    assert lean.request("GET", "/x", {}, None, timeout=5).body == b'{"kind":"Status"}'


def test_a_server_that_does_not_answer_times_out(serve) -> None:  # type: ignore[no-untyped-def]
    release = threading.Event()

    def handler(conn: socket.socket, head: bytes) -> bool:
        release.wait(10)
        return False

    _, lean = serve(handler)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        lean.request("GET", "/x", {}, None, timeout=0.5)
    assert time.monotonic() - started < 3
    release.set()


def test_the_kube_client_reuses_its_connections_against_kubesim(cluster) -> None:  # type: ignore[no-untyped-def]
    from controller.kube import CONFIGMAPS, Kube, NotFound

    kube = Kube.connect(cluster.kubeconfig, qps=0)
    try:
        for i in range(20):
            kube.create(
                CONFIGMAPS,
                "default",
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"lean-{i}"}},
            )
        assert kube.get(CONFIGMAPS, "default", "lean-3")["metadata"]["name"] == "lean-3"
        with pytest.raises(NotFound):
            kube.get(CONFIGMAPS, "default", "absent")
        lean = kube._direct()
        assert lean is not None and len(lean._idle) == 1  # one sequential caller, one connection
    finally:
        kube.close()
