"""The in-memory object store: the single source of truth of a kubesim cluster.

Invariants (everything else in kubesim relies on them):

* One global ``resourceVersion`` counter. Every persisted change (create, update, status write,
  deletion mark, final removal) takes the next value, and the watch event for it carries the same
  value; events are appended to one bounded history in that order. A write that changes nothing
  (ignoring managedFields timestamps) is not persisted: same resourceVersion, no event.
* Stored objects are never mutated in place: each commit stores a new dict. Public methods hand
  out deep copies, so callers (the runner, tests) may modify what they get.
* All reads and writes hold one re-entrant lock; subscriber callbacks run synchronously under
  it, right after the commit, in resourceVersion order. They must not block (hand work to a
  queue): the HTTP watch fan-out does ``loop.call_soon_threadsafe``.
* Writes by in-process components (the runner) go through the same defaulting, validation,
  resourceVersion, finalizer and garbage-collection logic as HTTP writes, but not through
  admission webhooks (the HTTP layer calls those before it calls the store).
* Garbage collection is synchronous: when an object is finally removed, dependents whose owners
  are all gone are deleted (background propagation); ``Foreground`` marks the owner with the
  ``foregroundDeletion`` finalizer until dependents with ``blockOwnerDeletion`` are gone;
  ``Orphan`` strips the owner reference. Deleting a namespace marks it Terminating, deletes its
  content and removes it when empty. Deleting a CRD deletes its custom resources.
* Pod logs are kept per container (``set_pod_log``/``get_pod_log``; no container means the
  pod's default one) and dropped when the pod is finally removed.
* With ``data_dir`` the whole store (objects, counter, pod logs) is written to
  ``<data_dir>/store.json`` (atomically, at most once per ``PERSIST_INTERVAL`` while dirty, and on
  ``close()``) and loaded again on start, so a restarted server keeps its objects. Watch history
  does not survive a restart: watches from an older resourceVersion then get 410 Expired.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesim import kinds, schema, selectors, strategy, uids
from kubesim.clone import clone
from kubesim.errors import ApiError, Cause, already_exists, conflict, expired, invalid, not_found
from kubesim.errors import required as required_cause
from kubesim.resources import GVR, Registry, ResourceType
from kubesim.timestamps import now_rfc3339

__all__ = ["GVR", "ApiError", "Event", "ResourceType", "Store", "WatchHandle"]

log = logging.getLogger(__name__)

FIRST_RESOURCE_VERSION = 100  # arbitrary start, as a real etcd never starts at 0 either
HISTORY_SIZE = 20_000  # watch events kept for resumption; older resourceVersions get 410
PERSIST_INTERVAL = 0.5  # seconds between snapshots while dirty (bounded write amplification)
GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's alphabet (no vowels)
GENERATE_NAME_SUFFIX = 5
SEEDED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")  # upstream refuses to delete them
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NS_KEY = ("", "namespaces")
POD_KEY = ("", "pods")
POD_GVR = GVR("", "v1", "pods")
_SERVER_META = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
)


def _check_resource_version(
    rt: ResourceType,
    name: str,
    meta_in: dict[str, Any],
    cur_meta: dict[str, Any],
    *,
    required: bool,
) -> None:
    """An update that names a resourceVersion must name the current one (409 otherwise); kinds
    that require one (custom resources) get 422 without it."""
    rv_in = meta_in.get("resourceVersion")
    if rv_in:
        if str(rv_in) != cur_meta["resourceVersion"]:
            raise conflict(rt.resource, rt.group, name)
    elif required:
        raise invalid(rt.kind, rt.group, name, [invalid_rv_cause()])


def _updated(
    rt: ResourceType, obj: dict[str, Any], cur: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The object an update writes: through ``status`` only the status changes; otherwise
    everything but the status (of a kind with a status subresource) does."""
    if subresource == "status":
        # everything but the status is the stored object's, shared, not copied: stored objects
        # are never changed, and preparing an update leaves a subtree equal to the stored one
        # as it is (prune and schema defaults skip it, built-in defaulting is idempotent)
        new = dict(cur)
        new["metadata"] = dict(cur["metadata"])
        if "status" in obj:
            new["status"] = obj["status"]
        else:
            new.pop("status", None)
        return new
    if subresource:
        raise ApiError(
            404, "NotFound", "the server could not find the requested resource", details={}
        )
    if rt.has_status:
        if "status" in cur:
            obj["status"] = clone(cur["status"])
        else:
            obj.pop("status", None)
    return obj


