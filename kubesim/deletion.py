"""Deletion as the API server and its garbage collector do it: preconditions, finalizers and
``deletionTimestamp``, propagation policies, and what a final removal sets off.

* An object with finalizers is only marked (``deletionTimestamp``); it goes when an update
  leaves it with none. Without finalizers it is removed at once.
* ``Background``: when an object is finally removed, dependents whose owners are all gone are
  deleted (synchronously, here). ``Foreground``: the owner is marked with the
  ``foregroundDeletion`` finalizer, its dependents are deleted, and it goes once no dependent
  with ``blockOwnerDeletion`` is left. ``Orphan`` (or the ``orphan`` finalizer): the dependents
  lose their owner reference and stay.
* A kind whose deletion is its own (a Namespace) handles it in its strategy's ``delete``; a
  removal calls the kind's ``after_remove`` and tells the namespace strategy that content left
  (a Terminating namespace is finalized when empty).

Everything here runs under the Store's lock. Strategy hooks are given ``hooks``, the Store
itself, as they are from every other write.
"""

from __future__ import annotations

import builtins
from typing import Any

from kubesim.clone import clone
from kubesim.resources import Registry, ResourceType
from kubesim.storage import Location, Storage, ns_for
from kubesim.strategies import Kinds
from kubesim.strategies.base import Store as Hooks
from kubesim.timestamps import now_rfc3339
from kubesim.writerules import check_preconditions, check_propagation

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
NS_KEY = ("", "namespaces")


class Deletion:
    """Deletes and removes objects of one Store (see the module docstring)."""

    def __init__(self, storage: Storage, kinds: Kinds, *, registry: Registry, hooks: Hooks) -> None:
        self._storage = storage
        self._kinds = kinds
        self._registry = registry
        self._hooks = hooks

    def delete(
        self,
        rt: ResourceType,
        name: str,
        namespace: str | None,
        *,
        propagation: str = "Background",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """(the object as deleted or marked, whether it is gone)."""
        ns = ns_for(rt, namespace)
        cur = self._storage.get_ref(rt, name, ns)
        meta = cur["metadata"]
        if preconditions:
            check_preconditions(rt, name, meta, preconditions)
        check_propagation(propagation)
        if dry_run:
            return cur, not meta.get("finalizers")
        if meta.get("deletionTimestamp"):
            return cur, False
        own = self._kinds.for_type(rt).delete(self._hooks, rt, cur)
        if own is not None:
            return own
        uid = meta["uid"]
        deps = self._storage.live_dependents(uid)
        if propagation == "Orphan" or ORPHAN in (meta.get("finalizers") or []):
            for dkey, dns, dname in deps:
                self._strip_owner(dkey, dns, dname, uid)
            if ORPHAN in (meta.get("finalizers") or []):
                cur = self._set_finalizers(
                    rt.key, ns, name, [f for f in meta["finalizers"] if f != ORPHAN]
                )
            deps = []
        if propagation == "Foreground" and deps:
            return self._delete_foreground(rt, ns, cur, deps)
        if meta.get("finalizers"):
            marked = clone(cur)
            marked["metadata"]["deletionTimestamp"] = now_rfc3339()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            self._storage.commit(rt.key, ns, name, marked, cur, "MODIFIED")
            return marked, False
        return self.remove(rt.key, ns, name, cur), True

    def _delete_foreground(
        self,
        rt: ResourceType,
        ns: str,
        cur: dict[str, Any],
        deps: builtins.list[Location],
    ) -> tuple[dict[str, Any], bool]:
        """Foreground propagation: the owner is marked with the foregroundDeletion finalizer,
        its dependents are deleted (foreground too), and it goes when none blocks it."""
        name = cur["metadata"]["name"]
        marked = clone(cur)
        mm = marked["metadata"]
        mm["deletionTimestamp"] = now_rfc3339()
        mm["deletionGracePeriodSeconds"] = 0
        mm["finalizers"] = [*(mm.get("finalizers") or []), FOREGROUND]
        self._storage.commit(rt.key, ns, name, marked, cur, "MODIFIED")
        for dkey, dns, dname in deps:
            drt = self._registry.for_key(dkey)
            if drt is not None and self._storage.find(dkey, dns, dname) is not None:
                self.delete(drt, dname, dns or None, propagation="Foreground")
        self._try_finish_foreground(mm["uid"])
        final = self._storage.find(rt.key, ns, name)
        return (final, False) if final is not None else (marked, True)

    def _strip_owner(self, key: tuple[str, str], ns: str, name: str, owner_uid: str) -> None:
        cur = self._storage.find(key, ns, name)
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
        self._storage.commit(key, ns, name, new, cur, "MODIFIED")

    def _set_finalizers(
        self, key: tuple[str, str], ns: str, name: str, finalizers: builtins.list[str]
    ) -> dict[str, Any]:
        cur = self._storage.find(key, ns, name)
        assert cur is not None
        new = clone(cur)
        if finalizers:
            new["metadata"]["finalizers"] = finalizers
        else:
            new["metadata"].pop("finalizers", None)
        if new["metadata"].get("deletionTimestamp") and not finalizers:
            return self.remove(key, ns, name, new)
        self._storage.commit(key, ns, name, new, cur, "MODIFIED")
        return new

    def remove(
        self, key: tuple[str, str], ns: str, name: str, last: dict[str, Any]
    ) -> dict[str, Any]:
        """Final removal: DELETED event, then garbage collection and deferred completions."""
        final = self._storage.pop(key, ns, name, last)
        uid = final["metadata"]["uid"]
        removed_rt = self._registry.for_key(key)
        if removed_rt is not None:
            self._kinds.for_type(removed_rt).after_remove(self._hooks, final)
        # background garbage collection of dependents whose owners are all gone
        for dkey, dns, dname in self._storage.live_dependents(uid):
            dep = self._storage.find(dkey, dns, dname)
            if dep is None:
                continue
            others = [
                r
                for r in (dep["metadata"].get("ownerReferences") or [])
                if r.get("uid") != uid and self._storage.location(str(r.get("uid"))) is not None
            ]
            drt = self._registry.for_key(dkey)
            if not others and drt is not None:
                self.delete(drt, dname, dns or None, propagation="Background")
        self._storage.forget_dependents(uid)
        for ref in final["metadata"].get("ownerReferences") or []:
            self._try_finish_foreground(str(ref.get("uid")))
        if ns:
            self._kinds.for_key(NS_KEY).content_removed(self._hooks, ns)
        return final

    def _try_finish_foreground(self, owner_uid: str) -> None:
        ref = self._storage.location(owner_uid)
        if ref is None:
            return
        owner = self._storage.find(*ref)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or []):
            return
        for dref in self._storage.live_dependents(owner_uid):
            dep = self._storage.find(*dref)
            if dep is None:
                continue
            for r in dep["metadata"].get("ownerReferences") or []:
                if r.get("uid") == owner_uid and r.get("blockOwnerDeletion"):
                    return
        self._set_finalizers(
            ref[0], ref[1], ref[2], [f for f in owner["metadata"]["finalizers"] if f != FOREGROUND]
        )
