"""`zen-flow serve`: the webhook (HTTPS), the probes and metrics (HTTP) and the controller, in one
process.

```
HTTPS webhook_port  create_app()      POST /validate /mutate   (TLS >= 1.2, cert re-read on change)
HTTP  metrics_port  create_ops_app()  GET /healthz /readyz /metrics
controller threads  started after both servers listen; stopped first on shutdown
```
Both uvicorn servers run on one asyncio loop. Sockets are bound before the loop starts, so a
port in use is one clear line at start-up and tests can ask for port 0 and read the real port.
Signals are handled once for the process (uvicorn's own per-server signal capture is disabled):
SIGTERM or SIGINT stops the controller (bounded by `shutdown_timeout`; it releases its Lease),
flips /readyz to false, then closes both servers, which finish in-flight requests first.

The controller seam: `controller_factory()` is the one place the controller is wired in. It
returns a callable `(settings, *, registry) -> Controller` (see the `Controller` protocol:
start(), stop(timeout), is_ready()). Until it returns one, `serve` needs `--webhook-only`.

The command line (flags, `--embedded`) is app/serve_cmd.py; app/embedded.py builds on this
module, so this module never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import uvicorn
from prometheus_client import CollectorRegistry
from uvicorn.protocols.http.h11_impl import H11Protocol

from app import main as app_main
from app.settings import Settings
from certs.rotation import ReloadingTLS, TLSLoadError

logger = logging.getLogger(__name__)


class Controller(Protocol):
    """What `serve` needs from the controller (implemented in controller/)."""

    def start(self) -> None:
        """Start the background threads (leader election, watches, workers); returns at once."""

    def stop(self, timeout: float) -> object:
        """Stop taking work, finish in-flight reconciles within ``timeout``, release the Lease."""

    def is_ready(self) -> bool:
        """True when this replica can do its job (a non-leader is ready; the leader once its
        watch caches have synced, and while its workers can reconcile)."""


ControllerFactory = Callable[..., Controller]  # (settings, *, registry) -> Controller


def controller_factory() -> ControllerFactory | None:
    """The controller class, or None while it is not built yet.

    The controller is built by `controller.runner.from_settings(settings, registry=...)`.
    """
    from controller import runner  # imported here: webhook-only processes never load it

    return runner.from_settings


class ServeError(RuntimeError):
    """A start-up failure the user can fix; str() is the one line shown."""


class HeadDeadlineH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for every request head.

    A connection must send a whole request head within ``head_timeout`` seconds of opening, and
    of each response (uvicorn's own keep-alive timer stops at the first byte that arrives). One
    that does not is closed: nothing else would ever close a connection that sends nothing
    after the TLS handshake, or a byte every few seconds, and enough of them exhaust the
    process's file descriptors. The body has its own deadline (webhook.routes, body_timeout).
    """

    head_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # One timer per connection, re-armed lazily: a request only moves ``_deadline`` (a
        # float), and the timer, when it fires early, sleeps on until the deadline it finds.
        # A call_later and a cancel per request cost ~8 us of a review's ~0.3 ms.
        self._deadline: float | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._deadline = None  # a request head arrived: the body and the app take it from here

    def on_response_complete(self) -> None:
        self._arm()  # before: a pipelined request handled inside disarms it again
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._deadline = self.loop.time() + self.head_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(self._deadline, self._expire)

    def _expire(self) -> None:
        self._head_timer = None
        deadline = self._deadline
        if deadline is None:
            return  # disarmed: the next response arms it again
        if self.loop.time() < deadline:
            self._head_timer = self.loop.call_at(deadline, self._expire)
            return
        if not self.transport.is_closing():
            self.transport.close()


