"""Writes in kube-apiserver's order: decode -> (patch against the live object: merge, JSON,
strategic, server-side apply) -> defaulting -> mutating admission -> validation -> validating
admission -> persist; a patch without a resourceVersion precondition is retried on a write
conflict (GuaranteedUpdate). Deletes with propagation and preconditions, deletecollection."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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
                options=write_options("CreateOptions", manager, fv),
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
        out = json_body(self._out(route, created))  # stored objects never change: unlocked
        return self._json(None, 201, raw=out, warnings=warnings)

    def _admit(
        self,
        op: str,
        route: Route,
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
                options=write_options("UpdateOptions", manager, fv),
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
        out = json_body(self._out(route, updated))
        return self._json(None, raw=out, warnings=warnings)

    def _patch(self, request: web.Request, route: Route, body: bytes) -> web.Response:
        rt = route.rt
        assert route.name is not None
        ptype = patch_type_of(rt, content_type_of(request))
        dry_run, manager, fv = self._options(request)
        force = request.query.get("force")
        if ptype == "apply":
            patch_body = self._decode_apply_patch(route, body, request.query)
        else:
            patch_body = decode_patch(ptype, body, force=force)
        has_rv_precondition = (
            ptype != "json"
            and isinstance(patch_body, dict)
            and bool((patch_body.get("metadata") or {}).get("resourceVersion"))
        )
        sub = route.subresource or ""
        opts = write_options("UpdateOptions", manager, fv)
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
                route,
                ptype,
                cur_copy,
                patch_body,
                manager=manager,
                force=force == "true",
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
                out = json_body(self._out(route, updated))
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
        self,
        route: Route,
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
        route: Route,
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
                    options={
                        "apiVersion": "meta.k8s.io/v1",
                        "kind": "DeleteOptions",
                        **opts,
                    },
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
        return self._json(None, raw=out, warnings=warnings)

    def _delete_collection(self, request: web.Request, route: Route, body: bytes) -> web.Response:
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
