"""HTTP metrics of the webhook app: requests by handler, method and status, and their latency.

The same two series prometheus-fastapi-instrumentator's `requests()` and `latency()` write
(`zenflow_webhook_http_requests_total` and `zenflow_webhook_http_request_duration_seconds`,
labels handler, method, status; `handler` is the route's path, or "none" for a path no route
serves), recorded by a plain ASGI middleware. The instrumentator's middleware finds the route
by matching every route of the app again and builds a Request and a Response per request:
~30 us a review, a tenth of what the whole echo endpoint costs (bench/webhook.py), on the path
of every `kubectl apply`. The webhook app's routes are fixed paths, so a set lookup names the
handler. The probes app keeps the instrumentator (it serves /metrics).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

UNMATCHED = "none"  # the instrumentator's handler label for a path no route serves
# The method label takes these; any other token a client sends counts as "OTHER", so no client
# can grow the series without bound.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """ASGI middleware: one count and one latency observation per HTTP request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        registry: CollectorRegistry,
        namespace: str,
        subsystem: str,
        buckets: Iterable[float],
        paths: Iterable[str],
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        labels = ("handler", "method", "status")
        self.requests = Counter(
            "http_requests_total",
            "Total number of requests by method, status and handler.",
            labels,
            namespace=namespace,
            subsystem=subsystem,
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Latency with only few buckets by handler.",
            labels,
            namespace=namespace,
            subsystem=subsystem,
            buckets=tuple(buckets),
            registry=registry,
        )
        # labels() takes a lock and checks its arguments on every call; children are few.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what an exception that escapes the app becomes

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path, method = scope["path"], scope["method"]
            key = (
                path if path in self.paths else UNMATCHED,
                method if method in METHODS else "OTHER",
                str(status),
            )
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (
                    self.requests.labels(*key),
                    self.latency.labels(*key),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
