"""OpenAPI v3: the index (``/openapi/v3``) and one document per group-version.

kubectl needs these before apply/create/replace (it looks for a PATCH operation of the object's
GVK with a ``fieldValidation`` parameter and then leaves validation to the server) and for
``explain`` (the component schema carrying the GVK). Built-in kinds get a coarse schema (known
top-level fields, the rest preserved); CRD versions get their ``openAPIV3Schema`` plus
apiVersion/kind/metadata. Each document's hash is a digest of its content, so changing a CRD
changes the hash in the index and clients drop their cached copy.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from kubesim.resources import ResourceType

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_BUILTIN_PREFIX = {
    "": "io.k8s.api.core",
    "batch": "io.k8s.api.batch",
    "apps": "io.k8s.api.apps",
    "policy": "io.k8s.api.policy",
    "networking.k8s.io": "io.k8s.api.networking",
    "rbac.authorization.k8s.io": "io.k8s.api.rbac",
    "coordination.k8s.io": "io.k8s.api.coordination",
    "events.k8s.io": "io.k8s.api.events",
    "admissionregistration.k8s.io": "io.k8s.api.admissionregistration",
    "apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
}
_BUILTIN_FIELDS: dict[str, dict[str, str]] = {
    "ConfigMap": {"data": "object", "binaryData": "object", "immutable": "boolean"},
    "Secret": {"data": "object", "stringData": "object", "type": "string", "immutable": "boolean"},
    "Event": {
        "involvedObject": "object",
        "reason": "string",
        "message": "string",
        "type": "string",
        "source": "object",
        "count": "integer",
        "firstTimestamp": "string",
        "lastTimestamp": "string",
        "eventTime": "string",
        "reportingComponent": "string",
        "reportingInstance": "string",
        "action": "string",
        "related": "object",
        "series": "object",
        "regarding": "object",
        "note": "string",
        "reportingController": "string",
        "deprecatedSource": "object",
        "deprecatedFirstTimestamp": "string",
        "deprecatedLastTimestamp": "string",
        "deprecatedCount": "integer",
    },
    "ServiceAccount": {
        "secrets": "array",
        "imagePullSecrets": "array",
        "automountServiceAccountToken": "boolean",
    },
    "MutatingWebhookConfiguration": {"webhooks": "array"},
    "ClusterRole": {"rules": "array", "aggregationRule": "object"},
    "Role": {"rules": "array"},
    "ClusterRoleBinding": {"subjects": "array", "roleRef": "object"},
    "RoleBinding": {"subjects": "array", "roleRef": "object"},
    "ValidatingWebhookConfiguration": {"webhooks": "array"},
}


def schema_name(t: ResourceType) -> str:
    if t.builtin:
        return f"{_BUILTIN_PREFIX.get(t.group, 'io.k8s.api')}.{t.version}.{t.kind}"
    rev = ".".join(reversed(t.group.split(".")))
    return f"{rev}.{t.version}.{t.kind}"


def _object_meta() -> dict[str, Any]:
    s = {"type": "string"}
    return {
        "type": "object",
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "properties": {
            "name": {**s, "description": "Name must be unique within a namespace."},
            "generateName": {
                **s,
                "description": "An optional prefix used to generate a unique name.",
            },
            "namespace": {
                **s,
                "description": "Namespace defines the space within which each name must be unique.",
            },
            "uid": {
                **s,
                "description": "UID is the unique in time and space value for this object.",
            },
            "resourceVersion": {
                **s,
                "description": "An opaque value that represents the internal version.",
            },
            "generation": {
                "type": "integer",
                "format": "int64",
                "description": "A sequence number representing a specific generation of the desired state.",
            },
            "creationTimestamp": {**s, "format": "date-time", "description": "Creation time."},
            "deletionTimestamp": {**s, "format": "date-time", "description": "Deletion time."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": {
                "type": "object",
                "additionalProperties": {"type": "string", "default": ""},
                "description": "Map of string keys and values that can be used to organize objects.",
            },
            "annotations": {
                "type": "object",
                "additionalProperties": {"type": "string", "default": ""},
                "description": "Unstructured key value map stored with a resource.",
            },
            "finalizers": {
                "type": "array",
                "items": {"type": "string", "default": ""},
                "x-kubernetes-list-type": "set",
                "description": "Must be empty before the object is deleted from the registry.",
            },
            "ownerReferences": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "description": "List of objects depended by this object.",
            },
            "managedFields": {
                "type": "array",
                "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "description": "Maps workflow-id and version to the set of fields managed.",
            },
        },
    }


def _kind_schema(t: ResourceType) -> dict[str, Any]:
    gvk = [{"group": t.group, "version": t.version, "kind": t.kind}]
    base_props = {
        "apiVersion": {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this "
            "representation of an object.",
        },
        "kind": {
            "type": "string",
            "description": "Kind is a string value representing the REST resource this "
            "object represents.",
        },
        "metadata": {
            "allOf": [{"$ref": f"#/components/schemas/{OBJECT_META}"}],
            "default": {},
            "description": "Standard object's metadata.",
        },
    }
    if not t.builtin and t.schema is not None:
        sch = copy.deepcopy(t.schema)
        props = sch.setdefault("properties", {})
        for k, v in base_props.items():
            props[k] = v
        sch.setdefault("type", "object")
        sch["x-kubernetes-group-version-kind"] = gvk
        return sch
    props = dict(base_props)
    for f, typ in _BUILTIN_FIELDS.get(t.kind, {}).items():
        props[f] = {"type": typ}
        if typ == "object":
            props[f]["x-kubernetes-preserve-unknown-fields"] = True
        if typ == "array":
            props[f]["items"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if t.kind not in _BUILTIN_FIELDS:
        props["spec"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": f"Spec of the {t.kind}.",
        }
        props["status"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "description": f"Most recently observed status of the {t.kind}.",
        }
    return {
        "type": "object",
        "description": t.description or t.kind,
        "properties": props,
        "x-kubernetes-group-version-kind": gvk,
    }


_WRITE_PARAMS = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]


def _op(
    t: ResourceType,
    action: str,
    op_id: str,
    ref: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: bool = False,
) -> dict[str, Any]:
    gvk = {"group": t.group, "version": t.version, "kind": t.kind}
    op: dict[str, Any] = {
        "operationId": op_id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": {"$ref": ref}}},
            },
            "401": {"description": "Unauthorized"},
        },
    }
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {"content": {"*/*": {"schema": {"$ref": ref}}}, "required": True}
    return op


def _paths_for(t: ResourceType) -> dict[str, dict[str, Any]]:
    prefix = f"/apis/{t.group}/{t.version}" if t.group else f"/api/{t.version}"
    coll = (
        f"{prefix}/namespaces/{{namespace}}/{t.resource}"
        if t.namespaced
        else f"{prefix}/{t.resource}"
    )
    ref = f"#/components/schemas/{schema_name(t)}"
    list_ref = ref + "List"
    kind = t.kind
    ns_word = "Namespaced" if t.namespaced else ""
    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    ns_param = {"name": "namespace", "in": "path", "required": True, "schema": {"type": "string"}}
    common = [name_param] + ([ns_param] if t.namespaced else [])
    patch_params = [*_WRITE_PARAMS, {"name": "force", "in": "query", "schema": {"type": "boolean"}}]
    paths = {
        coll: {
            "get": _op(
                t,
                "list",
                f"list{ns_word}{kind}",
                list_ref,
                params=[
                    {"name": n, "in": "query", "schema": {"type": "string"}}
                    for n in (
                        "labelSelector",
                        "fieldSelector",
                        "limit",
                        "continue",
                        "resourceVersion",
                        "watch",
                    )
                ],
            ),
            "post": _op(t, "post", f"create{ns_word}{kind}", ref, params=_WRITE_PARAMS, body=True),
            "delete": _op(t, "deletecollection", f"deleteCollection{ns_word}{kind}", ref),
            "parameters": [ns_param] if t.namespaced else [],
        },
        f"{coll}/{{name}}": {
            "get": _op(t, "get", f"read{ns_word}{kind}", ref),
            "put": _op(t, "put", f"replace{ns_word}{kind}", ref, params=_WRITE_PARAMS, body=True),
            "patch": _op(t, "patch", f"patch{ns_word}{kind}", ref, params=patch_params, body=True),
            "delete": _op(t, "delete", f"delete{ns_word}{kind}", ref),
            "parameters": common,
        },
    }
    if t.has_status:
        paths[f"{coll}/{{name}}/status"] = {
            "get": _op(t, "get", f"read{ns_word}{kind}Status", ref),
            "put": _op(
                t, "put", f"replace{ns_word}{kind}Status", ref, params=_WRITE_PARAMS, body=True
            ),
            "patch": _op(
                t, "patch", f"patch{ns_word}{kind}Status", ref, params=patch_params, body=True
            ),
            "parameters": common,
        }
    if t.namespaced:
        paths[f"{prefix}/{t.resource}"] = {
            "get": _op(t, "list", f"list{kind}ForAllNamespaces", list_ref)
        }
    return paths


def document(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    res = sorted(
        (t for t in types if t.group == group and t.version == version), key=lambda t: t.resource
    )
    if not res:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {OBJECT_META: _object_meta()}
    for t in res:
        paths.update(_paths_for(t))
        name = schema_name(t)
        schemas[name] = _kind_schema(t)
        schemas[name + "List"] = {
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
            "x-kubernetes-group-version-kind": [
                {"group": t.group, "version": t.version, "kind": t.list_kind}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.1"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


class OpenApiCache:
    """Documents and their hashes for one registry generation (rebuilt lazily on change)."""

    def __init__(self) -> None:
        self._generation = -1
        self._docs: dict[str, bytes] = {}
        self._hashes: dict[str, str] = {}
        self._index: bytes = b""
        self._etag = ""

    def refresh(self, types: list[ResourceType], generation: int) -> None:
        if generation == self._generation:
            return
        gvs = sorted({(t.group, t.version) for t in types})
        docs: dict[str, bytes] = {}
        hashes: dict[str, str] = {}
        for g, v in gvs:
            doc = document(types, g, v)
            if doc is None:
                continue
            raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
            key = gv_path(g, v)
            docs[key] = raw
            hashes[key] = hashlib.sha256(raw).hexdigest().upper()
        index = {
            "paths": {
                k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={h}"}
                for k, h in sorted(hashes.items())
            }
        }
        self._docs, self._hashes = docs, hashes
        self._index = json.dumps(index, separators=(",", ":")).encode()
        self._etag = '"' + hashlib.sha256(self._index).hexdigest().upper() + '"'
        self._generation = generation

    def index(self) -> tuple[bytes, str]:
        return self._index, self._etag

    def get(self, key: str) -> tuple[bytes, str] | None:
        raw = self._docs.get(key)
        if raw is None:
            return None
        return raw, self._hashes[key]
