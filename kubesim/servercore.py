"""What every kubesim request handler shares: the server state (Store, admission, faults,
open watches), routes, JSON and Status responses, body decoding and write options, and the
admission attributes of a request (with its user). ``ApiServer`` (server.py) adds routing on
top of the handlers built on this: reads, watches, writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

import orjson
import yaml
from aiohttp import web

from kubesim import auth, openapi, protobuf, uids
from kubesim import events as events_v1
from kubesim.errors import ApiError, Cause, bad_request, invalid
from kubesim.eventlog import Event
from kubesim.resources import GVR, ResourceType
from kubesim.store import Store
from kubesim.tables import ColumnDefinition, Getter

if TYPE_CHECKING:
    from kubesim.admission import Attributes
    from kubesim.faults import Faults

log = logging.getLogger(__name__)


# what a watch's asyncio queue carries: store events, then None when the server shuts down
WatchQueue = asyncio.Queue[Event | None]


TABLE_CONTENT_TYPE = "application/json;as=Table;v=v1;g=meta.k8s.io"


WRITE_WORKERS = 16  # threads for writes (webhook calls block)


MAX_BODY = 16 * 1024 * 1024


EVENTS_V1_KEY = ("events.k8s.io", "events")


CORE_EVENTS = GVR("", "v1", "events")


MUTATING_CONFIGS = GVR("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")


VALIDATING_CONFIGS = GVR("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")


class YamlLoader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings (JSON has no datetime; kube stores text)."""


def load_yaml(body: bytes) -> Any:
    return yaml.load(body, Loader=YamlLoader)


def dumps(obj: Any) -> bytes:
    """Compact JSON. orjson (~5x json.dumps; every response body and watch event is one of
    these: ~15% of kubesim's CPU in bench/controller.py); what it does not write (an integer
    past 64 bits, a non-string key) goes through json.dumps as before. Text differs from
    json.dumps only in non-ASCII characters, written as UTF-8 rather than \\u escapes (as Go's
    encoder writes them)."""
    try:
        return orjson.dumps(obj)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(obj, separators=(",", ":")).encode()


# a body with 19 digits in a row may hold an integer orjson reads as a float (past 64 bits):
# digits mapped to "0", everything else to " ", then a substring search (a regular expression
# took longer than json.loads of the body)
_DIGITS_ONLY = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER = b"0" * 19


def loads(body: bytes) -> Any:
    """A JSON request body, decoded as json.loads decodes it, mostly by orjson (~3x faster).
    json.loads takes what orjson refuses (NaN, a BOM or UTF-16 text, invalid JSON: it decodes
    it or raises the ValueError it always raised) and any body with 19 digits in a row (orjson
    reads an integer past 64 bits as a float)."""
    if _LONG_NUMBER not in body.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return json.loads(body)


def json_body(obj: Any) -> bytes:
    """A JSON response body as the API server writes it (Go's json.Encoder: a final newline)."""
    return dumps(obj) + b"\n"


class AdmissionChain(Protocol):
    """What the server needs of admission (kubesim.admission.Admission, or none)."""

    def mutate(self, attrs: Attributes) -> tuple[dict[str, Any], list[str]]: ...

    def validate(self, attrs: Attributes) -> list[str]: ...


class NoAdmission:
    def mutate(self, attrs: Attributes) -> tuple[dict[str, Any], list[str]]:
        assert attrs.obj is not None  # only called for CREATE/UPDATE, which carry an object
        return attrs.obj, []

    def validate(self, attrs: Attributes) -> list[str]:
        return []


class Route:
    __slots__ = ("name", "namespace", "rt", "subresource", "user", "view")

    def __init__(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
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


def content_type_of(request: web.Request) -> str:
    """The media type of the request body, without parameters (``; charset=utf-8``)."""
    return request.headers.get("Content-Type", "").split(";")[0].strip().lower()


class ServerCore:
    """The state and helpers every handler uses (see module docstring)."""

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
        self.admission: AdmissionChain = admission or NoAdmission()
        self.faults = faults
        self.server_address = server_address
        self.pool = ThreadPoolExecutor(
            max_workers=WRITE_WORKERS, thread_name_prefix="kubesim-write"
        )
        self.openapi = openapi.OpenApiCache()
        self._disc_cache: dict[str, tuple[int, bytes]] = {}
        self._watch_queues: set[WatchQueue] = set()
        # watches.EncodedEvents by (apiVersion, kind) shown: one encoding of an event per view
        self._event_lines: dict[tuple[str, str], Any] = {}
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

    def _error(self, e: ApiError) -> web.Response:
        resp = web.Response(
            body=json_body(e.status()), status=e.code, content_type="application/json"
        )
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
        resp = web.Response(body=raw if raw is not None else json_body(body), status=status)
        resp.headers["Content-Type"] = content_type
        resp.headers["Cache-Control"] = "no-cache, private"
        resp.headers["Audit-Id"] = uids.new_uid()
        for w in warnings or []:
            resp.headers.add(
                "Warning", '299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"'
            )
        return resp

    def _table_columns(self, rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
        """The kind's table columns (its strategy's TableConvertor)."""
        return self.store.kinds.for_type(rt).table(rt)

    def _wants_table(self, request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        return "as=Table" in accept and "meta.k8s.io" in accept

    def _out(self, route: Route, obj: dict[str, Any]) -> dict[str, Any]:
        """A stored object as the client's API version shows it."""
        if route.view is not None:
            return events_v1.from_core(obj)
        return self._present(route.rt, obj)

    def _into(self, route: Route, obj: dict[str, Any]) -> dict[str, Any]:
        """A client's object in the stored form."""
        return events_v1.to_core(obj) if route.view is not None else obj

    def _present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        if obj.get("apiVersion") != rt.api_version or obj.get("kind") != rt.kind:
            obj = dict(obj)
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
        return obj

    @staticmethod
    def _field_selector(route: Route, q: Mapping[str, str]) -> str | None:
        fs = q.get("fieldSelector")
        return events_v1.core_field_selector(fs) if route.view is not None else fs

    def _decode(self, request: web.Request, body: bytes, *, yaml_ok: bool = False) -> Any:
        ctype = content_type_of(request)
        if not body:
            raise bad_request("the body of the request was empty")
        if ctype == "application/vnd.kubernetes.protobuf":
            return protobuf.decode(body)
        try:
            if ctype in ("application/yaml", "application/apply-patch+yaml") or (
                yaml_ok and ctype.endswith("yaml")
            ):
                return load_yaml(body)
            if ctype in ("", "application/json", "*/*") or ctype.endswith("+json"):
                return loads(body)
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
        route: Route,
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
        if isinstance(self.admission, NoAdmission):
            return False
        return self.store.has_objects(MUTATING_CONFIGS) or self.store.has_objects(
            VALIDATING_CONFIGS
        )

    def _check_identity(self, route: Route, obj: Any) -> dict[str, Any]:
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
