"""The HTTP face of kubesim: an aiohttp application speaking the Kubernetes REST API over TLS.

Why aiohttp: watches are long-lived streams (kubectl, informers and the runner keep many open at
once) and an event loop holds thousands of them for the cost of a coroutine each, with chunked
writes flushed per event; a thread-per-connection server would spend a thread per watch. Reads
(get, list, discovery, OpenAPI) run on the loop (the store is in-memory and its lock is held for
microseconds); writes run in a worker pool because admission webhooks are blocking HTTPS calls.

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
import base64
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import yaml
from aiohttp import web

from kubesim import auth, discovery, kinds, managed, openapi, protobuf, selectors, tables, uids
from kubesim import events as events_v1
from kubesim.clone import clone
from kubesim.errors import (
    ApiError,
    Cause,
    bad_request,
    internal,
    invalid,
    method_not_allowed,
    unknown_path,
)
from kubesim.patch import json_patch, merge_patch, strategic_merge
from kubesim.resources import GVR, ResourceType
from kubesim.store import Event, Store, WatchHandle

if TYPE_CHECKING:
    from kubesim.admission import Attributes
    from kubesim.faults import Faults

log = logging.getLogger(__name__)

# what a watch's asyncio queue carries: store events, then None when the server shuts down
WatchQueue = asyncio.Queue[Event | None]

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
TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"
DEFAULT_WATCH_TIMEOUT = 1800.0  # seconds; real servers pick 30-60 min when the client sets none
BOOKMARK_INTERVAL = 10.0  # seconds between bookmarks when the client allows them
PATCH_RETRIES = 8  # GuaranteedUpdate-style retries of a patch racing other writers
LOG_FOLLOW_POLL = 0.1  # seconds between checks of a followed pod log
WRITE_WORKERS = 16  # threads for writes (webhook calls block)
MAX_BODY = 16 * 1024 * 1024
INITIAL_EVENTS_END = "k8s.io/initial-events-end"
EVENTS_V1_KEY = ("events.k8s.io", "events")
CORE_EVENTS = GVR("", "v1", "events")
MUTATING_CONFIGS = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING_CONFIGS = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")
# upstream stores that answer a DELETE with the deleted object instead of a Status (the typed
# Python client deserialises e.g. delete_namespaced_pod into a V1Pod and fails on a Status)
RETURN_DELETED_OBJECT = {
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
}

_PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply-cbor",
}


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (JSON has no datetime; kube stores text)."""


_YamlLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _load_yaml(body: bytes) -> Any:
    return yaml.load(body, Loader=_YamlLoader)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _body(obj: Any) -> bytes:
    """A JSON response body as the API server writes it (Go's json.Encoder: a final newline)."""
    return _dumps(obj) + b"\n"


class AdmissionChain(Protocol):
    """What the server needs of admission (kubesim.admission.Admission, or none)."""

    def mutate(self, attrs: Attributes) -> tuple[dict[str, Any], list[str]]: ...

    def validate(self, attrs: Attributes) -> list[str]: ...


class _NoAdmission:
    def mutate(self, attrs: Attributes) -> tuple[dict[str, Any], list[str]]:
        assert attrs.obj is not None  # only called for CREATE/UPDATE, which carry an object
        return attrs.obj, []

    def validate(self, attrs: Attributes) -> list[str]:
        return []


class _Route:
    __slots__ = ("name", "namespace", "rt", "subresource", "user", "view")

    def __init__(
        self, rt: ResourceType, namespace: str | None, name: str | None, subresource: str | None
    ) -> None:
        self.rt = rt  # the type objects are stored as
        self.namespace = namespace
        self.name = name
        self.subresource = subresource
        self.view: ResourceType | None = None  # the type the client speaks, when it differs
        self.user: auth.User | None = None  # who asks (set by _dispatch)

    @property
    def client_type(self) -> ResourceType:
        return self.view or self.rt


@dataclass(frozen=True)
class _WatchOptions:
    since: int | None  # None: the current state first (as ADDED events), then live events
    initial_events: bool  # sendInitialEvents=true: the initial events end with a bookmark
    bookmarks: bool
    timeout: float


def _send_initial_events_causes(
    q: Mapping[str, str], send_initial: str, *, bookmarks: bool
) -> list[Cause]:
    """What upstream refuses in a watch that sets sendInitialEvents."""
    causes = []
    if q.get("resourceVersionMatch") != "NotOlderThan":
        causes.append(
            Cause(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                "NotOlderThan",
            )
        )
    if send_initial == "true" and not bookmarks:
        causes.append(
            Cause(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
            )
        )
    return causes


