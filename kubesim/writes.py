"""Writes in kube-apiserver's order: decode -> (patch against the live object: merge, JSON,
strategic, server-side apply) -> defaulting -> mutating admission -> validation -> validating
admission -> persist; a patch without a resourceVersion precondition is retried on a write
conflict (GuaranteedUpdate). Deletes with propagation and preconditions, deletecollection."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from kubesim import managed, protobuf, selectors
from kubesim.clone import clone
from kubesim.errors import ApiError, Cause, bad_request, invalid, method_not_allowed
from kubesim.patch import json_patch, merge_patch, strategic_merge
from kubesim.resources import ResourceType
from kubesim.servercore import Route, content_type_of, json_body, load_yaml
from kubesim.watches import WatchHandlers
from kubesim.writing import Write

if TYPE_CHECKING:
    from kubesim.admission import Attributes

log = logging.getLogger(__name__)


PATCH_RETRIES = 8  # GuaranteedUpdate-style retries of a patch racing other writers


# upstream stores that answer a DELETE with the deleted object instead of a Status (the typed
# Python client deserialises e.g. delete_namespaced_pod into a V1Pod and fails on a Status)
RETURN_DELETED_OBJECT = {
    ("", "pods"),
    ("", "services"),
    ("", "persistentvolumeclaims"),
    ("", "serviceaccounts"),
}


PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply-cbor",
}


def patch_type_of(rt: ResourceType, content_type: str) -> str:
    """merge | json | strategic (built-in kinds only) | apply; 415 for anything else."""
    ptype = PATCH_TYPES.get(content_type)
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


def decode_patch(ptype: str, body: bytes, *, force: str | None) -> Any:
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


def write_options(kind: str, manager: str, fv: str) -> dict[str, Any]:
    """The CreateOptions/UpdateOptions object admission webhooks see in ``request.options``."""
    return {
        "apiVersion": "meta.k8s.io/v1",
        "kind": kind,
        "fieldManager": manager,
        "fieldValidation": fv,
    }


class WriteHandlers(WatchHandlers):
    """Create, update, patch, delete (see module docstring)."""

    def _create(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        rt = route.rt
        if route.namespace is None and rt.namespaced:
            raise method_not_allowed()
        obj = self._into(
            route,
            self._check_identity(route, self._decode(request, body, yaml_ok=True)),
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
        route: Route,
        obj: dict[str, Any],
        *,
        dry_run: bool,
        manager: str,
        store_manager: str | None,
        fv: str,
    ) -> web.Response:
        """Store a new object, admitted when webhooks exist; 201 with the stored object.

        ``manager`` is the request's field manager (in the admission CreateOptions);
        ``store_manager`` the one the Store records in managedFields (None for an apply, whose
        managedFields are already computed).
        """
        name = str(obj["metadata"].get("name") or "")
        req = Write(
            namespace=route.namespace,
            dry_run=dry_run,
            field_manager=store_manager,
            field_validation=fv,
            admission=self._admission(
                "CREATE", route, name, dry_run, write_options("CreateOptions", manager, fv)
            ),
        )
        created = self.store.write_create(route.rt, obj, req)
        out = json_body(self._out(route, created))  # stored objects never change: unlocked
        return self._json(None, 201, raw=out, warnings=req.warnings)

    def _admission(
        self,
        op: str,
        route: Route,
        name: str,
        dry_run: bool,
        options: dict[str, Any],
        subresource: str = "",
    ) -> RequestAdmission | None:
        """The admission chain for this request, or None while no webhook is configured (the
        Store then prepares and validates each object exactly once)."""
        if not self._has_webhooks():
            return None
        return RequestAdmission(
            self, op, route, name=name, subresource=subresource, dry_run=dry_run, options=options
        )

    def _update(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        obj = self._into(
            route,
            self._check_identity(route, self._decode(request, body, yaml_ok=True)),
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
        req = self._update_request(route, dry_run, manager, fv)
        req.require_resource_version = not rt.builtin
        updated = self.store.write_update(rt, obj, req)
        out = json_body(self._out(route, updated))
        return self._json(None, raw=out, warnings=req.warnings)

    def _update_request(self, route: Route, dry_run: bool, manager: str, fv: str) -> Write:
        assert route.name is not None
        return Write(
            namespace=route.namespace,
            subresource=route.subresource,
            dry_run=dry_run,
            field_manager=manager,
            field_validation=fv,
            admission=self._admission(
                "UPDATE",
                route,
                route.name,
                dry_run,
                write_options("UpdateOptions", manager, fv),
                subresource=route.subresource or "",
            ),
        )

    def _patch(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        """Patch the live object, retried on a write conflict unless the patch carries a
        resourceVersion precondition (GuaranteedUpdate); an apply to a missing object
        creates it."""
        p = self._patch_request(request, route, body)
        for attempt in range(PATCH_RETRIES):
            try:
                cur = self.store.get_ref(route.rt, str(route.name), route.namespace)
            except ApiError as e:
                if e.code == 404 and p.ptype == "apply" and not route.subresource:
                    return self._apply_create(route, p)
                raise
            try:
                return self._patch_once(route, p, cur)
            except ApiError as e:
                retry = e.code == 409 and e.reason == "Conflict" and not p.has_rv_precondition
                if not (retry and attempt + 1 < PATCH_RETRIES):
                    raise
        raise ApiError(409, "Conflict", "too many conflicts", details={})

    def _patch_request(self, request: web.Request, route: Route, body: bytes) -> PatchRequest:
        ptype = patch_type_of(route.rt, content_type_of(request))
        dry_run, manager, fv = self._options(request)
        force = request.query.get("force")
        if ptype == "apply":
            patch_body: Any = self._decode_apply_patch(route, body, request.query)
        else:
            patch_body = decode_patch(ptype, body, force=force)
        has_rv_precondition = (
            ptype != "json"
            and isinstance(patch_body, dict)
            and bool((patch_body.get("metadata") or {}).get("resourceVersion"))
        )
        return PatchRequest(
            ptype, patch_body, manager, dry_run, fv, force == "true", has_rv_precondition
        )

    def _patch_once(self, route: Route, p: PatchRequest, cur: dict[str, Any]) -> web.Response:
        """One attempt: patch a copy of ``cur`` and write it, conditional on ``cur``'s
        resourceVersion (unless the patch names its own)."""
        rt = route.rt
        cur_copy = clone(cur)
        new, managed_override = self._patched(route, p, cur_copy)
        if p.ptype == "json":
            new["metadata"].setdefault("resourceVersion", cur["metadata"]["resourceVersion"])
        elif not p.has_rv_precondition:
            new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        req = self._update_request(route, p.dry_run, p.manager, p.fv)
        req.old = cur_copy
        req.managed_override = managed_override
        if p.ptype == "apply":
            req.field_manager = None  # managed.apply computed managedFields
        updated = self.store.write_update(rt, new, req)
        out = json_body(self._out(route, updated))
        return self._json(None, raw=out, warnings=req.warnings)

    def _decode_apply_patch(
        self, route: Route, body: bytes, q: Mapping[str, str]
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
            patch_body = load_yaml(body) if body else None
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
        self, route: Route, p: PatchRequest, cur: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Any] | None]:
        """(``cur`` patched, in the stored form; the managedFields server-side apply computed,
        or None for the other patch types, whose manager is recorded by the update)."""
        rt = route.rt
        ptype, patch_body = p.ptype, p.body
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
                manager=p.manager,
                force=p.force,
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

    def _apply_create(self, route: Route, p: PatchRequest) -> web.Response:
        """Server-side apply to a missing object creates it."""
        rt = route.rt
        assert isinstance(p.body, dict)  # checked when decoded for apply patches
        obj = managed.apply(
            None,
            p.body,
            manager=p.manager,
            force=p.force,
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
            route, obj, dry_run=p.dry_run, manager=p.manager, store_manager=None, fv=p.fv
        )

    def _delete_options(self, request: web.Request, body: bytes) -> dict[str, Any]:
        opts: dict[str, Any] = {}
        ctype = content_type_of(request)
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

    def _delete(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        if route.subresource:
            raise method_not_allowed()
        req = self._delete_request(request, route, body, route.name)
        obj, gone = self.store.write_delete(rt, route.name, req)
        if gone and rt.key not in RETURN_DELETED_OBJECT:
            details: dict[str, Any] = {"name": route.name}
            if rt.group:
                details["group"] = rt.group
            details["kind"] = rt.resource
            details["uid"] = obj["metadata"]["uid"]
            out = json_body(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }
            )
        else:
            out = json_body(self._out(route, obj))
        return self._json(None, raw=out, warnings=req.warnings)

    def _delete_request(self, request: web.Request, route: Route, body: bytes, name: str) -> Write:
        opts = self._delete_options(request, body)
        dry_run = "All" in (opts.get("dryRun") or [])
        options = {"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", **opts}
        return Write(
            namespace=route.namespace,
            dry_run=dry_run,
            propagation=opts.get("propagationPolicy") or "Background",
            preconditions=opts.get("preconditions"),
            admission=self._admission("DELETE", route, name, dry_run, options),
        )

    def _delete_collection(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        rt = route.rt
        q = request.query
        opts = self._delete_options(request, body)
        req = Write(
            dry_run="All" in (opts.get("dryRun") or []),
            propagation=opts.get("propagationPolicy") or "Background",
        )
        pred = selectors.compile_selectors(q.get("labelSelector"), self._field_selector(route, q))
        items, _rv = self.store.list_refs(rt, route.namespace, pred)
        deleted = []
        for o in items:
            req.namespace = o["metadata"].get("namespace")
            try:
                obj, _gone = self.store.write_delete(rt, o["metadata"]["name"], req)
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


@dataclass(frozen=True)
class PatchRequest:
    """A decoded PATCH: its type, body and options."""

    ptype: str
    body: Any
    manager: str
    dry_run: bool
    fv: str
    force: bool
    has_rv_precondition: bool


class RequestAdmission:
    """The admission chain bound to one request (``kubesim.writing.Admission``): what the
    Store calls around its own preparing and validating of the object."""

    def __init__(
        self,
        server: WriteHandlers,
        op: str,
        route: Route,
        *,
        name: str,
        subresource: str,
        dry_run: bool,
        options: dict[str, Any],
    ) -> None:
        self.server = server
        self.op = op
        self.route = route
        self.name = name
        self.subresource = subresource
        self.dry_run = dry_run
        self.options = options

    def _attrs(self, obj: dict[str, Any] | None, old: dict[str, Any] | None) -> Attributes:
        return self.server._attrs(
            self.op,
            self.route,
            obj,
            old,
            name=self.name,
            subresource=self.subresource,
            dry_run=self.dry_run,
            options=self.options,
        )

    def mutate(
        self, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[str]]:
        return self.server.admission.mutate(self._attrs(obj, old))

    def validate(self, obj: dict[str, Any] | None, old: dict[str, Any] | None) -> list[str]:
        return self.server.admission.validate(self._attrs(obj, old))
