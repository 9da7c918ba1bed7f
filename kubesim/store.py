"""The in-memory object store: the single source of truth of a kubesim cluster.

Invariants (everything else in kubesim relies on them):

* One global ``resourceVersion`` counter. Every persisted change (create, update, status write,
  deletion mark, final removal) takes the next value, and the watch event for it carries the same
  value; events are appended to one bounded history in that order. A write that changes nothing
  (ignoring managedFields timestamps) is not persisted: same resourceVersion, no event.
* Stored objects are never mutated in place: each commit stores a new dict. Public methods hand
  out deep copies, so callers (tests) may modify what they get, unless the caller opts out:
  ``get(copy=False)`` and ``copy_result=False`` hand out the stored object itself (read only),
  and ``owned=True`` hands the Store the caller's object for keeping (the Job runner, which
  builds its writes afresh and copies nothing twice).
* All reads and writes hold one re-entrant lock; subscriber callbacks run synchronously under
  it, right after the commit, in resourceVersion order. They must not block (hand work to a
  queue): the HTTP watch fan-out does ``loop.call_soon_threadsafe``.
* Writes by in-process components (the runner) go through the same defaulting, validation,
  resourceVersion, finalizer and garbage-collection logic as HTTP writes, but not through
  admission: HTTP writes (``write_create``/``write_update``/``write_delete``) pass the
  request's admission chain in as a callback (``kubesim.writing``), which the Store calls
  outside its lock. Each kind's own rules are its strategy (``kubesim/strategies/``).
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

This module is the Store's public face and its lock discipline (what runs outside the lock and
what under it). The parts, each under the lock unless it says otherwise:

* ``kubesim.storage``: the objects, the resourceVersion counter, the owner index, the commit.
* ``kubesim.eventlog``: the watch history, watch listeners and subscribers (``Event``).
* ``kubesim.writepath``: create and update (prepare, admission, validation: outside the lock
  with admission; the commit rules under it).
* ``kubesim.deletion``: deletion, finalizers, propagation and garbage collection.
* ``kubesim.podlogs``: the containers' logs. ``kubesim.persistence``: the data_dir snapshot.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kubesim import selectors, writepath
from kubesim.clone import clone
from kubesim.deletion import Deletion
from kubesim.errors import ApiError
from kubesim.eventlog import Event, EventLog, WatchHandle
from kubesim.persistence import Snapshots
from kubesim.podlogs import PodLogs
from kubesim.resources import GVR, Registry, ResourceType
from kubesim.storage import CRD_KEY, FIRST_RESOURCE_VERSION, Storage
from kubesim.strategies import Kinds, Strategy
from kubesim.writerules import meta_of
from kubesim.writing import Write

__all__ = ["GVR", "ApiError", "Event", "ResourceType", "Store", "WatchHandle"]

HISTORY_SIZE = 20_000  # watch events kept for resumption; older resourceVersions get 410
SEEDED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
POD_KEY = ("", "pods")
POD_GVR = GVR("", "v1", "pods")


class Store:
    """Thread-safe in-memory Kubernetes object store (see module docstring for invariants)."""

    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        history_size: int = HISTORY_SIZE,
        kinds: Iterable[Strategy] = (),
    ) -> None:
        """``kinds``: strategies of kinds served besides the built-in ones."""
        self.kinds = Kinds(kinds)
        self.registry = Registry(self.kinds.types())
        self._lock = threading.RLock()
        self._events = EventLog(
            self._lock, self.registry, history_size=history_size, first_rv=FIRST_RESOURCE_VERSION
        )
        self._storage = Storage(self._events, self.registry)
        self._logs = PodLogs()
        self._deletion = Deletion(self._storage, self.kinds, registry=self.registry, hooks=self)
        self._writer = writepath.Writer(
            self._storage, self.kinds, deletion=self._deletion, hooks=self
        )
        self._snapshots = Snapshots(Path(data_dir), self._take_snapshot) if data_dir else None
        loaded = self._snapshots is not None and self._restore(self._snapshots.read())
        if not loaded:
            for ns in SEEDED_NAMESPACES:
                self.create(GVR("", "v1", "namespaces"), {"metadata": {"name": ns}})
        if self._snapshots is not None:
            self._snapshots.start()

    # ------------------------------------------------------------------ public API (iface)

    def create(
        self,
        gvr: GVR,
        obj: dict[str, Any],
        *,
        namespace: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
        copy_result: bool = True,
        owned: bool = False,
    ) -> dict[str, Any]:
        """Create an object; ``copy_result`` and ``owned`` as for ``update``."""
        return self._write(
            gvr,
            obj,
            lambda rt, copy: self._writer.create(
                rt, copy, namespace, dry_run=dry_run, field_manager=field_manager
            ),
            copy_result=copy_result,
            owned=owned,
        )

    def get(
        self, gvr: GVR, name: str, *, namespace: str | None = None, copy: bool = True
    ) -> dict[str, Any]:
        """The object (404 if there is none). ``copy=False``: the stored object itself, for a
        caller that only reads it (the Job runner's reconcile): never change it, nor anything
        in it; build a new object to write back."""
        rt = self.registry.get(gvr)
        with self._lock:
            ref = self._storage.get_ref(rt, name, namespace)
        if not copy:
            if ref.get("apiVersion") == rt.api_version and ref.get("kind") == rt.kind:
                return ref
            return _present(rt, dict(ref))
        return _present(rt, clone(ref))  # stored objects never change: copy unlocked

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
        ``owned``: ``obj`` is handed over, not copied: the Store may keep it and anything in it
        (the caller built it for this write, shares nothing in it that another party changes,
        and never changes it afterwards)."""
        return self._write(
            gvr,
            obj,
            lambda rt, copy: self._writer.update(
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

    def write_status(
        self, gvr: GVR, stored: dict[str, Any], status: dict[str, Any], *, namespace: str
    ) -> dict[str, Any]:
        """Write ``status`` as the status of ``stored`` (an object read from the Store, read
        only) without copying either: the Store keeps a new top level and metadata around the
        parts of ``stored`` (which the status subresource does not write) and ``status``
        (handed over: never changed afterwards). Returns that object. An object deleted
        meanwhile is no error (the Job runner's writers, its callers, race deletions); any
        other ApiError is raised as by ``update``."""
        body = dict(stored)
        body["metadata"] = {k: v for k, v in stored["metadata"].items() if k != "resourceVersion"}
        body["status"] = status
        try:
            self.update(
                gvr, body, namespace=namespace, subresource="status", copy_result=False, owned=True
            )
        except ApiError as exc:
            if exc.code != 404:
                raise
        return body

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
            obj, _gone = self._deletion.delete(
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
            refs = [o for o in self._storage.iter(rt.key, namespace) if pred is None or pred(o)]
        return [_present(rt, clone(o)) for o in refs]

    def subscribe(self, callback: Callable[[str, GVR, dict[str, Any]], None]) -> Callable[[], None]:
        """callback(type, gvr, obj) after each committed change, synchronously, under the
        Store's lock; ``obj`` is the stored object itself (read it, never change it: it is
        not copied for each subscriber). Returns unsubscribe."""
        return self._events.subscribe(callback)

    # ------------------------------------------------------------------ the HTTP write path

    def write_create(self, rt: ResourceType, obj: dict[str, Any], req: Write) -> dict[str, Any]:
        """Create ``obj`` (the caller's, not copied) for a request; returns the stored object
        (read only). With ``req.admission`` the object is prepared, mutated, prepared and
        validated again, and validated by admission before the Store's lock is taken."""
        if req.admission is not None:
            req.warnings += writepath.prepare(
                self.kinds, rt, obj, field_validation=req.field_validation
            )
            obj = writepath.admit(self.kinds, rt, obj, None, req.admission, req.warnings)
        with self._lock:
            return self._writer.create(
                rt,
                obj,
                req.namespace,
                dry_run=req.dry_run,
                field_manager=req.field_manager,
                field_validation=req.field_validation,
                warnings=req.warnings,
                prepared=req.admission is not None,
            )

    def write_update(self, rt: ResourceType, obj: dict[str, Any], req: Write) -> dict[str, Any]:
        """Update (or write the status of) an object for a request; returns the stored object
        (read only). Admission sees ``req.old`` (default: the stored object) as the old one."""
        admitted = req.admission is not None
        if req.admission is not None:
            old = req.old
            if old is None:
                old = clone(self.get_ref(rt, meta_of(obj).get("name") or "", req.namespace))
            req.warnings += writepath.prepare(
                self.kinds, rt, obj, old=old, field_validation=req.field_validation
            )
            obj = writepath.admit(self.kinds, rt, obj, old, req.admission, req.warnings)
        with self._lock:
            return self._writer.update(
                rt,
                obj,
                req.namespace,
                subresource=req.subresource,
                dry_run=req.dry_run,
                field_manager=req.field_manager,
                managed_override=req.managed_override,
                field_validation="Ignore" if admitted else req.field_validation,
                warnings=None if admitted else req.warnings,
                require_resource_version=req.require_resource_version,
            )

    def write_delete(self, rt: ResourceType, name: str, req: Write) -> tuple[dict[str, Any], bool]:
        """Delete for a request: (the object as deleted or marked, whether it is gone).
        Admission validates the deletion of the stored object first."""
        if req.admission is not None:
            cur = clone(self.get_ref(rt, name, req.namespace))
            req.warnings += req.admission.validate(None, cur)
        with self._lock:
            return self._deletion.delete(
                rt,
                name,
                req.namespace,
                propagation=req.propagation,
                preconditions=req.preconditions,
                dry_run=req.dry_run,
            )

    # ------------------------------------------------------------------ pod logs

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
            pod = self._storage.get_ref(self.registry.get(POD_GVR), name, namespace)
            self._logs.set(pod, text, container=container, append=append)

    def get_pod_log(self, namespace: str, name: str, *, container: str | None = None) -> str:
        """The log of one container of a pod ("" before it wrote anything); no ``container``
        means the default one, as in ``set_pod_log``. 404 if the pod does not exist."""
        with self._lock:
            pod = self._storage.get_ref(self.registry.get(POD_GVR), name, namespace)
            return self._logs.get(pod, container=container)

    def drop_pod_logs(self, namespace: str, name: str) -> None:
        """Forget a removed pod's container logs (they go with the pod)."""
        with self._lock:
            self._logs.drop(namespace, name)

    # ------------------------------------------------------------------ extras for the HTTP layer

    @property
    def resource_version(self) -> int:
        return self._storage.rv

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def get_ref(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        """The stored object itself (read-only!) for serialisation without a copy."""
        with self._lock:
            return self._storage.get_ref(rt, name, namespace)

    def list_refs(
        self,
        rt: ResourceType,
        namespace: str | None,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[builtins.list[dict[str, Any]], int]:
        """Stored objects (read-only!) sorted by (namespace, name), and the list resourceVersion."""
        with self._lock:
            items = [
                o
                for o in self._storage.iter(rt.key, namespace)
                if predicate is None or predicate(o)
            ]
            return items, self._storage.rv

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
            current = self._storage.iter(rt.key, namespace)
            initial, handle = self._events.watch(
                rt.key, namespace, since=since, current=current, callback=callback
            )
            return initial, self._storage.rv, handle

    def compact(self) -> None:
        """Forget the watch history (a testing hook: every older resourceVersion now gets 410)."""
        with self._lock:
            self._events.compact(self._storage.rv)

    def has_objects(self, gvr: GVR) -> bool:
        """Whether any object of this resource exists (cheap; no copy)."""
        return self._storage.has_objects((gvr.group, gvr.resource))

    def check_continue_rv(self, rv: int) -> None:
        self._events.check_continue_rv(rv)

    # ------------------------------------------------------------------ for strategies' hooks

    def find(self, key: tuple[str, str], ns: str, name: str) -> dict[str, Any] | None:
        """The stored object itself (read only; the lock is held by the caller)."""
        return self._storage.find(key, ns, name)

    def commit_modified(
        self, key: tuple[str, str], obj: dict[str, Any], old: dict[str, Any]
    ) -> None:
        """Store ``obj`` (a new dict) in place of ``old``: a MODIFIED event (lock held)."""
        meta = obj["metadata"]
        self._storage.commit(
            key, str(meta.get("namespace") or ""), meta["name"], obj, old, "MODIFIED"
        )

    def remove(
        self, key: tuple[str, str], ns: str, name: str, last: dict[str, Any]
    ) -> dict[str, Any]:
        """Final removal of an object (lock held): DELETED, garbage collection, hooks."""
        return self._deletion.remove(key, ns, name, last)

    def delete_in_lock(self, rt: ResourceType, name: str, namespace: str) -> None:
        """Delete as a controller does (background propagation; lock held)."""
        self._deletion.delete(rt, name, namespace, propagation="Background")

    def drop_all(self, key: tuple[str, str]) -> None:
        """Remove every object of a resource (its CRD is gone; lock held)."""
        for _key, ns, name in self._storage.locations(key):
            obj = self._storage.find(key, ns, name)
            if obj is not None:  # defensive: a removal's hooks may take others with it
                self._deletion.remove(key, ns, name, obj)
        self._storage.drop_key(key)

    def contents(self, namespace: str) -> builtins.list[tuple[ResourceType, str]]:
        """(type, name) of every object in a namespace, by storage key then name (lock held)."""
        return self._storage.contents(namespace)

    # ------------------------------------------------------------------ persistence

    def _take_snapshot(self, force: bool) -> dict[str, Any] | None:
        with self._lock:
            if not (force or self._storage.dirty or self._logs.dirty):
                return None
            self._storage.dirty = self._logs.dirty = False
            return {
                "resourceVersion": self._storage.rv,
                "objects": [[key[0], key[1], o] for key, o in self._storage.all_objects()],
                "logs": self._logs.entries(),
            }

    def _restore(self, data: dict[str, Any] | None) -> bool:
        if data is None:
            return False
        with self._lock:
            for group, resource, obj in data.get("objects", []):
                key = (group, resource)
                if key == CRD_KEY:
                    self.registry.register_crd(obj["metadata"]["name"], obj)
                self._storage.load(key, obj)
            self._logs.restore(
                data.get("logs", []), lambda ns, name: self._storage.find(POD_KEY, ns, name)
            )
            self._storage.rv = int(data.get("resourceVersion", FIRST_RESOURCE_VERSION))
            self._events.compact(self._storage.rv)
        return True

    def flush(self) -> None:
        """Write the snapshot now (no-op without data_dir)."""
        if self._snapshots is not None:
            self._snapshots.flush()

    def close(self) -> None:
        """Stop the persistence thread after a final snapshot."""
        if self._snapshots is not None:
            self._snapshots.close()


def _present(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Set apiVersion/kind for the version asked (CRD versions share storage)."""
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    return obj
