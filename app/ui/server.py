"""The FastAPI app of `zen-flow ui` (``create_app``) and a runner for it (``UiServer``).

Security (the app drives the user's own credentials, so nobody else on the machine may):
- every request needs the token: ``?token=`` once (the page is then redirected to the same
  address without it and a cookie carries it: HttpOnly, SameSite=Strict, named per port since
  cookies do not tell ports apart), or the cookie; anything else is 401;
- the Host header must name the address we serve (a DNS-rebinding page cannot use the cookie);
- no CORS headers at all; actions are POST with a JSON body and an Origin equal to our own
  address (a cross-site form cannot send JSON, and the browser sets Origin), else 403;
- loopback by default; responses forbid framing and sniffing, and send no Referer.
"""

from __future__ import annotations

import asyncio
import http.cookies
import ipaddress
import secrets
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode

import uvicorn
from fastapi import Body, FastAPI, HTTPException
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from app import approve_cmd, cluster, retry_cmd, stop_cmd, target
from app.cli import CommandError
from app.ui import data, live
from controller import kube as kube_mod
from jobflow import phases
from jobflow.spec import StopMode

STATIC: Final = Path(__file__).parent / "static"
TOKEN_BYTES: Final = 24
ACTIONS: Final = ("approve", "reject", "retry", "stop", "terminate", "suspend", "resume")
HEADERS: Final = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        b"frame-ancestors 'none'",
    ),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Guard:
    """ASGI middleware: the token, Host and Origin checks of the module docstring."""

    def __init__(self, app: ASGI, *, token: str, cookie: str, hosts: frozenset[str] | None):
        self.app, self.token, self.cookie, self.hosts = app, token, cookie, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.hosts is not None and host not in self.hosts:
            await _plain(send, 403, f"403 Forbidden: unexpected Host {host!r}")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        given = query.get("token")
        jar = http.cookies.SimpleCookie(headers.get("cookie", ""))
        cookie = jar[self.cookie].value if self.cookie in jar else None
        if given is not None and secrets.compare_digest(given, self.token):
            if scope["method"] == "GET" and not scope["path"].startswith("/api/"):
                rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
                location = scope["path"] + (f"?{rest}" if rest else "")
                await _redirect_with_cookie(send, location, self.cookie, self.token)
                return
        elif cookie is None or not secrets.compare_digest(cookie, self.token):
            await _plain(
                send,
                401,
                "401 Unauthorized: open the address `zen-flow ui` printed (it carries "
                "?token=...); the token changes each time the ui starts",
            )
            return
        if scope["method"] not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin != f"http://{host}":
                await _plain(send, 403, "403 Forbidden: an action must come from the page itself")
                return
            if not headers.get("content-type", "").startswith("application/json"):
                await _plain(send, 415, "415: actions take a JSON body")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _plain(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), *HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, location: str, name: str, token: str) -> None:
    cookie = f"{name}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                *HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _refused(exc: CommandError) -> HTTPException:
    return HTTPException(409 if exc.exit_code == 1 else 400, detail=str(exc))


def act(kube: kube_mod.Kube, namespace: str, name: str, action: str, body: dict[str, Any]) -> str:
    """Run one action with the CLI's own function; the line it says."""
    step = str(body.get("step") or "")
    if action in ("approve", "reject"):
        if not step:
            raise CommandError(f"{action}: say which step")
        return approve_cmd.decide(kube, namespace, name, step, reject=action == "reject")
    if action == "retry":
        steps = [str(s) for s in body.get("steps") or ()]
        return retry_cmd.request_retry(kube, namespace, name, steps=steps)[1]
    if action in ("stop", "terminate"):
        mode = StopMode.TERMINATE if action == "terminate" else StopMode.STOP
        return stop_cmd.stop_flow(kube, namespace, name, mode)[1]
    return target.set_suspended(kube, namespace, name, suspend=action == "suspend")


@dataclass(frozen=True)
class Place:
    """What the page says about where it is: the namespace it opens and the cluster's words."""

    namespace: str
    cluster: str
    flow: str | None = None