def _keep_server_meta(
    meta: dict[str, Any],
    cur_meta: dict[str, Any],
    managed_override: list[dict[str, Any]] | None,
) -> None:
    """Fields only the server sets keep their stored values (resourceVersion is set by the
    commit); managedFields are the client's if it sent them, else the stored ones, unless
    server-side apply computed them (``managed_override``)."""
    for f in _SERVER_META:
        if f in cur_meta and f not in ("resourceVersion", "managedFields"):
            meta[f] = clone(cur_meta[f])
        elif f != "managedFields":
            meta.pop(f, None)
    if "managedFields" not in meta and "managedFields" in cur_meta:
        meta["managedFields"] = clone(cur_meta["managedFields"])
    if managed_override is not None:
        meta["managedFields"] = managed_override


def _refuse_new_finalizers(
    rt: ResourceType, name: str, meta: dict[str, Any], cur_meta: dict[str, Any]
) -> None:
    """An object being deleted may lose finalizers but not gain any (422, as upstream)."""
    added = set(meta.get("finalizers") or []) - set(cur_meta.get("finalizers") or [])
    if added:
        raise invalid(
            rt.kind,
            rt.group,
            name,
            [
                kinds.forbidden_cause(
                    "metadata.finalizers",
                    "no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers {sorted(added)!r}",
                )
            ],
        )


def _check_preconditions(
    rt: ResourceType, name: str, meta: dict[str, Any], preconditions: dict[str, Any]
) -> None:
    """A delete's uid and resourceVersion preconditions must match the stored object (409)."""
    puid = preconditions.get("uid")
    if puid and puid != meta["uid"]:
        raise conflict(
            rt.resource,
            rt.group,
            name,
            f"Precondition failed: UID in precondition: {puid}, UID in object meta: {meta['uid']}",
        )
    prv = preconditions.get("resourceVersion")
    if prv and str(prv) != meta["resourceVersion"]:
        raise conflict(
            rt.resource,
            rt.group,
            name,
            f"Precondition failed: ResourceVersion in precondition: {prv}, "
            f"ResourceVersion in object meta: {meta['resourceVersion']}",
        )


@dataclass(frozen=True)
class Event:
    """One committed change, as kept in the watch history."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: tuple[str, str]
    namespace: str
    obj: dict[str, Any]  # the stored (shared, never mutated) new state; for DELETED the last state
    old: dict[str, Any] | None  # the previous state (selector transitions need it)


class WatchHandle:
    """A registered watch listener; ``cancel()`` unregisters it."""

    def __init__(self, store: Store, listener: _Listener) -> None:
        self._store = store
        self._listener = listener

    def cancel(self) -> None:
        self._store._remove_listener(self._listener)


@dataclass
class _Listener:
    key: tuple[str, str] | None
    namespace: str | None
    callback: Callable[[Event], None]


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def _strip_volatile(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without fields a no-op comparison must ignore."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    mf = meta.get("managedFields")
    if isinstance(mf, list):
        meta["managedFields"] = [
            {k: v for k, v in e.items() if k != "time"} for e in mf if isinstance(e, dict)
        ]
    meta.pop("resourceVersion", None)
    out["metadata"] = meta
    return out


def _spec_part(obj: dict[str, Any], has_status: bool) -> dict[str, Any]:
    """What counts for metadata.generation: everything but metadata (and status if a subresource)."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (has_status and k == "status")}


