"""FastAPI application factories: the HTTPS webhook app and the HTTP probes/metrics app.

Nothing is built at import time. Each factory takes what it needs (settings, the Prometheus
registry, the TLS reloader, the readiness checks) so tests build a fresh app per test, and two
apps in one process never share hidden state.

- `create_app(settings, registry=..., tls=...)`: POST /validate and /mutate. Its lifespan owns the
  TLS reloader's watcher thread (started with the server, stopped with it). HTTP metrics of these
  routes come from `app.httpmetrics` on the injected registry (prefix `zenflow_webhook_`),
  admission metrics from `webhook.metrics` on the same registry.
- `create_ops_app(registry=..., readiness=...)`: GET /healthz (the process and its event loop
  answer), /readyz (every readiness check true: certificate loaded, controller ready when it
  runs), /metrics (the registry, exposed by the instrumentator).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app import httpmetrics
from app.settings import Settings
from certs.rotation import ReloadingTLS
from webhook import routes
from webhook.metrics import AdmissionMetrics

logger = logging.getLogger(__name__)

# The HTTP metrics are named zenflow_webhook_http_*; dashboards and alerts use these names.
HTTP_METRIC_NAMESPACE = "zenflow"
HTTP_METRIC_SUBSYSTEM = "webhook"
# Seconds; reviews take about a millisecond, the API server gives up after timeoutSeconds (5).
HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Readiness:
    """Named boolean checks behind /readyz; checks are called on each probe and must not block."""

    def __init__(self) -> None:
        self._checks: dict[str, Callable[[], bool]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, check: Callable[[], bool]) -> None:
        with self._lock:
            self._checks[name] = check

    def results(self) -> dict[str, bool]:
        with self._lock:
            checks = dict(self._checks)
        out: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                out[name] = bool(check())
            except Exception:  # a probe must answer; a broken check means not ready
                logger.exception("readiness check failed", extra={"check": name})
                out[name] = False
        return out


def create_app(
    settings: Settings | None = None,
    *,
    registry: CollectorRegistry | None = None,
    tls: ReloadingTLS | None = None,
) -> FastAPI:
    """The webhook app (served over HTTPS by `zen-flow serve`)."""
    settings = settings or Settings.model_validate({})
    registry = registry if registry is not None else CollectorRegistry()
    metrics = AdmissionMetrics(registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if tls is not None:
            tls.start()
        try:
            yield
        finally:
            if tls is not None:
                tls.stop()

    app = WebhookApp(
        title="zen-flow webhook", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.settings = settings
    app.state.metrics = metrics
    reviews = routes.add_routes(
        app,
        max_request_bytes=settings.max_request_bytes,
        body_timeout=settings.body_timeout,
        metrics=metrics,
    )
    # Requests by handler/method/status and their latency (app/httpmetrics.py says why not
    # prometheus-fastapi-instrumentator's middleware here), around everything the app serves.
    app.serve_directly(
        reviews,
        httpmetrics.HttpMetrics(
            app._dispatch,
            registry=registry,
            namespace=HTTP_METRIC_NAMESPACE,
            subsystem=HTTP_METRIC_SUBSYSTEM,
            buckets=HTTP_LATENCY_BUCKETS,
            paths=[route.path for route in app.routes if isinstance(route, Route)],
        ),
    )
    return app


class WebhookApp(FastAPI):
    """The webhook app: every request goes through the HTTP metrics; then a POST to one of the
    review paths goes straight to its endpoint (webhook.routes: a plain ASGI app that answers
    every input itself, errors included), anything else through FastAPI's middleware and
    router as usual (405 for another method, 404, probes of the app, lifespan).

    FastAPI's stack (error and telemetry middleware, exception handlers, the exit stack, route
    matching) costs ~12 us a request in process and nothing it does is used by the reviews;
    the API server calls the webhook on every write of a JobFlow. (The reviews therefore make
    no FastAPI OpenTelemetry spans; zen-flow configures none.)"""

    _direct: Mapping[str, ASGIApp] = {}
    _outer: ASGIApp | None = None

    def serve_directly(self, endpoints: Mapping[str, ASGIApp], outer: ASGIApp) -> None:
        """Serve POSTs to ``endpoints``' paths directly; ``outer`` wraps ``_dispatch``."""
        self._direct = dict(endpoints)
        self._outer = outer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._outer is None:
            await super().__call__(scope, receive, send)
        else:
            await self._outer(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._direct.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_ops_app(*, registry: CollectorRegistry, readiness: Readiness) -> FastAPI:
    """The probes and metrics app (plain HTTP, cluster-internal)."""
    app = FastAPI(title="zen-flow ops", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        checks = readiness.results()
        ready = bool(checks) and all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    Instrumentator(registry=registry).expose(app, endpoint="/metrics", include_in_schema=False)
    return app
