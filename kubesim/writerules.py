"""The Store's per-write rules that need no Store state: what a create may set, what an update
keeps of the stored object (server-set metadata, identity, finalizers while deleting),
resourceVersion and delete preconditions, and what counts as a change (no-op writes and
generation bumps)."""

from __future__ import annotations

from typing import Any

from kubesim import kinds
from kubesim.errors import Cause, conflict, invalid
from kubesim.resources import ResourceType

SERVER_META = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
)


def check_resource_version(
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


def _keep_server_meta(
    meta: dict[str, Any],
    cur_meta: dict[str, Any],
    managed_override: list[dict[str, Any]] | None,
) -> None:
    """Fields only the server sets keep their stored values (resourceVersion is set by the
    commit); managedFields are the client's if it sent them, else the stored ones, unless
    server-side apply computed them (``managed_override``)."""
    # the stored values themselves, not copies: stored objects are never changed, and neither
    # are managedFields entries (kubesim.managed builds new ones)
    for f in SERVER_META:
        if f in cur_meta and f not in ("resourceVersion", "managedFields"):
            meta[f] = cur_meta[f]
        elif f != "managedFields":
            meta.pop(f, None)
    if "managedFields" not in meta and "managedFields" in cur_meta:
        meta["managedFields"] = cur_meta["managedFields"]
    if managed_override is not None:
        meta["managedFields"] = managed_override


def carry_over(
    rt: ResourceType,
    new: dict[str, Any],
    cur: dict[str, Any],
    ns: str,
    managed_override: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """What an update keeps of the stored object: its identity, the server-set metadata, and
    (while it is being deleted) no new finalizers; returns the new object's metadata."""
    new["apiVersion"] = rt.api_version
    new["kind"] = rt.kind
    meta = meta_of(new)
    cur_meta = cur["metadata"]
    meta["name"] = cur_meta["name"]
    if rt.namespaced:
        meta["namespace"] = ns
    _keep_server_meta(meta, cur_meta, managed_override)
    if cur_meta.get("deletionTimestamp"):
        _refuse_new_finalizers(rt, cur_meta["name"], meta, cur_meta)
    return meta


def record_manager(
    rt: ResourceType,
    obj: dict[str, Any],
    old: dict[str, Any] | None,
    manager: str,
    subresource: str | None,
) -> None:
    """Record ``manager``'s Update entry in ``obj``'s managedFields."""
    from kubesim import managed

    managed.record_update(
        obj,
        old,
        manager=manager,
        api_version=rt.api_version,
        has_status=rt.has_status,
        subresource=subresource,
        list_type=managed.list_type_for(rt),
    )


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


def check_propagation(propagation: str) -> None:
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


def check_preconditions(
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


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def same_but_volatile(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether ``a`` and ``b`` are the same object but for their resourceVersion and the times
    of their managedFields entries (a write that changes nothing else is a no-op). Nothing is
    copied, and entries both share are compared by identity."""
    if {k: v for k, v in a.items() if k != "metadata"} != {
        k: v for k, v in b.items() if k != "metadata"
    }:
        return False
    ma, mb = a.get("metadata") or {}, b.get("metadata") or {}
    volatile = ("resourceVersion", "managedFields")
    if {k: v for k, v in ma.items() if k not in volatile} != {
        k: v for k, v in mb.items() if k not in volatile
    }:
        return False
    fa, fb = ma.get("managedFields", _ABSENT), mb.get("managedFields", _ABSENT)
    if fa is fb:
        return True
    if not (isinstance(fa, list) and isinstance(fb, list)):
        return bool(fa == fb)
    ea = [e for e in fa if isinstance(e, dict)]
    eb = [e for e in fb if isinstance(e, dict)]
    return len(ea) == len(eb) and all(
        x is y or _untimed(x) == _untimed(y) for x, y in zip(ea, eb, strict=True)
    )


def _untimed(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "time"}


_ABSENT: Any = object()


def spec_part(obj: dict[str, Any], has_status: bool) -> dict[str, Any]:
    """What counts for metadata.generation: everything but metadata (and status if a subresource)."""
    return {k: v for k, v in obj.items() if k != "metadata" and not (has_status and k == "status")}


def invalid_rv_cause() -> Cause:
    return Cause(
        "FieldValueInvalid",
        "metadata.resourceVersion",
        "Invalid value: 0x0: must be specified for an update",
    )