def _add_actions(api: FastAPI, kube: kube_mod.Kube) -> None:
    @api.post("/api/flows/{namespace}/{name}/actions/{action}")
    def action(
        namespace: str,
        name: str,
        action: str,
        body: Annotated[dict[str, Any] | None, Body()] = None,
    ) -> dict[str, str]:
        if action not in ACTIONS:
            raise HTTPException(404, detail=f"no action {action!r}; one of {', '.join(ACTIONS)}")
        try:
            return {"message": act(kube, namespace, name, action, body or {})}
        except CommandError as exc:
            raise _refused(exc) from None


def create_app(kube: kube_mod.Kube, place: Place, *, token: str, port: int, host: str) -> ASGI:
    """The ui's ASGI app: FastAPI routes behind the Guard."""
    api = FastAPI(title="zen-flow ui", docs_url=None, redoc_url=None, openapi_url=None)

    def read(namespace: str, name: str) -> dict[str, Any]:
        try:
            return target.read_flow(kube, namespace, name)
        except CommandError as exc:
            raise HTTPException(404, detail=str(exc)) from None

    @api.exception_handler(kube_mod.ApiError)
    async def _api_error(_request: Any, exc: kube_mod.ApiError) -> JSONResponse:
        if isinstance(exc, kube_mod.Forbidden) and exc.code == 403:  # RBAC: the user's own
            return JSONResponse({"detail": f"not allowed: {exc}"}, status_code=403)
        return JSONResponse({"detail": str(cluster.unreachable(kube, exc))}, status_code=502)

    @api.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @api.get("/api/info")
    def info() -> dict[str, Any]:
        return {
            "namespace": place.namespace,
            "cluster": place.cluster,
            "flow": place.flow,
            "flowPhases": [str(p) for p in phases.FlowPhase],
        }

    @api.get("/api/flows")
    def flows(namespace: str, phase: str = "", selector: str = "") -> list[dict[str, Any]]:
        try:
            return data.list_flows(kube, namespace, phase=phase, selector=selector)
        except kube_mod.Invalid as exc:
            raise HTTPException(400, detail=f"label selector {selector!r}: {exc}") from None

    @api.get("/api/flows/{namespace}/{name}")
    def flow(namespace: str, name: str) -> dict[str, Any]:
        return data.flow_view(read(namespace, name))

    @api.get("/api/flows/{namespace}/{name}/stream")
    async def stream(namespace: str, name: str) -> StreamingResponse:
        return StreamingResponse(
            live.sse(kube, namespace, name, data.flow_view),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    @api.get("/api/flows/{namespace}/{name}/steps/{step}")
    def step(namespace: str, name: str, step: str) -> dict[str, Any]:
        return data.step_view(kube, namespace, read(namespace, name), step)

    @api.get("/api/flows/{namespace}/{name}/steps/{step}/logs")
    def logs(namespace: str, name: str, step: str) -> list[dict[str, Any]]:
        return data.step_logs(kube, namespace, name, step)

    @api.get("/api/flows/{namespace}/{name}/events")
    def events(namespace: str, name: str) -> list[dict[str, Any]]:
        return data.flow_events(kube, namespace, read(namespace, name))

    _add_actions(api, kube)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    hosts = (
        frozenset(f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]"))
        if is_loopback(host)
        else None
    )
    return Guard(api, token=token, cookie=f"zenflow-ui-{port}", hosts=hosts)


class UiServer:
    """The ui served by uvicorn in a background thread (``zen-flow ui`` waits on it; tests and
    ``run --ui`` stop it). Binds at once, so ``url`` is known before it serves."""

    def __init__(
        self, kube: kube_mod.Kube, place: Place, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise CommandError(
                f"--port {port}: cannot listen on {host}:{port}: {exc.strerror}"
            ) from None
        self._sock.listen(64)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self.token = new_token()
        app = create_app(kube, place, token=self.token, port=self.port, host=host)
        config = uvicorn.Config(
            app, log_config=None, access_log=False, timeout_graceful_shutdown=1, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._main, name="zen-flow-ui", daemon=True)
        self.place = place

    def _main(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    @property
    def base(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def url(self) -> str:
        """The address to open: with the token, and the flow's page when there is one."""
        page = f"#/flow/{self.place.namespace}/{self.place.flow}" if self.place.flow else ""
        return f"{self.base}/?token={self.token}{page}"

    def start(self) -> UiServer:
        self._thread.start()
        return self

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()