class Store:
    """Thread-safe in-memory Kubernetes object store (see module docstring for invariants)."""

    def __init__(
        self, *, data_dir: str | os.PathLike[str] | None = None, history_size: int = HISTORY_SIZE
    ) -> None:
        self.registry = Registry()
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str], dict[str, dict[str, dict[str, Any]]]] = {}
        self._rv = FIRST_RESOURCE_VERSION
        self._history: deque[Event] = deque(maxlen=history_size)
        self._compacted_rv = FIRST_RESOURCE_VERSION  # watches from an older RV get 410
        self._listeners: builtins.list[_Listener] = []
        self._subscribers: builtins.list[Callable[[str, GVR, dict[str, Any]], None]] = []
        # (namespace, pod) -> container -> text; dropped with the pod
        self._logs: dict[tuple[str, str], dict[str, str]] = {}
        self._by_uid: dict[str, tuple[tuple[str, str], str, str]] = {}
        self._dependents: dict[str, set[tuple[tuple[str, str], str, str]]] = {}
        self._data_dir = Path(data_dir) if data_dir else None
        self._dirty = False
        self._closed = threading.Event()
        self._persist_thread: threading.Thread | None = None
        self._persist_io = threading.Lock()  # one snapshot writer at a time (loop and close())
        loaded = self._data_dir is not None and self._load()
        if not loaded:
            for ns in SEEDED_NAMESPACES:
                self.create(GVR("", "v1", "namespaces"), {"metadata": {"name": ns}})
        if self._data_dir is not None:
            self._persist_thread = threading.Thread(
                target=self._persist_loop, name="kubesim-persist", daemon=True
            )
            self._persist_thread.start()

    # ------------------------------------------------------------------ public API (iface)

    def create(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        return self._write(
            gvr,
            obj,
            lambda rt, copy: self._create(
                rt, copy, namespace, dry_run=dry_run, field_manager=field_manager
            ),
        )

    def get(self, gvr: GVR, name: str, *, namespace: str | None = None) -> dict[str, Any]:
        rt = self.registry.get(gvr)
        with self._lock:
            ref = self._get_ref(rt, name, namespace)
        return self._present(rt, clone(ref))  # stored objects never change: copy unlocked

    def update(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        copy_result: bool = True,
        owned: bool = False,
    ) -> dict[str, Any]:
        """Update (or write the status of) an object. ``copy_result=False``: the caller gets
        the stored object itself, to read only (the Job runner, which ignores it).
        ``owned``: ``obj`` is the caller's own copy (from ``get``), handed over: the Store may
        keep it and the caller must not change it afterwards."""
        return self._write(
            gvr,
            obj,
            lambda rt, copy: self._update(
                rt,
                copy,
                namespace,
                subresource=subresource,
                dry_run=dry_run,
                field_manager=field_manager,
            ),
            copy_result=copy_result,
            owned=owned,
        )

    def _write(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        write: Callable[[ResourceType, dict[str, Any]], dict[str, Any]],
        *,
        copy_result: bool = True,
        owned: bool = False,
    ) -> dict[str, Any]:
        """Run ``write`` on a copy of ``obj`` under the lock; the caller gets its own copy back
        (neither side may alias the stored object). The copy back is made after the lock is
        released: a stored object is never changed, only replaced."""
        rt = self.registry.get(gvr)
        mine = obj if owned else clone(obj)
        with self._lock:
            written = write(rt, mine)
        return clone(written) if copy_result else written

    def delete(
        self,
        gvr: GVR,
        name: str,
        *,
        namespace: str | None = None,
        propagation: str = "Background",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        rt = self.registry.get(gvr)
        with self._lock:
            obj, _gone = self._delete(
                rt,
                name,
                namespace,
                propagation=propagation,
                preconditions=preconditions,
                dry_run=dry_run,
            )
        return clone(obj)

    def list(
        self,
        gvr: GVR,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[dict[str, Any]]:
        rt = self.registry.get(gvr)
        pred = selectors.compile_selectors(label_selector, field_selector)
        with self._lock:
            refs = [o for o in self._iter(rt.key, namespace) if pred is None or pred(o)]
        return [self._present(rt, clone(o)) for o in refs]

    def subscribe(self, callback: Callable[[str, GVR, dict[str, Any]], None]) -> Callable[[], None]:
        """callback(type, gvr, obj) after each committed change, synchronously, under the
        Store's lock; ``obj`` is the stored object itself (read it, never change it: it is
        not copied for each subscriber). Returns unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def set_pod_log(
        self,
        namespace: str,
        name: str,
        text: str,
        *,
        container: str | None = None,
        append: bool = False,
    ) -> None:
        """Replace (or ``append`` to) the log of one container of an existing pod (404 if the pod
        is gone, 400 for a container it does not have); no ``container`` means the pod's default
        one (``kinds.default_container``: the annotation kubectl honours, else the first app
        container)."""
        with self._lock:
            pod = self._get_ref(self.registry.get(POD_GVR), name, namespace)
            c = self._log_container(pod, container)
            logs = self._logs.setdefault((namespace, name), {})
            logs[c] = (logs.get(c, "") + text) if append else text
            self._dirty = True

    def get_pod_log(self, namespace: str, name: str, *, container: str | None = None) -> str:
        """The log of one container of a pod ("" before it wrote anything); no ``container``
        means the default one, as in ``set_pod_log``. 404 if the pod does not exist."""
        with self._lock:
            pod = self._get_ref(self.registry.get(POD_GVR), name, namespace)
            c = self._log_container(pod, container)
            return self._logs.get((namespace, name), {}).get(c, "")

    @staticmethod
    def _log_container(pod: dict[str, Any], container: str | None) -> str:
        if container is None:
            return kinds.default_container(pod)
        return kinds.log_container(pod, container)  # 400 for a container the pod lacks

    # ------------------------------------------------------------------ extras for the HTTP layer

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def get_ref(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        """The stored object itself (read-only!) for serialisation without a copy."""
        with self._lock:
            return self._get_ref(rt, name, namespace)

    def list_refs(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """Stored objects (read-only!) sorted by (namespace, name), and the list resourceVersion."""
        with self._lock:
            items = [o for o in self._iter(rt.key, namespace) if predicate is None or predicate(o)]
            return items, self._rv

    def watch(
        self,
        rt: ResourceType,
        *,
        namespace: str | None,
        since: int | None,
        callback: Callable[[Event], None],
    ) -> tuple[builtins.list[Event], int, WatchHandle]:
        """Register a listener atomically with the events it must see first.

        ``since=None``: synthetic ADDED events for every current object. ``since=N``: every
        recorded change after N (410 if N is older than the history). Returns (initial events,
        current resourceVersion, handle).
        """
        with self._lock:
            if since is None:
                initial = [
                    Event(
                        int(o["metadata"]["resourceVersion"]),
                        "ADDED",
                        rt.key,
                        o["metadata"].get("namespace", ""),
                        o,
                        None,
                    )
                    for o in self._iter(rt.key, namespace)
                ]
            else:
                if since < self._compacted_rv:
                    raise expired(f"too old resource version: {since} ({self._compacted_rv})")
                initial = [
                    e
                    for e in self._history
                    if e.rv > since
                    and e.key == rt.key
                    and (namespace is None or e.namespace == namespace)
                ]
            listener = _Listener(rt.key, namespace, callback)
            self._listeners.append(listener)
            return initial, self._rv, WatchHandle(self, listener)

    def compact(self) -> None:
        """Forget the watch history (a testing hook: every older resourceVersion now gets 410)."""
        with self._lock:
            self._history.clear()
            self._compacted_rv = self._rv

    def has_objects(self, gvr: GVR) -> bool:
        """Whether any object of this resource exists (cheap; no copy)."""
        by_ns = self._objects.get((gvr.group, gvr.resource))
        return by_ns is not None and any(by_ns.values())

    def check_continue_rv(self, rv: int) -> None:
        if rv < self._compacted_rv:
            raise expired(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter, or use the continue token "
                "in this response to retrieve the remainder of the results."
            )

    def prepare(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        *,
        old: dict[str, Any] | None = None,
        field_validation: str = "Ignore",
    ) -> builtins.list[str]:
        """Prune, default (in place) and report unknown fields per fieldValidation; returns warnings.

        Strict raises 400 BadRequest with upstream's strict decoding message.
        """
        warnings: builtins.list[str] = []
        if rt.schema is not None:
            unknown = schema.prune(rt.schema, obj, old=old if old is not None else schema.MISSING)
            if unknown and field_validation == "Strict":
                fields = ", ".join(f'unknown field "{u}"' for u in unknown)
                raise ApiError(
                    400,
                    "BadRequest",
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: {fields}",
                    details={},
                )
            if field_validation != "Ignore":
                warnings += [f'unknown field "{u}"' for u in unknown]
            schema.apply_defaults(rt.schema, obj, old=old if old is not None else schema.MISSING)
        strategy.for_type(rt).prepare(rt, obj, old)
        return warnings

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], *, old: dict[str, Any] | None = None
    ) -> None:
        """Raise 422 Invalid with every cause if obj is not a valid object of rt."""
        meta = obj.get("metadata") or {}
        causes = []
        name = meta.get("name") or ""
        if not name and not meta.get("generateName"):
            causes.append(required_cause("metadata.name", "name or generateName is required"))
        elif name:
            causes += kinds.validate_name(rt, name)
        causes += kinds.validate_metadata(meta)
        if rt.schema is not None:
            causes += schema.validate(
                rt.schema, obj, old=old if old is not None else schema.MISSING
            )
        causes += strategy.for_type(rt).validate(rt, obj, old)
        if causes:
            raise invalid(rt.kind, rt.group, name, causes)

    # ------------------------------------------------------------------ internals: reads

    def _iter(self, key: tuple[str, str], namespace: str | None) -> Iterator[dict[str, Any]]:
        by_ns = self._objects.get(key)
        if not by_ns:
            return
        if namespace is not None:
            objs = by_ns.get(namespace) or {}
            for name in sorted(objs):
                yield objs[name]
            return
        for ns in sorted(by_ns):
            objs = by_ns[ns]
            for name in sorted(objs):
                yield objs[name]

    def _ns_for(self, rt: ResourceType, namespace: str | None) -> str:
        if rt.namespaced:
            if not namespace:
                raise ApiError(
                    400, "BadRequest", "the namespace of the object is required", details={}
                )
            return namespace
        return ""

    def _get_ref(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        ns = self._ns_for(rt, namespace)
        obj = self._objects.get(rt.key, {}).get(ns, {}).get(name)
        if obj is None:
            raise not_found(rt.resource, rt.group, name)
        return obj

    def _find(self, key: tuple[str, str], ns: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(key, {}).get(ns, {}).get(name)

    def _present(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Set apiVersion/kind for the version asked (CRD versions share storage)."""
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return obj

    def _rt_for_key(self, key: tuple[str, str]) -> ResourceType | None:
        return self.registry.for_key(key)

    # ------------------------------------------------------------------ internals: writes

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        nso = self._find(NS_KEY, "", ns)
        if nso is None:
            raise not_found("namespaces", "", ns)
        if (nso.get("metadata") or {}).get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.resource} "{(rt.kind)}" is forbidden: unable to create new content in namespace '
                f"{ns} because it is being terminated",
                details={
                    "name": ns,
                    "kind": "namespaces",
                    "causes": [
                        {
                            "reason": "NamespaceTerminating",
                            "message": f"namespace {ns} is being terminated",
                            "field": "metadata.namespace",
                        }
                    ],
                },
            )

    def _create(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        namespace: str | None,
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str = "Ignore",
        warnings: builtins.list[str] | None = None,
        prepared: bool = False,
    ) -> dict[str, Any]:
        """Create; ``prepared``: the caller already pruned, defaulted and validated ``obj``."""
        meta = _meta(obj)
        ns = self._ns_for(rt, namespace or meta.get("namespace"))
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != ns:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request",
                    details={},
                )
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        for f in _SERVER_META:
            if f != "managedFields":
                meta.pop(f, None)
        if not prepared:
            found = self.prepare(rt, obj, field_validation=field_validation)
            if warnings is not None:
                warnings += found
            self.validate(rt, obj)
        self._check_namespace(rt, ns)
        if not meta.get("name"):
            meta["name"] = self._generate_name(rt.key, ns, str(meta.get("generateName")))
        name = meta["name"]
        if self._find(rt.key, ns, name) is not None:
            raise already_exists(rt.resource, rt.group, name)
        rules = strategy.for_type(rt)
        rules.before_commit(obj)
        meta["uid"] = kinds.preset_uid(rt, obj) or uids.new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            meta["generation"] = 1
        if field_manager:
            from kubesim import managed

            managed.record_update(
                obj,
                None,
                manager=field_manager,
                api_version=rt.api_version,
                has_status=rt.has_status,
                subresource=None,
                list_type=managed.list_type_for(rt),
            )
        if dry_run:
            return obj  # as upstream: a dry-run create has a uid but no resourceVersion
        self._commit(rt.key, ns, name, obj, None, "ADDED")
        rules.after_create(self, obj)
        return obj

    def _generate_name(self, key: tuple[str, str], ns: str, prefix: str) -> str:
        for _ in range(100):
            candidate = prefix + "".join(
                random.choices(GENERATE_NAME_ALPHABET, k=GENERATE_NAME_SUFFIX)
            )
            if self._find(key, ns, candidate) is None:
                return candidate
        raise ApiError(
            500, "InternalError", "Internal error occurred: could not generate a unique name"
        )

    def _update(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        namespace: str | None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        field_validation: str = "Ignore",
        require_resource_version: bool = False,
        managed_override: builtins.list[dict[str, Any]] | None = None,
        warnings: builtins.list[str] | None = None,
    ) -> dict[str, Any]:
        meta_in = _meta(obj)
        ns = self._ns_for(rt, namespace or meta_in.get("namespace"))
        name = meta_in.get("name")
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [required_cause("metadata.name", "name or generateName is required")],
            )
        cur = self._find(rt.key, ns, name)
        if cur is None:
            raise not_found(rt.resource, rt.group, name)
        cur_meta = cur["metadata"]
        _check_resource_version(rt, name, meta_in, cur_meta, required=require_resource_version)
        new = _updated(rt, obj, cur, subresource)
        new["apiVersion"] = rt.api_version
        new["kind"] = rt.kind
        meta = _meta(new)
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = ns
        _keep_server_meta(meta, cur_meta, managed_override)
        if cur_meta.get("deletionTimestamp"):
            _refuse_new_finalizers(rt, name, meta, cur_meta)
        found = self.prepare(rt, new, old=cur, field_validation=field_validation)
        if warnings is not None:
            warnings += found
        self.validate(rt, new, old=cur)
        if rt.has_generation and _spec_part(new, rt.has_status) != _spec_part(cur, rt.has_status):
            meta["generation"] = int(cur_meta.get("generation", 1)) + 1
        if field_manager and managed_override is None:
            from kubesim import managed

            managed.record_update(
                new,
                cur,
                manager=field_manager,
                api_version=rt.api_version,
                has_status=rt.has_status,
                subresource=subresource,
                list_type=managed.list_type_for(rt),
            )
        rules = strategy.for_type(rt)
        rules.before_commit(new)
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        if _strip_volatile(new) == _strip_volatile(cur):
            return cur  # no-op: same resourceVersion, no event
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._remove(rt.key, ns, name, new)
        self._commit(rt.key, ns, name, new, cur, "MODIFIED")
        rules.after_update(self, new)
        return new

    def _commit(
        self,
        key: tuple[str, str],
        ns: str,
        name: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        typ: str,
    ) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects.setdefault(key, {}).setdefault(ns, {})[name] = obj
        self._index(key, ns, name, obj, old)
        self._emit(Event(self._rv, typ, key, ns, obj, old))

    def _index(
        self,
        key: tuple[str, str],
        ns: str,
        name: str,
        obj: dict[str, Any] | None,
        old: dict[str, Any] | None,
    ) -> None:
        ref = (key, ns, name)
        if old is not None:
            for o in old["metadata"].get("ownerReferences") or []:
                deps = self._dependents.get(str(o.get("uid")))
                if deps is not None:
                    deps.discard(ref)
                    if not deps:
                        del self._dependents[str(o.get("uid"))]
        if obj is not None:
            self._by_uid[obj["metadata"]["uid"]] = ref
            for o in obj["metadata"].get("ownerReferences") or []:
                self._dependents.setdefault(str(o.get("uid")), set()).add(ref)
        elif old is not None:
            self._by_uid.pop(old["metadata"]["uid"], None)

    def _emit(self, event: Event) -> None:
        if len(self._history) == self._history.maxlen and self._history:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        self._dirty = True
        for listener in list(self._listeners):
            if listener.key == event.key and (
                listener.namespace is None or listener.namespace == event.namespace
            ):
                try:
                    listener.callback(event)
                except Exception:  # a broken watcher must not break the write path
                    log.exception("watch listener failed", extra={"resource": event.key[1]})
        if self._subscribers:
            rt = self._rt_for_key(event.key)
            if rt is None:
                return
            for sub in list(self._subscribers):
                try:
                    sub(event.type, rt.gvr, event.obj)
                except Exception:
                    log.exception("store subscriber failed", extra={"resource": event.key[1]})

    def _remove_listener(self, listener: _Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # ------------------------------------------------------------------ deletion and GC

    def _delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None,
        *,
        propagation: str = "Background",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        ns = self._ns_for(rt, namespace)
        cur = self._get_ref(rt, name, ns)
        meta = cur["metadata"]
        if preconditions:
            _check_preconditions(rt, name, meta, preconditions)
        if propagation not in ("Background", "Foreground", "Orphan"):
            raise invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                [
                    kinds.not_supported_cause(
                        "propagationPolicy", propagation, ["Foreground", "Background", "Orphan"]
                    )
                ],
            )
        if dry_run:
            return cur, not meta.get("finalizers")
        if meta.get("deletionTimestamp"):
            return cur, False
        uid = meta["uid"]
        if rt.key == NS_KEY:
            if name in IMMORTAL_NAMESPACES:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    details={"name": name, "kind": "namespaces"},
                )
            return self._delete_namespace(cur), self._find(NS_KEY, "", name) is None
        deps = self._live_dependents(uid)
        if propagation == "Orphan" or ORPHAN in (meta.get("finalizers") or []):
            for dkey, dns, dname in deps:
                self._strip_owner(dkey, dns, dname, uid)
            if ORPHAN in (meta.get("finalizers") or []):
                cur = self._set_finalizers(
                    rt.key, ns, name, [f for f in meta["finalizers"] if f != ORPHAN]
                )
            deps = []
        if propagation == "Foreground" and deps:
            marked = clone(cur)
            mm = marked["metadata"]
            mm["deletionTimestamp"] = now_rfc3339()
            mm["deletionGracePeriodSeconds"] = 0
            mm["finalizers"] = [*(mm.get("finalizers") or []), FOREGROUND]
            self._commit(rt.key, ns, name, marked, cur, "MODIFIED")
            for dkey, dns, dname in deps:
                drt = self._rt_for_key(dkey)
                if drt is not None and self._find(dkey, dns, dname) is not None:
                    self._delete(drt, dname, dns or None, propagation="Foreground")
            self._try_finish_foreground(uid)
            final = self._find(rt.key, ns, name)
            return (final, False) if final is not None else (marked, True)
        if meta.get("finalizers"):
            marked = clone(cur)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            self._commit(rt.key, ns, name, marked, cur, "MODIFIED")
            return marked, False
        return self._remove(rt.key, ns, name, cur), True

    def _live_dependents(self, uid: str) -> builtins.list[tuple[tuple[str, str], str, str]]:
        return sorted(d for d in self._dependents.get(uid, ()) if self._find(*d) is not None)

    def _strip_owner(self, key: tuple[str, str], ns: str, name: str, owner_uid: str) -> None:
        cur = self._find(key, ns, name)
        if cur is None:
            return
        new = clone(cur)
        refs = [
            r for r in (new["metadata"].get("ownerReferences") or []) if r.get("uid") != owner_uid
        ]
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        self._commit(key, ns, name, new, cur, "MODIFIED")

    def _set_finalizers(
        self, key: tuple[str, str], ns: str, name: str, finalizers: builtins.list[str]
    ) -> dict[str, Any]:
        cur = self._find(key, ns, name)
        assert cur is not None
        new = clone(cur)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        if new["metadata"].get("deletionTimestamp") and not finalizers:
            return self._remove(key, ns, name, new)
        self._commit(key, ns, name, new, cur, "MODIFIED")
        return new

    def _remove(
        self, key: tuple[str, str], ns: str, name: str, last: dict[str, Any]
    ) -> dict[str, Any]:
        """Final removal: DELETED event, then garbage collection and deferred completions."""
        cur = self._objects.get(key, {}).get(ns, {}).pop(name, None)
        self._rv += 1
        final = last
        if last is cur:  # the stored object is never changed: a new top and metadata suffice
            final = dict(last)
            final["metadata"] = dict(last["metadata"])
        final["metadata"]["resourceVersion"] = str(self._rv)
        self._index(key, ns, name, None, cur if cur is not None else last)
        self._emit(Event(self._rv, "DELETED", key, ns, final, cur))
        uid = final["metadata"]["uid"]
        removed_rt = self._rt_for_key(key)
        if removed_rt is not None:
            strategy.for_type(removed_rt).after_remove(self, final)
        # background garbage collection of dependents whose owners are all gone
        for dkey, dns, dname in self._live_dependents(uid):
            dep = self._find(dkey, dns, dname)
            if dep is None:
                continue
            others = [
                r
                for r in (dep["metadata"].get("ownerReferences") or [])
                if r.get("uid") != uid and r.get("uid") in self._by_uid
            ]
            drt = self._rt_for_key(dkey)
            if not others and drt is not None:
                self._delete(drt, dname, dns or None, propagation="Background")
        self._dependents.pop(uid, None)
        for ref in final["metadata"].get("ownerReferences") or []:
            self._try_finish_foreground(str(ref.get("uid")))
        if ns:
            self._try_finish_namespace(ns)
        return final

    def drop_pod_logs(self, namespace: str, name: str) -> None:
        """Forget a removed pod's container logs (they go with the pod)."""
        with self._lock:
            self._logs.pop((namespace, name), None)

    def drop_all(self, key: tuple[str, str]) -> None:
        for ns, objs in list(self._objects.get(key, {}).items()):
            for name in list(objs):
                self._remove(key, ns, name, objs[name])
        self._objects.pop(key, None)

    def _try_finish_foreground(self, owner_uid: str) -> None:
        ref = self._by_uid.get(owner_uid)
        if ref is None:
            return
        owner = self._find(*ref)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or []):
            return
        for dref in self._live_dependents(owner_uid):
            dep = self._find(*dref)
            if dep is None:
                continue
            for r in dep["metadata"].get("ownerReferences") or []:
                if r.get("uid") == owner_uid and r.get("blockOwnerDeletion"):
                    return
        self._set_finalizers(
            ref[0], ref[1], ref[2], [f for f in owner["metadata"]["finalizers"] if f != FOREGROUND]
        )

    def _delete_namespace(self, cur: dict[str, Any]) -> dict[str, Any]:
        name = cur["metadata"]["name"]
        marked = clone(cur)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        marked.setdefault("status", {})["phase"] = "Terminating"
        self._commit(NS_KEY, "", name, marked, cur, "MODIFIED")
        for key, by_ns in list(self._objects.items()):
            objs = by_ns.get(name)
            if not objs:
                continue
            rt = self._rt_for_key(key)
            if rt is None:
                continue
            for oname in sorted(objs):
                if self._find(key, name, oname) is not None:
                    self._delete(rt, oname, name, propagation="Background")
        self._try_finish_namespace(name)
        return self._find(NS_KEY, "", name) or marked

    def _try_finish_namespace(self, ns: str) -> None:
        nso = self._find(NS_KEY, "", ns)
        if nso is None or not nso["metadata"].get("deletionTimestamp"):
            return
        for by_ns in self._objects.values():
            if by_ns.get(ns):
                return
        final = clone(nso)
        final.get("spec", {}).pop("finalizers", None)
        self._remove(NS_KEY, "", ns, final)

    # ------------------------------------------------------------------ persistence

    def _snapshot(self) -> dict[str, Any]:
        objs: builtins.list[builtins.list[object]] = []
        crds: builtins.list[builtins.list[object]] = []
        for key, by_ns in self._objects.items():
            for objmap in by_ns.values():
                for o in objmap.values():
                    (crds if key == CRD_KEY else objs).append([key[0], key[1], o])
        return {
            "resourceVersion": self._rv,
            "objects": crds + objs,
            "logs": [
                [ns, n, c, t] for (ns, n), by_c in list(self._logs.items()) for c, t in by_c.items()
            ],
        }

    def flush(self) -> None:
        """Write the snapshot now (no-op without data_dir).

        Only the collection of references happens under the lock: stored dicts are never
        mutated after their commit, so serialising them outside it is safe and keeps a large
        store from stalling every request while it is written.
        """
        if self._data_dir is None:
            return
        with self._persist_io:
            with self._lock:
                snapshot = self._snapshot()
                self._dirty = False
            data = json.dumps(snapshot, separators=(",", ":"))
            self._data_dir.mkdir(parents=True, exist_ok=True)
            tmp = self._data_dir / "store.json.tmp"
            tmp.write_text(data)
            os.replace(tmp, self._data_dir / "store.json")

    def _persist_loop(self) -> None:
        interval = PERSIST_INTERVAL
        while not self._closed.wait(interval):
            if self._dirty:
                started = time.monotonic()
                try:
                    self.flush()
                except OSError:
                    log.exception(
                        "kubesim could not persist its store",
                        extra={"data_dir": str(self._data_dir)},
                    )
                # never spend more than about a third of the time writing snapshots
                interval = max(PERSIST_INTERVAL, 2 * (time.monotonic() - started))

    def _load(self) -> bool:
        assert self._data_dir is not None
        path = self._data_dir / "store.json"
        if not path.exists():
            return False
        data = json.loads(path.read_text())
        with self._lock:
            for group, resource, obj in data.get("objects", []):
                key = (group, resource)
                meta = obj["metadata"]
                ns = meta.get("namespace", "")
                if key == CRD_KEY:
                    self.registry.register_crd(meta["name"], obj)
                self._objects.setdefault(key, {}).setdefault(ns, {})[meta["name"]] = obj
                self._index(key, ns, meta["name"], obj, None)
            for entry in data.get("logs", []):
                if len(entry) == 4:
                    ns, n, c, text = entry
                else:  # an older snapshot: one log per pod, the default container's
                    ns, n, text = entry
                    pod = self._find(POD_KEY, ns, n)
                    if pod is None:
                        continue  # a log outliving its pod: nothing can read it
                    c = kinds.default_container(pod)
                self._logs.setdefault((ns, n), {})[c] = text
            self._rv = int(data.get("resourceVersion", FIRST_RESOURCE_VERSION))
            self._compacted_rv = self._rv
        return True

    def close(self) -> None:
        """Stop the persistence thread after a final snapshot."""
        self._closed.set()
        if self._persist_thread is not None:
            self._persist_thread.join(timeout=5)
            self._persist_thread = None
        if self._data_dir is not None:
            self.flush()


def invalid_rv_cause() -> Cause:
    return Cause(
        "FieldValueInvalid",
        "metadata.resourceVersion",
        "Invalid value: 0x0: must be specified for an update",
    )
