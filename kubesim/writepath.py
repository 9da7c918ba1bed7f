"""The steps of the Store's write path for create and update, in the real API server's order:
prepare (pruning and defaulting, unknown fields per ``fieldValidation``), mutating admission,
prepare and validate again, validating admission, then the commit with what every kind shares
(namespace checks, generateName, uid, timestamps, generation, managedFields, no-op updates)
and the kind's own hooks.

``prepare``, ``validate`` and ``admit`` take no lock: the Store runs them before it takes its
lock when admission is configured (webhooks are blocking HTTPS calls). ``Writer`` commits and
runs under the Store's lock. Rules that need no Store state are in ``kubesim.writerules``;
deletion is ``kubesim.deletion``.
"""

from __future__ import annotations

import builtins
import random
from typing import Any

from kubesim import kinds, uids
from kubesim.deletion import NS_KEY, Deletion
from kubesim.errors import ApiError, already_exists, invalid, not_found
from kubesim.errors import required as required_cause
from kubesim.resources import ResourceType
from kubesim.storage import Storage, ns_for
from kubesim.strategies import Kinds
from kubesim.strategies.base import Store as Hooks
from kubesim.timestamps import now_rfc3339
from kubesim.writerules import (
    SERVER_META,
    carry_over,
    check_resource_version,
    meta_of,
    record_manager,
    same_but_volatile,
    spec_part,
)
from kubesim.writing import Admission

GENERATE_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # upstream's alphabet (no vowels)
GENERATE_NAME_SUFFIX = 5


def prepare(
    served: Kinds,
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
    unknown = served.for_type(rt).prepare(rt, obj, old)
    if unknown:
        if field_validation == "Strict":
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
    return warnings


def validate(
    served: Kinds, rt: ResourceType, obj: dict[str, Any], *, old: dict[str, Any] | None = None
) -> None:
    """Raise 422 Invalid with every cause if obj is not a valid object of rt."""
    meta = obj.get("metadata") or {}
    old_meta = (old.get("metadata") or {}) if old is not None else None
    causes = []
    name = meta.get("name") or ""
    if not name and not meta.get("generateName"):
        causes.append(required_cause("metadata.name", "name or generateName is required"))
    elif name and not (old_meta is not None and name == old_meta.get("name")):
        causes += kinds.validate_name(rt, name)
    if old_meta is None or any(meta.get(f) != old_meta.get(f) for f in kinds.METADATA_VALIDATED):
        # an update that keeps them keeps the stored object's (valid) metadata: the same result
        causes += kinds.validate_metadata(meta)
    causes += served.for_type(rt).validate(rt, obj, old)
    if causes:
        raise invalid(rt.kind, rt.group, name, causes)


def admit(
    served: Kinds,
    rt: ResourceType,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    admission: Admission,
    warnings: builtins.list[str],
) -> dict[str, Any]:
    """Mutating admission, then (on create) the defaulting and validation of what it made,
    then validating admission: upstream's order."""
    obj, mutated = admission.mutate(obj, old)
    warnings += mutated
    if old is None:
        prepare(served, rt, obj, field_validation="Ignore")
        validate(served, rt, obj)
    warnings += admission.validate(obj, old)
    return obj


class Writer:
    """Creates and updates objects of one Store (its lock held by the caller)."""

    def __init__(
        self, storage: Storage, served: Kinds, *, deletion: Deletion, hooks: Hooks
    ) -> None:
        self._storage = storage
        self._kinds = served
        self._deletion = deletion
        self._hooks = hooks

    def create(
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
        meta = meta_of(obj)
        ns = self._new_object_scope(rt, obj, namespace)
        if not prepared:
            found = prepare(self._kinds, rt, obj, field_validation=field_validation)
            if warnings is not None:
                warnings += found
            validate(self._kinds, rt, obj)
        self._check_namespace(rt, ns)
        if not meta.get("name"):
            meta["name"] = self._generate_name(rt.key, ns, str(meta.get("generateName")))
        name = meta["name"]
        if self._storage.find(rt.key, ns, name) is not None:
            raise already_exists(rt.resource, rt.group, name)
        rules = self._kinds.for_type(rt)
        rules.before_commit(obj)
        meta["uid"] = rules.preset_uid(obj) or uids.new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        if rt.has_generation:
            meta["generation"] = 1
        if field_manager:
            record_manager(rt, obj, None, field_manager, None)
        if dry_run:
            return obj  # as upstream: a dry-run create has a uid but no resourceVersion
        self._storage.commit(rt.key, ns, name, obj, None, "ADDED")
        rules.after_create(self._hooks, obj)
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str) -> None:
        if not rt.namespaced:
            return
        nso = self._storage.find(NS_KEY, "", ns)
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

    def _new_object_scope(
        self, rt: ResourceType, obj: dict[str, Any], namespace: str | None
    ) -> str:
        """A new object's namespace (the request's; "" for cluster-scoped kinds), its type, and
        no server-set metadata from the client; returns the namespace."""
        meta = meta_of(obj)
        ns = ns_for(rt, namespace or meta.get("namespace"))
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
        for f in SERVER_META:
            if f != "managedFields":
                meta.pop(f, None)
        return ns

    def _generate_name(self, key: tuple[str, str], ns: str, prefix: str) -> str:
        for _ in range(100):
            candidate = prefix + "".join(
                random.choices(GENERATE_NAME_ALPHABET, k=GENERATE_NAME_SUFFIX)
            )
            if self._storage.find(key, ns, candidate) is None:
                return candidate
        raise ApiError(
            500, "InternalError", "Internal error occurred: could not generate a unique name"
        )

    def update(
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
        """Update (or write the status of) an object; a no-op write returns the stored object."""
        meta_in = meta_of(obj)
        ns = ns_for(rt, namespace or meta_in.get("namespace"))
        name = meta_in.get("name")
        if not name:
            raise invalid(
                rt.kind,
                rt.group,
                "",
                [required_cause("metadata.name", "name or generateName is required")],
            )
        cur = self._storage.find(rt.key, ns, name)
        if cur is None:
            raise not_found(rt.resource, rt.group, name)
        cur_meta = cur["metadata"]
        check_resource_version(rt, name, meta_in, cur_meta, required=require_resource_version)
        rules = self._kinds.for_type(rt)
        new = rules.reset_for_update(rt, obj, cur, subresource)
        meta = carry_over(rt, new, cur, ns, managed_override)
        found = prepare(self._kinds, rt, new, old=cur, field_validation=field_validation)
        if warnings is not None:
            warnings += found
        validate(self._kinds, rt, new, old=cur)
        if rt.has_generation and spec_part(new, rt.has_status) != spec_part(cur, rt.has_status):
            meta["generation"] = int(cur_meta.get("generation", 1)) + 1
        if field_manager and managed_override is None:
            record_manager(rt, new, cur, field_manager, subresource)
        rules.before_commit(new)
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        if same_but_volatile(new, cur):
            return cur  # no-op: same resourceVersion, no event
        if dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._deletion.remove(rt.key, ns, name, new)
        self._storage.commit(rt.key, ns, name, new, cur, "MODIFIED")
        rules.after_update(self._hooks, new)
        return new