class _WatchEncoder:
    """Watch events as JSON lines: objects as the client's API version shows them, or as
    one-row Tables (column definitions in the first only) when the client asked for Tables."""

    def __init__(
        self,
        rt: ResourceType,
        present: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        as_table: bool,
        include: str,
    ) -> None:
        self.rt = rt
        self.as_table = as_table
        self._present = present
        self._include = include
        self._with_columns = True

    def event(self, typ: str, obj: dict[str, Any]) -> bytes:
        out: dict[str, Any] = self._present(obj)
        if self.as_table and typ in ("ADDED", "MODIFIED", "DELETED"):
            out = tables.to_table(
                self.rt,
                [out],
                resource_version=out["metadata"].get("resourceVersion", ""),
                include_object=self._include,
                with_columns=self._with_columns,
            )
            self._with_columns = False
        return _dumps({"type": typ, "object": out}) + b"\n"

    def bookmark(self, rv: int, *, end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


class ApiServer:
    """Request handling; one instance per running kubesim (see module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        token: str | None,
        users: Iterable[auth.User] = (),
        admission: AdmissionChain | None = None,
        faults: Faults | None = None,
        server_address: str = "127.0.0.1:0",
    ) -> None:
        self.store = store
        self.token = token
        # the admin identity (the default kubeconfig context) and the configured users; with
        # token=None (auth off) an unknown or missing token is the admin, as before
        self.admin = auth.User(auth.ADMIN_NAME, auth.ADMIN_GROUPS, token=token or "")
        self.authenticator = auth.Authenticator([self.admin, *users])
        self.admission: AdmissionChain = admission or _NoAdmission()
        self.faults = faults
        self.server_address = server_address
        self.pool = ThreadPoolExecutor(
            max_workers=WRITE_WORKERS, thread_name_prefix="kubesim-write"
        )
        self.openapi = openapi.OpenApiCache()
        self._disc_cache: dict[str, tuple[int, bytes]] = {}
        self._watch_queues: set[WatchQueue] = set()
        self._pending: list[tuple[WatchQueue, Event]] = []
        self._pending_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = asyncio.Event()

    def _deliver(self, queue: WatchQueue, ev: Event) -> None:
        """Hand a store event to a watch (any thread). One loop wake-up per burst of events,
        not one per event and watcher: writers run under the store lock, so this stays cheap."""
        with self._pending_lock:
            self._pending.append((queue, ev))
            first = len(self._pending) == 1
        if first and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._pending_lock:
            items, self._pending = self._pending, []
        for queue, ev in items:
            queue.put_nowait(ev)

    def shutdown(self) -> None:
        """Ask every open watch to end (call on the loop)."""
        self.closing.set()
        for q in list(self._watch_queues):
            q.put_nowait(None)

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
                "kubesim request failed", extra={"method": request.method, "path": request.path}
            )
            return self._error(internal(str(exc)))

    def _error(self, e: ApiError) -> web.Response:
        resp = web.Response(body=_body(e.status()), status=e.code, content_type="application/json")
        for k, v in e.headers.items():
            resp.headers[k] = v
        return resp

    def _json(
        self,
        body: Any,
        status: int = 200,
        *,
        content_type: str = "application/json",
        warnings: list[str] | None = None,
        raw: bytes | None = None,
    ) -> web.Response:
        resp = web.Response(body=raw if raw is not None else _body(body), status=status)
        resp.headers["Content-Type"] = content_type
        resp.headers["Cache-Control"] = "no-cache, private"
        resp.headers["Audit-Id"] = uids.new_uid()
        for w in warnings or []:
            resp.headers.add(
                "Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'
            )
        return resp

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, request: web.Request, user: auth.User) -> web.StreamResponse:
        path = request.path
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self._json(
                {"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version", "/healthz"]}
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

    def _route(self, group: str, version: str, rest: list[str]) -> _Route:
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
        route = _Route(rt, namespace, name, sub)
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
                cached = (gen, _dumps(discovery.aggregated(types, core=which == "api")))
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

    async def _resource(self, request: web.Request, route: _Route) -> web.StreamResponse:
        verb = _verb(request, route)
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
        self, verb: str, route: _Route
    ) -> Callable[[web.Request, _Route, bytes], web.Response]:
        """The handler of a write ``verb``; it runs on a worker thread (the store blocks)."""
        if verb == "create":
            return self._create
        if verb == "update":
            return self._update
        if verb == "patch":
            return self._patch
        return self._delete_collection if route.name is None else self._delete

    # -------- reads

    def _wants_table(self, request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        return "as=Table" in accept and "meta.k8s.io" in accept

    def _out(self, route: _Route, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as the client's API version shows it."""
        if route.view is not None:
            return events_v1.from_core(obj)
        return self._present(route.rt, obj)

    def _into(self, route: _Route, obj: dict[str, Any]) -> dict[str, Any]:
        """A client's object in the stored form."""
        return events_v1.to_core(obj) if route.view is not None else obj

    def _present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("apiVersion") != rt.api_version or obj.get("kind") != rt.kind:
            obj = dict(obj)
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
        return obj

    @staticmethod
    def _field_selector(route: _Route, q: Mapping[str, str]) -> str | None:
        fs = q.get("fieldSelector")
        return events_v1.core_field_selector(fs) if route.view is not None else fs

    def _get(self, request: web.Request, route: _Route) -> web.Response:
        assert route.name is not None
        obj = self._out(route, self.store.get_ref(route.rt, route.name, route.namespace))
        if self._wants_table(request):
            table = tables.to_table(
                route.rt,
                [obj],
                resource_version=obj["metadata"].get("resourceVersion", ""),
                include_object=request.query.get("includeObject", "Metadata"),
            )
            return self._json(table, content_type=TABLE_CONTENT_TYPE)
        return self._json(obj)

    def _list(self, request: web.Request, route: _Route) -> web.Response:
        q = request.query
        pred = selectors.compile_selectors(q.get("labelSelector"), self._field_selector(route, q))
        items, rv = self.store.list_refs(route.rt, route.namespace, pred)
        cont_in = q.get("continue")
        if cont_in:
            try:
                token = json.loads(base64.urlsafe_b64decode(cont_in.encode()))
                start = (str(token["start"][0]), str(token["start"][1]))
                self.store.check_continue_rv(int(token["rv"]))
            except ApiError:
                raise
            except Exception as exc:
                raise bad_request("invalid continue token") from exc
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        limit = q.get("limit")
        cont_out = ""
        remaining = 0
        if limit and limit.isdigit() and int(limit) > 0 and len(items) > int(limit):
            n = int(limit)
            last = items[n - 1]["metadata"]
            remaining = len(items) - n
            items = items[:n]
            cont_out = base64.urlsafe_b64encode(
                _dumps({"rv": rv, "start": [last.get("namespace", ""), last["name"]]})
            ).decode()
        rt = route.client_type
        items = [self._out(route, o) for o in items]
        if self._wants_table(request):
            table = tables.to_table(
                rt,
                items,
                resource_version=str(rv),
                cont=cont_out,
                include_object=q.get("includeObject", "Metadata"),
                remaining=remaining,
            )
            return self._json(table, content_type=TABLE_CONTENT_TYPE)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if cont_out:
            meta["continue"] = cont_out
            meta["remainingItemCount"] = remaining
        return self._json(
            {"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": meta, "items": items}
        )

    async def _log(self, request: web.Request, route: _Route) -> web.StreamResponse:
        """One container's log (``?container=``, else the pod's only app container; 400 as
        upstream otherwise). ``follow`` streams what is appended until the container or the pod
        has finished, or its log starts over (a restarted container)."""
        assert route.name is not None and route.namespace is not None
        ns, name = route.namespace, route.name
        q = request.query
        pod = self.store.get_ref(route.rt, name, ns)
        container = kinds.log_container(pod, q.get("container"))
        text = self.store.get_pod_log(ns, name, container=container)
        if q.get("follow") not in ("true", "1"):
            return web.Response(text=_tail(text, q.get("tailLines")), content_type="text/plain")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = _tail(text, q.get("tailLines"))
        await resp.write(sent.encode())
        offset = len(text)
        while not self.closing.is_set():
            try:
                pod = self.store.get_ref(route.rt, name, ns)
                text = self.store.get_pod_log(ns, name, container=container)
            except ApiError:
                break
            if len(text) < offset:
                break  # the container restarted: this stream was the previous instance's
            if len(text) > offset:
                await resp.write(text[offset:].encode())
                offset = len(text)
            if _log_finished(pod, container):
                break
            await asyncio.sleep(LOG_FOLLOW_POLL)
        with contextlib.suppress(ConnectionResetError):
            await resp.write_eof()
        return resp

    # -------- watch

    async def _watch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        q = request.query
        match = self._watch_matcher(route, q)
        opts = self._watch_options(q)
        encoder = _WatchEncoder(
            route.client_type,  # what the client sees (the store is asked for route.rt)
            lambda obj: self._out(route, obj),
            as_table=self._wants_table(request),
            include=q.get("includeObject", "Metadata"),
        )
        queue: WatchQueue = asyncio.Queue()
        self._watch_queues.add(queue)
        self._loop = asyncio.get_running_loop()
        initial, current_rv, handle, expired = self._open_watch(route, opts.since, queue)

        resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = (
            TABLE_CONTENT_TYPE if encoder.as_table else "application/json"
        )
        resp.headers["Cache-Control"] = "no-cache, private"
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await resp.write(_dumps({"type": "ERROR", "object": expired.status()}) + b"\n")
                await resp.write_eof()
                return resp
            buf = bytearray()
            for first in initial:
                item = self._translate(first, match)
                if item is not None:
                    buf += encoder.event(*item)
            if opts.initial_events:
                buf += encoder.bookmark(current_rv, end=True)
            if buf:
                await resp.write(bytes(buf))
            await self._stream(resp, queue, match, encoder, opts, last_rv=current_rv)
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watch_queues.discard(queue)
            if handle is not None:
                handle.cancel()
        return resp

    def _watch_matcher(
        self, route: _Route, q: Mapping[str, str]
    ) -> Callable[[dict[str, Any] | None], bool]:
        """Whether an object is in the watch's selection (its selectors, and its name if any)."""
        lreqs = selectors.parse_label_selector(q.get("labelSelector"))
        freqs = selectors.parse_field_selector(self._field_selector(route, q))
        if route.name is not None:
            freqs = (*freqs, selectors.FieldRequirement(("metadata", "name"), False, route.name))

        def match(o: dict[str, Any] | None) -> bool:
            return (
                o is not None
                and selectors.match_labels(lreqs, o)
                and selectors.match_fields(freqs, o)
            )

        return match

    def _watch_options(self, q: Mapping[str, str]) -> _WatchOptions:
        send_initial = q.get("sendInitialEvents")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv_param = q.get("resourceVersion", "")
        if send_initial is not None:
            causes = _send_initial_events_causes(q, send_initial, bookmarks=bookmarks)
            if causes:
                raise invalid("ListOptions", "meta.k8s.io", "", causes)
        initial_events = send_initial == "true"
        since: int | None = None
        if not (initial_events or rv_param in ("", "0")):
            try:
                since = int(rv_param)
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {rv_param!r}") from exc
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            timeout = DEFAULT_WATCH_TIMEOUT
        if self.faults is not None:
            deadline = self.faults.watch_deadline()
            if deadline:
                timeout = min(timeout, float(deadline))
        return _WatchOptions(
            since=since, initial_events=initial_events, bookmarks=bookmarks, timeout=timeout
        )

    def _open_watch(
        self, route: _Route, since: int | None, queue: WatchQueue
    ) -> tuple[list[Event], int, WatchHandle | None, ApiError | None]:
        """(initial events, their resourceVersion, the store's watch, None), or the 410 Expired
        to answer with when ``since`` is too old (or a fault says so)."""

        def on_event(ev: Event) -> None:
            self._deliver(queue, ev)

        current_rv = self.store.resource_version
        if since is not None and self.faults is not None and self.faults.force_expired():
            expired = ApiError(
                410, "Expired", f"too old resource version: {since} ({current_rv})", details={}
            )
            return [], current_rv, None, expired
        try:
            initial, current_rv, handle = self.store.watch(
                route.rt, namespace=route.namespace, since=since, callback=on_event
            )
        except ApiError as e:
            if e.code != 410:
                raise
            return [], current_rv, None, e
        return initial, current_rv, handle, None

    async def _stream(
        self,
        resp: web.StreamResponse,
        queue: WatchQueue,
        match: Callable[[dict[str, Any] | None], bool],
        encoder: _WatchEncoder,
        opts: _WatchOptions,
        *,
        last_rv: int,
    ) -> None:
        """Write live events until the timeout, the server's shutdown or the queue's end; with
        bookmarks, a BOOKMARK after every BOOKMARK_INTERVAL without one."""
        end_at = time.monotonic() + opts.timeout
        next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
        while not self.closing.is_set():
            now = time.monotonic()
            if now >= end_at:
                break
            wait = min(end_at, next_bookmark if opts.bookmarks else end_at) - now
            try:
                ev: Event | None = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.0))
            except TimeoutError:
                if opts.bookmarks and time.monotonic() >= next_bookmark:
                    await resp.write(encoder.bookmark(last_rv))
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
                continue
            if ev is None:
                break
            out, last_rv = self._encode_burst(queue, ev, match, encoder, last_rv=last_rv)
            if out:
                await resp.write(out)

    def _encode_burst(
        self,
        queue: WatchQueue,
        ev: Event,
        match: Callable[[dict[str, Any] | None], bool],
        encoder: _WatchEncoder,
        *,
        last_rv: int,
    ) -> tuple[bytes, int]:
        """``ev`` and the events already queued behind it, as one write; the last
        resourceVersion seen."""
        out = bytearray()
        current: Event | None = ev
        while current is not None:
            last_rv = max(last_rv, current.rv)
            item = self._translate(current, match)
            if item is not None:
                out += encoder.event(*item)
            try:
                current = queue.get_nowait()
            except asyncio.QueueEmpty:
                current = None
        return bytes(out), last_rv

    @staticmethod
    def _translate(
        ev: Event, match: Callable[[dict[str, Any] | None], bool]
    ) -> tuple[str, dict[str, Any]] | None:
        """Apply selector transitions: entering the selection is ADDED, leaving it DELETED."""
        new_m = match(ev.obj)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if new_m else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if (new_m or match(ev.old)) else None
        old_m = match(ev.old)
        if new_m and old_m:
            return ("MODIFIED", ev.obj)
        if new_m:
            return ("ADDED", ev.obj)
        if old_m:
            return ("DELETED", ev.obj)
        return None

    # -------- writes (worker threads)

    def _decode(self, request: web.Request, body: bytes, *, yaml_ok: bool = False) -> Any:
        ctype = _content_type(request)
        if not body:
            raise bad_request("the body of the request was empty")
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(body)
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml") or (
                yaml_ok and ctype.endswith("yaml")
            ):
                return _load_yaml(body)
            if ctype in ("", "application/json", "*/*") or ctype.endswith("+json"):
                return json.loads(body)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
        raise ApiError(
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml",
            details={},
        )

    def _options(self, request: web.Request) -> tuple[bool, str, str]:
        q = request.query
        dry_run = "All" in q.getall("dryRun", [])
        manager = (
            q.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
        )
        fv = q.get("fieldValidation", "Warn")
        if fv not in ("Strict", "Warn", "Ignore"):
            raise invalid(
                "CreateOptions",
                "meta.k8s.io",
                "",
                [
                    Cause(
                        "FieldValueNotSupported",
                        "fieldValidation",
                        f'Unsupported value: "{fv}": supported values: "Ignore", "Strict", "Warn"',
                    )
                ],
            )
        return dry_run, manager, fv

    def _attrs(
        self,
        op: str,
        route: _Route,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
        *,
        name: str,
        subresource: str = "",
        dry_run: bool = False,
        options: dict[str, Any] | None = None,
    ) -> Attributes:
        from kubesim import admission as adm

        rt = route.rt
        return adm.Attributes(
            operation=op,
            gvr=rt.gvr,
            kind={"group": rt.group, "version": rt.version, "kind": rt.kind},
            namespace=route.namespace,
            name=name,
            obj=obj,
            old_obj=old,
            subresource=subresource,
            dry_run=dry_run,
            user=(route.user or self.admin).user_info(),
            options=options,
        )

    def _has_webhooks(self) -> bool:
        """Whether admission can matter at all: without any webhook configuration the admission
        chain is skipped and the store prepares and validates each object exactly once."""
        if isinstance(self.admission, _NoAdmission):
            return False
        return self.store.has_objects(MUTATING_CONFIGS) or self.store.has_objects(
            VALIDATING_CONFIGS
        )

    def _check_identity(self, route: _Route, obj: Any) -> dict[str, Any]:
        rt = route.client_type
        if not isinstance(obj, dict):
            raise bad_request(
                f"json: cannot unmarshal {type(obj).__name__} into Go value of type "
                f"map[string]interface {{}}"
            )
        av = obj.get("apiVersion")
        if av and av != rt.api_version:
            # other served versions of the same CRD share storage
            grp, _, ver = str(av).rpartition("/")
            if not (
                grp == rt.group and self.store.registry.find(GVR(grp, ver, rt.resource)) is not None
            ):
                raise bad_request(
                    f"the API version in the data ({av}) does not match the expected API version "
                    f"({rt.api_version})"
                )
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        meta = obj.get("metadata")
        if meta is None:
            obj["metadata"] = meta = {}
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if (
            rt.namespaced
            and meta.get("namespace")
            and route.namespace
            and meta["namespace"] != route.namespace
        ):
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        return obj

    def _create(self, request: web.Request, route: _Route, body: bytes) -> web.Response:
        rt = route.rt
        if route.namespace is None and rt.namespaced:
            raise method_not_allowed()
        obj = self._into(
            route, self._check_identity(route, self._decode(request, body, yaml_ok=True))
        )
        dry_run, manager, fv = self._options(request)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.namespaced:
            obj["metadata"]["namespace"] = route.namespace
        return self._persist_create(
            route, obj, dry_run=dry_run, manager=manager, store_manager=manager, fv=fv
        )

    def _persist_create(
        self,
        route: _Route,
        obj: dict[str, Any],
        *,
        dry_run: bool,
        manager: str,
        store_manager: str | None,
        fv: str,
    ) -> web.Response:
        """Admit (when webhooks exist) and store a new object; 201 with the stored object.

        ``manager`` is the request's field manager (in the admission CreateOptions);
        ``store_manager`` the one the Store records in managedFields (None for an apply, whose
        managedFields are already computed).
        """
        rt = route.rt
        hooks = self._has_webhooks()
        warnings: list[str] = []
        if hooks:
            # the Store's defaulting/validation runs here, around the webhooks (see _admit)
            warnings += self.store.prepare(rt, obj, field_validation=fv)
            obj, w = self._admit(
                "CREATE",
                route,
                obj,
                None,
                name=str(obj["metadata"].get("name") or ""),
                dry_run=dry_run,
                options=_write_options("CreateOptions", manager, fv),
            )
            warnings += w
        with self.store.lock:
            created = self.store._create(
                rt,
                obj,
                route.namespace,
                dry_run=dry_run,
                field_manager=store_manager,
                field_validation="Ignore" if hooks else fv,
                warnings=None if hooks else warnings,
                prepared=hooks,
            )
        out = _body(self._out(route, created))  # stored objects never change: unlocked
        return self._json(None, 201, raw=out, warnings=warnings)

    def _admit(
        self,
        op: str,
        route: _Route,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        name: str,
        subresource: str = "",
        dry_run: bool,
        options: dict[str, Any],
    ) -> tuple[dict[str, Any], list[str]]:
        """Mutating webhooks, then (on CREATE) the core's defaulting and validation of what they
        made, then validating webhooks; returns the admitted object and the warnings."""

        def attrs(current: dict[str, Any]) -> Attributes:
            return self._attrs(
                op,
                route,
                current,
                old,
                name=name,
                subresource=subresource,
                dry_run=dry_run,
                options=options,
            )

        obj, mutated = self.admission.mutate(attrs(obj))
        warnings = list(mutated)
        if op == "CREATE":
            self.store.prepare(route.rt, obj, field_validation="Ignore")
            self.store.validate(route.rt, obj)
        warnings += self.admission.validate(attrs(obj))
        return obj, warnings

    def _update(self, request: web.Request, route: _Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        obj = self._into(
            route, self._check_identity(route, self._decode(request, body, yaml_ok=True))
        )
        dry_run, manager, fv = self._options(request)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != route.name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({route.name})"
            )
        meta["name"] = route.name
        if rt.namespaced:
            meta["namespace"] = route.namespace
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        hooks = self._has_webhooks()
        warnings: list[str] = []
        if hooks:
            old = clone(self.store.get_ref(rt, route.name, route.namespace))
            warnings += self.store.prepare(rt, obj, old=old, field_validation=fv)
            obj, w = self._admit(
                "UPDATE",
                route,
                obj,
                old,
                name=route.name,
                subresource=route.subresource or "",
                dry_run=dry_run,
                options=_write_options("UpdateOptions", manager, fv),
            )
            warnings += w
        with self.store.lock:
            updated = self.store._update(
                rt,
                obj,
                route.namespace,
                subresource=route.subresource,
                dry_run=dry_run,
                field_manager=manager,
                field_validation="Ignore" if hooks else fv,
                warnings=None if hooks else warnings,
                require_resource_version=not rt.builtin,
            )
        out = _body(self._out(route, updated))
        return self._json(None, raw=out, warnings=warnings)

    def _patch(self, request: web.Request, route: _Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        ptype = _patch_type(rt, _content_type(request))
        dry_run, manager, fv = self._options(request)
        force = request.query.get("force")
        if ptype == "apply":
            patch_body = self._decode_apply_patch(route, body, request.query)
        else:
            patch_body = _decode_patch(ptype, body, force=force)
        has_rv_precondition = (
            ptype != "json"
            and isinstance(patch_body, dict)
            and bool((patch_body.get("metadata") or {}).get("resourceVersion"))
        )
        sub = route.subresource or ""
        opts = _write_options("UpdateOptions", manager, fv)
        for attempt in range(PATCH_RETRIES):
            try:
                cur = self.store.get_ref(rt, route.name, route.namespace)
            except ApiError as e:
                if e.code == 404 and ptype == "apply" and not sub:
                    assert isinstance(patch_body, dict)  # checked above for apply patches
                    return self._apply_create(
                        request,
                        route,
                        patch_body,
                        manager=manager,
                        dry_run=dry_run,
                        fv=fv,
                        force=force == "true",
                    )
                raise
            cur_copy = clone(cur)
            new, managed_override = self._patched(
                route, ptype, cur_copy, patch_body, manager=manager, force=force == "true"
            )
            if ptype == "json":
                new["metadata"].setdefault("resourceVersion", cur["metadata"]["resourceVersion"])
            elif not has_rv_precondition:
                new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            hooks = self._has_webhooks()
            warnings: list[str] = []
            if hooks:
                warnings += self.store.prepare(rt, new, old=cur_copy, field_validation=fv)
                new, w = self._admit(
                    "UPDATE",
                    route,
                    new,
                    cur_copy,
                    name=route.name,
                    subresource=sub,
                    dry_run=dry_run,
                    options=opts,
                )
                warnings += w
            try:
                with self.store.lock:
                    updated = self.store._update(
                        rt,
                        new,
                        route.namespace,
                        subresource=route.subresource,
                        dry_run=dry_run,
                        field_manager=None if ptype == "apply" else manager,
                        managed_override=managed_override,
                        field_validation="Ignore" if hooks else fv,
                        warnings=None if hooks else warnings,
                    )
                out = _body(self._out(route, updated))
            except ApiError as e:
                if (
                    e.code == 409
                    and e.reason == "Conflict"
                    and not has_rv_precondition
                    and attempt + 1 < PATCH_RETRIES
                ):
                    continue
                raise
            return self._json(None, raw=out, warnings=warnings)
        raise ApiError(409, "Conflict", "too many conflicts", details={})

    def _decode_apply_patch(
        self, route: _Route, body: bytes, q: Mapping[str, str]
    ) -> dict[str, Any]:
        """An apply configuration: a YAML object with apiVersion and kind, for this object,
        from a named field manager."""
        if not q.get("fieldManager"):
            raise invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                [
                    Cause(
                        "FieldValueRequired",
                        "fieldManager",
                        "Required value: is required for apply patch",
                    )
                ],
            )
        try:
            patch_body = _load_yaml(body) if body else None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding YAML: {exc}") from exc
        if not isinstance(patch_body, dict):
            raise bad_request("apply patch must be an object")
        if not patch_body.get("apiVersion") or not patch_body.get("kind"):
            raise bad_request("apiVersion and kind must be set in an apply configuration")
        self._check_identity(route, patch_body)
        pmeta = patch_body.get("metadata") or {}
        if pmeta.get("name") and pmeta["name"] != route.name:
            raise bad_request(
                f"the name of the object ({pmeta['name']}) does not match the name on the URL "
                f"({route.name})"
            )
        return patch_body

    def _patched(
        self,
        route: _Route,
        ptype: str,
        cur: dict[str, Any],
        patch_body: Any,
        *,
        manager: str,
        force: bool,
    ) -> tuple[dict[str, Any], list[Any] | None]:
        """(``cur`` patched, in the stored form; the managedFields server-side apply computed,
        or None for the other patch types, whose manager is recorded by the update)."""
        rt = route.rt
        target = self._out(route, cur) if route.view is not None else cur
        managed_override = None
        if ptype == "merge":
            new = merge_patch(target, patch_body)
        elif ptype == "json":
            new = json_patch(target, patch_body)
        elif ptype == "strategic":
            new = strategic_merge(target, patch_body)
        else:
            assert isinstance(patch_body, dict)
            new = managed.apply(
                target,
                patch_body,
                manager=manager,
                force=force,
                api_version=rt.api_version,
                has_status=rt.has_status,
                subresource=route.subresource,
                list_type=managed.list_type_for(rt),
            )
            managed_override = new["metadata"].get("managedFields", [])
        if not isinstance(new, dict):
            raise bad_request("the patch produced a non-object document")
        new = self._into(route, new)
        new.setdefault("metadata", {})
        if not isinstance(new["metadata"], dict):
            raise bad_request("metadata must be an object")
        if new["metadata"].get("name") != route.name:
            raise bad_request("the name of the object cannot be changed by a patch")
        return new, managed_override

    def _apply_create(
        self,
        request: web.Request,
        route: _Route,
        applied: dict[str, Any],
        *,
        manager: str,
        dry_run: bool,
        fv: str,
        force: bool,
    ) -> web.Response:
        rt = route.rt
        obj = managed.apply(
            None,
            applied,
            manager=manager,
            force=force,
            api_version=rt.api_version,
            has_status=rt.has_status,
            subresource=None,
            list_type=managed.list_type_for(rt),
        )
        obj = self._into(route, obj)
        meta = obj.setdefault("metadata", {})
        meta["name"] = route.name
        if rt.namespaced:
            meta["namespace"] = route.namespace
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        # managedFields come from managed.apply above: the Store must not record an Update entry
        return self._persist_create(
            route, obj, dry_run=dry_run, manager=manager, store_manager=None, fv=fv
        )

    def _delete_options(self, request: web.Request, body: bytes) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        ctype = _content_type(request)
        if ctype == "application/vnd.kubernetes.protobuf" and body:
            opts.update(protobuf.delete_options(body))
        elif body.strip():
            try:
                parsed = json.loads(body)
            except ValueError as exc:
                raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
            if isinstance(parsed, dict):
                opts.update(parsed)
        q = request.query
        if q.get("propagationPolicy"):
            opts["propagationPolicy"] = q["propagationPolicy"]
        if "All" in q.getall("dryRun", []):
            opts["dryRun"] = ["All"]
        if q.get("orphanDependents") in ("true", "false") and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = (
                "Orphan" if q["orphanDependents"] == "true" else "Background"
            )
        if opts.get("orphanDependents") is True and "propagationPolicy" not in opts:
            opts["propagationPolicy"] = "Orphan"
        return opts

    def _delete(self, request: web.Request, route: _Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        if route.subresource:
            raise method_not_allowed()
        opts = self._delete_options(request, body)
        dry_run = "All" in (opts.get("dryRun") or [])
        cur = clone(self.store.get_ref(rt, route.name, route.namespace))
        warnings = (
            []
            if not self._has_webhooks()
            else self.admission.validate(
                self._attrs(
                    "DELETE",
                    route,
                    None,
                    cur,
                    name=route.name,
                    dry_run=dry_run,
                    options={"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", **opts},
                )
            )
        )
        propagation = opts.get("propagationPolicy") or "Background"
        with self.store.lock:
            obj, gone = self.store._delete(
                rt,
                route.name,
                route.namespace,
                propagation=propagation,
                preconditions=opts.get("preconditions"),
                dry_run=dry_run,
            )
        if gone and rt.key not in RETURN_DELETED_OBJECT:
            details: dict[str, Any] = {"name": route.name}
            if rt.group:
                details["group"] = rt.group
            details["kind"] = rt.resource
            details["uid"] = obj["metadata"]["uid"]
            out = _body(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        else:
            out = _body(self._out(route, obj))
        return self._json(None, raw=out, warnings=warnings)

    def _delete_collection(self, request: web.Request, route: _Route, body: bytes) -> web.Response:
        rt = route.rt
        q = request.query
        opts = self._delete_options(request, body)
        dry_run = "All" in (opts.get("dryRun") or [])
        pred = selectors.compile_selectors(q.get("labelSelector"), self._field_selector(route, q))
        items, _rv = self.store.list_refs(rt, route.namespace, pred)
        deleted = []
        for o in items:
            with self.store.lock:
                try:
                    obj, _gone = self.store._delete(
                        rt,
                        o["metadata"]["name"],
                        o["metadata"].get("namespace"),
                        propagation=opts.get("propagationPolicy") or "Background",
                        dry_run=dry_run,
                    )
                except ApiError as e:
                    if e.code == 404:
                        continue
                    raise
                deleted.append(self._out(route, obj))
        return self._json(
            {
                "apiVersion": rt.api_version,
                "kind": rt.list_kind,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )


def _content_type(request: web.Request) -> str:
    """The media type of the request body, without parameters (``; charset=utf-8``)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


def _verb(request: web.Request, route: _Route) -> str:
    """The API verb of a resource request; 405 for a method the route does not take."""
    if request.method == "GET":
        if route.name is not None:
            return "get"
        return "watch" if request.query.get("watch") in ("true", "1") else "list"
    verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        request.method, ""
    )
    if (
        not verb
        or (verb == "create" and route.name is not None)
        or (verb in ("update", "patch") and route.name is None)
    ):
        raise method_not_allowed()
    return verb


def _patch_type(rt: ResourceType, content_type: str) -> str:
    """merge | json | strategic (built-in kinds only) | apply; 415 for anything else."""
    ptype = _PATCH_TYPES.get(content_type)
    if ptype is None or ptype == "apply-cbor" or (ptype == "strategic" and not rt.builtin):
        accepted = (
            "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            + (", application/strategic-merge-patch+json" if rt.builtin else "")
        )
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{accepted}",
            details={},
        )
    return ptype


def _decode_patch(ptype: str, body: bytes, *, force: str | None) -> Any:
    """The JSON body of a merge, JSON or strategic patch (``force`` is for apply only)."""
    if force is not None:
        raise invalid(
            "PatchOptions",
            "meta.k8s.io",
            "",
            [
                Cause(
                    "FieldValueForbidden",
                    "force",
                    "Forbidden: may not be specified for non-apply patch",
                )
            ],
        )
    try:
        patch_body = json.loads(body) if body else None
    except ValueError as exc:
        raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
    if ptype in ("merge", "strategic") and not isinstance(patch_body, dict):
        raise bad_request(
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )
    return patch_body


def _write_options(kind: str, manager: str, fv: str) -> dict[str, Any]:
    """The CreateOptions/UpdateOptions object admission webhooks see in ``request.options``."""
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": kind,
        "fieldManager": manager,
        "fieldValidation": fv,
    }


def _log_finished(pod: Mapping[str, Any], container: str) -> bool:
    """Whether a followed log can grow no more: the pod is done, or the container terminated
    (an init container that finished while the pod runs on)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    for field in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(field) or []:
            if cs.get("name") == container:
                return "terminated" in (cs.get("state") or {})
    return False


def _tail(text: str, tail_lines: str | None) -> str:
    if tail_lines and tail_lines.lstrip("-").isdigit():
        n = int(tail_lines)
        if n >= 0:
            lines = text.splitlines(keepends=True)
            return "".join(lines[-n:]) if n else ""
    return text
