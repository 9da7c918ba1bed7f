"""The Store's storage layer (what etcd and its indexes are to the real API server): stored
objects by (group, resource) -> namespace -> name, the one global resourceVersion counter, and
the owner-reference index that garbage collection reads.

Every call runs under the Store's lock (the caller holds it). ``commit`` and ``pop`` are the only
writes: each takes the next resourceVersion, updates the owner index and emits one ``Event``
with that resourceVersion (``kubesim.eventlog``). Stored dicts are never changed after their
commit, only replaced, so a reference handed out stays a consistent snapshot.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import Any

from kubesim.errors import ApiError, not_found
from kubesim.eventlog import Event, EventLog, Key
from kubesim.resources import Registry, ResourceType

FIRST_RESOURCE_VERSION = 100  # arbitrary start, as a real etcd never starts at 0 either
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")

Location = tuple[Key, str, str]  # (storage key, namespace, name)


def ns_for(rt: ResourceType, namespace: str | None) -> str:
    """The storage namespace of an object of ``rt`` ("" for cluster-scoped kinds)."""
    if rt.namespaced:
        if not namespace:
            raise ApiError(400, "BadRequest", "the namespace of the object is required", details={})
        return namespace
    return ""


class Storage:
    """Objects, the resourceVersion counter and the owner index (see the module docstring)."""

    def __init__(self, events: EventLog, registry: Registry) -> None:
        self.rv = FIRST_RESOURCE_VERSION
        self.dirty = False  # changed since the last snapshot (kubesim.persistence)
        self._events = events
        self._registry = registry
        self._objects: dict[Key, dict[str, dict[str, dict[str, Any]]]] = {}
        self._by_uid: dict[str, Location] = {}
        self._dependents: dict[str, set[Location]] = {}

    # ------------------------------------------------------------------ reads

    def find(self, key: Key, ns: str, name: str) -> dict[str, Any] | None:
        return self._objects.get(key, {}).get(ns, {}).get(name)

    def get_ref(self, rt: ResourceType, name: str, namespace: str | None) -> dict[str, Any]:
        """The stored object (read only); 404 if there is none."""
        ns = ns_for(rt, namespace)
        obj = self._objects.get(rt.key, {}).get(ns, {}).get(name)
        if obj is None:
            raise not_found(rt.resource, rt.group, name)
        return obj

    def iter(self, key: Key, namespace: str | None) -> Iterator[dict[str, Any]]:
        """Stored objects of one resource sorted by (namespace, name)."""
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

    def has_objects(self, key: Key) -> bool:
        by_ns = self._objects.get(key)
        return by_ns is not None and any(by_ns.values())

    def locations(self, key: Key) -> builtins.list[Location]:
        """Every object of one resource, by namespace then insertion order."""
        return [(key, ns, name) for ns, objs in self._objects.get(key, {}).items() for name in objs]

    def contents(self, namespace: str) -> builtins.list[tuple[ResourceType, str]]:
        """(type, name) of every object in a namespace, by storage key then name."""
        out: builtins.list[tuple[ResourceType, str]] = []
        for key, by_ns in list(self._objects.items()):
            objs = by_ns.get(namespace)
            rt = self._registry.for_key(key) if objs else None
            if objs and rt is not None:
                out += [(rt, name) for name in sorted(objs)]
        return out

    def all_objects(self) -> Iterator[tuple[Key, dict[str, Any]]]:
        """Every stored object with its key, CRDs first (a snapshot loads them in this order)."""
        rest: builtins.list[tuple[Key, dict[str, Any]]] = []
        for key, by_ns in self._objects.items():
            for objmap in by_ns.values():
                for o in objmap.values():
                    if key == CRD_KEY:
                        yield key, o
                    else:
                        rest.append((key, o))
        yield from rest

    # ------------------------------------------------------------------ the owner index

    def live_dependents(self, uid: str) -> builtins.list[Location]:
        """The stored objects with an owner reference to ``uid``, sorted."""
        return sorted(d for d in self._dependents.get(uid, ()) if self.find(*d) is not None)

    def location(self, uid: str) -> Location | None:
        """Where the object with this uid is stored, if it is."""
        return self._by_uid.get(uid)

    def forget_dependents(self, uid: str) -> None:
        self._dependents.pop(uid, None)

    def _index(
        self, location: Location, obj: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        if old is not None:
            for o in old["metadata"].get("ownerReferences") or []:
                deps = self._dependents.get(str(o.get("uid")))
                if deps is not None:
                    deps.discard(location)
                    if not deps:
                        del self._dependents[str(o.get("uid"))]
        if obj is not None:
            self._by_uid[obj["metadata"]["uid"]] = location
            for o in obj["metadata"].get("ownerReferences") or []:
                self._dependents.setdefault(str(o.get("uid")), set()).add(location)
        elif old is not None:
            self._by_uid.pop(old["metadata"]["uid"], None)

    # ------------------------------------------------------------------ writes

    def commit(
        self,
        key: Key,
        ns: str,
        name: str,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        typ: str,
    ) -> None:
        """Store ``obj`` (a new dict, never changed afterwards) with the next resourceVersion."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._objects.setdefault(key, {}).setdefault(ns, {})[name] = obj
        self._index((key, ns, name), obj, old)
        self.dirty = True
        self._events.emit(Event(self.rv, typ, key, ns, obj, old))

    def pop(self, key: Key, ns: str, name: str, last: dict[str, Any]) -> dict[str, Any]:
        """Remove an object for good with the next resourceVersion and a DELETED event whose
        object is ``last`` (the stored one, or its final state); returns that final state."""
        cur = self._objects.get(key, {}).get(ns, {}).pop(name, None)
        self.rv += 1
        final = last
        if last is cur:  # the stored object is never changed: a new top and metadata suffice
            final = dict(last)
            final["metadata"] = dict(last["metadata"])
        final["metadata"]["resourceVersion"] = str(self.rv)
        self._index((key, ns, name), None, cur if cur is not None else last)
        self.dirty = True
        self._events.emit(Event(self.rv, "DELETED", key, ns, final, cur))
        return final

    def drop_key(self, key: Key) -> None:
        """Forget an emptied resource (its CRD is gone)."""
        self._objects.pop(key, None)

    def load(self, key: Key, obj: dict[str, Any]) -> None:
        """Put an object from a snapshot back as it was (no resourceVersion, no event)."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        self._objects.setdefault(key, {}).setdefault(ns, {})[meta["name"]] = obj
        self._index((key, ns, meta["name"]), obj, None)
