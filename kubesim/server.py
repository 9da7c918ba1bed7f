"""The HTTP face of kubesim: an aiohttp application speaking the Kubernetes REST API over TLS.

Why aiohttp: watches are long-lived streams (kubectl, informers and the runner keep many open at
once) and an event loop holds thousands of them for the cost of a coroutine each, with chunked
writes flushed per event; a thread-per-connection server would spend a thread per watch. Reads
(get, list, discovery, OpenAPI) run on the loop (the store is in-memory and its lock is held for
microseconds), and so do writes while no webhook is configured; with webhooks, writes run in a
worker pool because admission webhooks are blocking HTTPS calls.

The handlers are layered one module each: ``servercore`` (state, responses, decoding, admission
attributes) <- ``reads`` <- ``watches`` <- ``writes`` <- ``ApiServer`` here (authentication,
routing, discovery, OpenAPI).

Request path: authenticate (bearer token; 401 Status otherwise) -> route (discovery, OpenAPI,
/version, or /api|/apis/.../{resource}[/{name}[/{sub}]]) -> faults (resource requests only) ->
verb handler. Every error is an ``ApiError`` answered as a ``Status`` body with its code. Writes
follow kube-apiserver's order: decode -> (patch against the live object) -> defaulting ->
mutating admission -> schema/built-in validation -> validating admission -> persist; a patch
without a resourceVersion precondition is retried on a write conflict (GuaranteedUpdate).

Watch framing: one JSON event per line, ``\\n``-terminated, flushed at once. WatchList
(``sendInitialEvents=true``) is implemented: synthetic ADDED events, then a BOOKMARK annotated
``k8s.io/initial-events-end``, then live events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import yaml
from aiohttp import web

from kubesim import auth, discovery
from kubesim.errors import ApiError, internal, method_not_allowed, unknown_path
from kubesim.resources import GVR
from kubesim.servercore import CORE_EVENTS, EVENTS_V1_KEY, MAX_BODY, Route, YamlLoader, dumps
from kubesim.writes import WriteHandlers

log = logging.getLogger(__name__)


VERSION_INFO = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.1-kubesim",
    "gitCommit": "0000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.26.8",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": "37",
}


YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class ApiServer(WriteHandlers):
    """Request handling; one instance per running kubesim (see module docstring)."""

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            user = self.authenticator.authenticate(request.headers.get("Authorization", ""))
            if user is None:
                if self.token is not None:
                    raise ApiError(401, "Unauthorized", "Unauthorized", details={})
                user = self.admin
            return await self._dispatch(request, user)
        except ApiError as e:
            return self._error(e)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # request boundary: answer 500, log once with context
            log.exception(
                "kubesim request failed",
                extra={"method": request.method, "path": request.path},
            )
            return self._error(internal(str(exc)))

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, request: web.Request, user: auth.User) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self._json(
                {
                    "paths": [
                        "/api",
                        "/api/v1",
                        "/apis",
                        "/openapi/v3",
                        "/version",
                        "/healthz",
                    ]
                }
            )
        head = parts[0]
        if head in ("healthz", "livez", "readyz") and len(parts) == 1:
            return web.Response(text="ok", content_type="text/plain")
        if head == "version" and len(parts) == 1:
            return self._json(VERSION_INFO)
        if head == "openapi":
            return self._openapi(request, parts)
        if head not in ("api", "apis"):
            raise unknown_path()
        if head == "api":
            if len(parts) == 1:
                return self._discovery(request, "api")
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return self._discovery(request, "apis")
            if len(parts) == 2:
                doc = discovery.api_group(self.store.registry.types(), parts[1])
                if doc is None:
                    raise unknown_path()
                return self._json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.api_resource_list(self.store.registry.types(), group, version)
            if doc is None:
                raise unknown_path()
            return self._json(doc)
        route = self._route(group, version, rest)
        route.user = user
        return await self._resource(request, route)

    def _route(self, group: str, version: str, rest: list[str]) -> Route:
        reg = self.store.registry
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            namespace = rest[1]
            rest = rest[2:]
        resource = rest[0]
        rt = reg.find(GVR(group, version, resource))
        if rt is None:
            raise unknown_path()
        name = rest[1] if len(rest) >= 2 else None
        sub = rest[2] if len(rest) >= 3 else None
        if len(rest) > 3:
            raise unknown_path()
        if namespace is not None and not rt.namespaced:
            raise unknown_path()
        if rt.namespaced and name is not None and namespace is None:
            raise unknown_path()
        if sub is not None and not ((sub == "status" and rt.has_status) or sub in rt.subresources):
            raise unknown_path()
        route = Route(rt, namespace, name, sub)
        if rt.key == EVENTS_V1_KEY:
            route.rt = reg.get(CORE_EVENTS)
            route.view = rt
        return route

    # ------------------------------------------------------------------ discovery / openapi

    def _discovery(self, request: web.Request, which: str) -> web.Response:
        accept = request.headers.get("Accept", "")
        types = self.store.registry.types()
        if (
            "as=APIGroupDiscoveryList" in accept
            and "apidiscovery.k8s.io" in accept
            and "v=v2" in accept
        ):
            gen = self.store.registry.generation
            cached = self._disc_cache.get(which)
            if cached is None or cached[0] != gen:
                cached = (gen, dumps(discovery.aggregated(types, core=which == "api")))
                self._disc_cache[which] = cached
            return self._json(None, raw=cached[1], content_type=discovery.AGGREGATED_CONTENT_TYPE)
        if which == "api":
            return self._json(discovery.api_versions(self.server_address))
        return self._json(discovery.api_group_list(types))

    def _openapi(self, request: web.Request, parts: list[str]) -> web.Response:
        if len(parts) < 2 or parts[1] != "v3":
            raise unknown_path()  # /openapi/v2: kubectl only takes protobuf there; 404 is what it tolerates
        self.openapi.refresh(self.store.registry.types(), self.store.registry.generation)
        if len(parts) == 2:
            raw, etag = self.openapi.index()
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})
            resp = self._json(None, raw=raw)
            resp.headers["ETag"] = etag
            return resp
        found = self.openapi.get("/".join(parts[2:]))
        if found is None:
            raise unknown_path()
        raw, digest = found
        resp = self._json(None, raw=raw)
        if request.query.get("hash") == digest:
            resp.headers["Cache-Control"] = "public, immutable"
            resp.headers["Expires"] = "Fri, 01 Jan 2100 00:00:00 GMT"
        resp.headers["Etag"] = f'"{digest}"'
        return resp

    # ------------------------------------------------------------------ resources

    async def _resource(self, request: web.Request, route: Route) -> web.StreamResponse:
        verb = verb_of(request, route)
        if self.faults is not None:
            delay = self.faults.latency
            if delay > 0:
                await asyncio.sleep(delay)
            err = self.faults.decide(verb)
            if err is not None:
                raise err
        if verb == "watch":
            return await self._watch(request, route)
        if verb == "get":
            if route.subresource == "log":
                return await self._log(request, route)
            return self._get(request, route)
        if verb == "list":
            return self._list(request, route)
        body = await request.read()
        write = self._writer(verb, route)
        if not self._has_webhooks():
            # nothing can block (no webhook call): run inline like reads, which saves the
            # thread hand-off and the loop wake-up that cost more than the write itself
            return write(request, route, body)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, lambda: write(request, route, body))

    def _writer(
        self, verb: str, route: Route
    ) -> Callable[[web.Request, Route, bytes], web.Response]:
        """The handler of a write ``verb``; it runs on a worker thread (the store blocks)."""
        if verb == "create":
            return self._create
        if verb == "update":
            return self._update
        if verb == "patch":
            return self._patch
        return self._delete_collection if route.name is None else self._delete

    # -------- reads

    # -------- watch

    # -------- writes (worker threads)


def verb_of(request: web.Request, route: Route) -> str:
    """The API verb of a resource request; 405 for a method the route does not take."""
    if request.method == "GET":
        if route.name is not None:
            return "get"
        return "watch" if request.query.get("watch") in ("true", "1") else "list"
    verb = {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete",
    }.get(request.method, "")
    if (
        not verb
        or (verb == "create" and route.name is not None)
        or (verb in ("update", "patch") and route.name is None)
    ):
        raise method_not_allowed()
    return verb
