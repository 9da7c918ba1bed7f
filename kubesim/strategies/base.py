"""The strategy every kind follows, modelled on the real API server's registry
(``k8s.io/apiserver/pkg/registry/rest``: ``RESTCreateStrategy``/``RESTUpdateStrategy`` with
``PrepareForCreate``/``PrepareForUpdate``, ``Validate``/``ValidateUpdate``, a ``TableConvertor``,
and the store's ``AfterCreate``/``AfterUpdate``/``AfterDelete`` hooks).

The Store asks its ``Kinds`` for the strategy of a resource type and calls it: ``prepare`` (the
kind's defaulting), ``reset_for_update`` (what an update may change: the status subresource
rules), ``validate``, ``before_commit`` and the after-commit hooks, under its lock; ``delete``
lets a kind replace the generic deletion (a namespace is finalized, not removed); the HTTP
layer asks ``table`` for the kind's columns. Kind-independent rules (names, metadata,
resourceVersion, finalizers, garbage collection) stay in the Store.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubesim import tables
from kubesim.clone import clone
from kubesim.errors import ApiError, Cause
from kubesim.resources import GVR, Registry, ResourceType
from kubesim.tables import Column, ColumnDefinition, Getter

Key = tuple[str, str]  # a storage key: (group, resource)


class Store(Protocol):
    """What strategies use of ``kubesim.store.Store`` (a Protocol: the Store imports them).
    The hooks run under the Store's lock; the lower-level calls are only for them."""

    registry: Registry

    def get(self, gvr: GVR, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def create(
        self, gvr: GVR, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    def drop_all(self, key: Key) -> None: ...

    def drop_pod_logs(self, namespace: str, name: str) -> None: ...

    def find(self, key: Key, ns: str, name: str) -> dict[str, Any] | None: ...

    def commit_modified(self, key: Key, obj: dict[str, Any], old: dict[str, Any]) -> None: ...

    def remove(self, key: Key, ns: str, name: str, last: dict[str, Any]) -> dict[str, Any]: ...

    def delete_in_lock(self, rt: ResourceType, name: str, namespace: str) -> None: ...

    def contents(self, namespace: str) -> list[tuple[ResourceType, str]]: ...


class Strategy:
    """The rules of one kind; the defaults are what a kind without rules of its own gets.

    ``types``: the resource types the kind is served as (built-in kinds declare them here);
    ``columns``: its table columns after Name (Age is added unless one is a date).
    """

    types: tuple[ResourceType, ...] = ()
    columns: tuple[Column, ...] = ()

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        """Defaulting on create (``old`` None) and update, in place (PrepareForCreate/Update and
        the kind's defaulting); returns the unknown fields it pruned (custom resources)."""
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        """The kind's own validation causes (the Store checks names and metadata)."""
        return []

    def reset_for_update(
        self, rt: ResourceType, obj: dict[str, Any], cur: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        """The object an update writes (PrepareForUpdate's status rules): through ``status`` only
        the status changes; otherwise everything but the status (of a kind with a status
        subresource) does."""
        if subresource == "status":
            # everything but the status is the stored object's, shared, not copied: stored
            # objects are never changed, and preparing an update leaves a subtree equal to the
            # stored one as it is (prune and schema defaults skip it, defaulting is idempotent)
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

    def preset_uid(self, obj: dict[str, Any]) -> str | None:
        """The uid defaulting already committed to (a Job's generated selector names it)."""
        return None

    def table(self, rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
        """The kind's table columns and the getters of their cells (a TableConvertor)."""
        return tables.builtin_columns(self.columns)

    def before_commit(self, obj: dict[str, Any]) -> None:
        """What the server sets on an object about to be stored (create or update)."""

    def delete(
        self, store: Store, rt: ResourceType, cur: dict[str, Any]
    ) -> tuple[dict[str, Any], bool] | None:
        """A kind's own deletion (the Store's lock is held): (the object as deleted or marked,
        whether it is gone), or None for the generic one (finalizers, owner propagation)."""
        return None

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        """After a create was committed (the Store's lock is held)."""

    def after_update(self, store: Store, obj: dict[str, Any]) -> None:
        """After an update was committed (the Store's lock is held)."""

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        """After the object left the Store (the Store's lock is held)."""

    def content_removed(self, store: Store, namespace: str) -> None:
        """After an object inside one of this (scope) kind's objects left the Store: only the
        Namespace strategy acts (its finalization)."""