def _head_deadline(seconds: float) -> type[HeadDeadlineH11]:
    return type("HeadDeadlineH11", (HeadDeadlineH11,), {"head_timeout": seconds})


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config options of both servers (bench/webhook.py runs its echo server on the
    webhook's, so that only the endpoints differ)."""
    return {
        "log_config": None,
        "access_log": False,
        # The API server, the kubelet and Prometheus connect directly; no proxy in front says
        # who the client is, and uvicorn's X-Forwarded-* rewriting (trusting 127.0.0.1 by
        # default) would only let a local caller pose as another address. It also cost ~6 us
        # of every review (a middleware and an address check).
        "proxy_headers": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": settings.shutdown_timeout,
    }


def webhook_server_options(settings: Settings) -> dict[str, Any]:
    """The webhook server's: the common ones and the request head deadline."""
    return {**server_options(settings), "http": _head_deadline(settings.header_timeout)}


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process handles SIGTERM/SIGINT once for both servers and the controller.
        yield


def _bind(host: str, port: int, *, what: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and with Nagle on every answer (head and body are two TLS records) waited for the
    # client's delayed ACK: 40 ms per review instead of ~1 ms.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port} for the {what}: {exc.strerror}; choose another port"
        ) from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class Servers:
    """The two servers (and the controller) of one `serve` process, ready to run on a loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        controller: Controller | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.controller = controller
        self.tls = ReloadingTLS(
            settings.tls_cert_file, settings.tls_key_file, interval=settings.cert_reload_interval
        )
        try:
            self.tls.load()
        except TLSLoadError as exc:
            raise ServeError(
                f"{exc}; create them with `zen-flow certs --out DIR --dns NAME` "
                "and pass --cert-dir DIR"
            ) from None
        self._stopping = False
        self.failed = False  # set when a server ended without being asked to
        self.readiness = app_main.Readiness()
        self.readiness.add("certificate", lambda: self.tls.is_loaded)
        self.readiness.add("serving", lambda: not self._stopping)
        if controller is not None:
            self.readiness.add("controller", controller.is_ready)
        webhook_app = app_main.create_app(settings, registry=self.registry, tls=self.tls)
        ops_app = app_main.create_ops_app(registry=self.registry, readiness=self.readiness)
        self._webhook_sock = _bind(settings.webhook_host, settings.webhook_port, what="webhook")
        try:
            self._ops_sock = _bind(settings.metrics_host, settings.metrics_port, what="probes")
        except ServeError:
            self._webhook_sock.close()
            raise
        common = server_options(settings)
        tls = self.tls
        self.webhook = _Server(
            uvicorn.Config(
                webhook_app,
                ssl_context_factory=lambda _config, _default: tls.server_context(),
                **webhook_server_options(settings),
            )
        )
        self.ops = _Server(uvicorn.Config(ops_app, **common))
        self.webhook_port: int = self._webhook_sock.getsockname()[1]
        self.metrics_port: int = self._ops_sock.getsockname()[1]

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set (or a server dies), then shut down in order."""
        tasks = [
            asyncio.create_task(self.webhook.serve(sockets=[self._webhook_sock])),
            asyncio.create_task(self.ops.serve(sockets=[self._ops_sock])),
        ]
        stop_wait = asyncio.create_task(stop.wait())
        try:
            while not (self.webhook.started and self.ops.started):
                if any(t.done() for t in tasks):
                    break
                await asyncio.sleep(0.01)
            else:
                logger.info(
                    "serving",
                    extra={
                        "webhook_port": self.webhook_port,
                        "metrics_port": self.metrics_port,
                        "controller": self.controller is not None,
                    },
                )
                if self.controller is not None:
                    await asyncio.to_thread(self.controller.start)
            await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if not stop.is_set():
                self.failed = True
                logger.error("a server stopped on its own; shutting down")
        finally:
            self._stopping = True
            logger.info("shutting down")
            if self.controller is not None:
                try:
                    await asyncio.to_thread(self.controller.stop, self.settings.shutdown_timeout)
                except Exception:  # shutdown boundary: still close the servers
                    logger.exception("controller stop failed")
            self.webhook.should_exit = True
            self.ops.should_exit = True
            stop_wait.cancel()
            reaper = asyncio.create_task(self._reap_closing_connections())
            await asyncio.gather(*tasks, return_exceptions=True)
            reaper.cancel()
            self.tls.stop()
            for sock in (self._webhook_sock, self._ops_sock):
                sock.close()
            logger.info("stopped")

    async def _reap_closing_connections(self) -> None:
        # On shutdown uvicorn closes idle keep-alive connections; over TLS, close() then waits
        # up to 30 s for the peer's close_notify, which an idle pooled client never sends, and
        # uvicorn waits for every connection to go. A connection we already closed has nothing
        # left to deliver, so drop it at once; busy ones still finish within shutdown_timeout.
        while True:
            await asyncio.sleep(0.1)
            for server in (self.webhook, self.ops):
                for connection in list(server.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None and transport.is_closing():
                        transport.abort()


class RunningServers:
    """`Servers` running on their own loop in a background thread (tests and benchmarks)."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._main, name="zen-flow-serve", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("servers did not start within 10 s")

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            task = asyncio.create_task(self.servers.run(self._stop))
            while (
                not (self.servers.webhook.started and self.servers.ops.started) and not task.done()
            ):
                await asyncio.sleep(0.01)
            self._ready.set()
            await task

        self._loop.run_until_complete(main())
        self._loop.close()

    @property
    def webhook_url(self) -> str:
        return f"https://127.0.0.1:{self.servers.webhook_port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.servers.metrics_port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)

    def __enter__(self) -> RunningServers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start_in_thread(settings: Settings, *, controller: Controller | None = None) -> RunningServers:
    """Start both servers in a background thread and return once they accept connections."""
    return RunningServers(Servers(settings, controller=controller))


def run(settings: Settings) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code. Raises ServeError for start-up errors."""
    registry = CollectorRegistry()
    controller: Controller | None = None
    if settings.runs_controller:
        factory = controller_factory()
        if factory is None:
            raise ServeError(
                "the controller is not available in this build; run `zen-flow serve --webhook-only`"
            )
        from controller import kube  # lazily, like the factory: webhook-only never loads it

        try:
            controller = factory(settings, registry=registry)
        except kube.ConfigError as exc:
            raise ServeError(f"{exc}; check --kubeconfig or ZEN_FLOW_KUBECONFIG") from None
    servers = Servers(settings, controller=controller, registry=registry)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await servers.run(stop)

    asyncio.run(main())
    return 1 if servers.failed else 0
