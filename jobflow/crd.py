"""The JobFlow CustomResourceDefinition, generated from ``jobflow.model``.

``crd()`` turns the pydantic JSON schema into a Kubernetes structural schema:
- ``$ref``s are inlined (a CRD schema cannot reference), ``anyOf [X, null]`` becomes ``X``,
  pydantic titles and ``null`` defaults are dropped;
- enumerations become ``type: string`` + ``enum`` (so every phase the controller writes is
  accepted, and ``"True"``/``"False"`` stay strings);
- objects kept whole (``steps[].template``, resourceTemplates items, ``metadata``-like maps)
  and the status structures (forward compatible) carry ``x-kubernetes-preserve-unknown-fields``;
- the schema carries the stored defaults of ``jobflow.defaults`` (``executionPolicy``
  defaults to ``{}`` so its fields are defaulted even when it is absent) and none inside
  ``steps[]``: a default stored in a list item makes every `kubectl apply` of an unchanged
  manifest a change (see jobflow.defaults); those apply in memory only.

``crds/jobflows.yaml`` is this function's output (``zen-flow crd``); a unit test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import yaml

from jobflow import defaults, names
from jobflow.model import JobFlow

# (model name, wire field) -> schema default; mirrors jobflow.defaults.admission_patch (the
# stored defaults: none inside a list).
_DEFAULTS: Final[Mapping[tuple[str, str], object]] = {
    ("JobFlowSpec", "executionPolicy"): {},
    ("ExecutionPolicy", "concurrencyPolicy"): defaults.DEFAULT_CONCURRENCY_POLICY,
    ("ExecutionPolicy", "ttlSecondsAfterFinished"): defaults.DEFAULT_TTL_SECONDS_AFTER_FINISHED,
    ("ExecutionPolicy", "backoffLimit"): defaults.DEFAULT_BACKOFF_LIMIT,
}
# Bounds the API server can enforce itself (jobflow.validation enforces them too, with paths).
_BOUNDS: Final[Mapping[tuple[str, str], Mapping[str, object]]] = {
    ("ExecutionPolicy", "ttlSecondsAfterFinished"): {"minimum": 0},
    ("ExecutionPolicy", "backoffLimit"): {"minimum": 0},
    ("ExecutionPolicy", "activeDeadlineSeconds"): {"minimum": 1},
    ("RetryPolicy", "limit"): {"minimum": 0},
    ("OnExitCodes", "values"): {"items": {"type": "integer", "minimum": 0, "maximum": 255}},
    ("Step", "name"): {"maxLength": 63},
}

_Schema = dict[str, object]


def _as_schema(value: object) -> _Schema:
    if not isinstance(value, dict):
        raise TypeError(f"unexpected JSON schema node {value!r}")
    return {str(k): v for k, v in value.items()}


class _Converter:
    def __init__(self, root: _Schema) -> None:
        self.defs = _as_schema(root.get("$defs", {}))

    def resolve(self, node: _Schema) -> tuple[_Schema, str | None]:
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            return _as_schema(self.defs[name]), name
        return node, None

    def convert(self, raw: object, owner: str | None = None) -> _Schema:
        node = _as_schema(raw)
        any_of = node.get("anyOf")
        if isinstance(any_of, list):
            options = [o for o in any_of if o != {"type": "null"}]
            if len(options) != 1:
                raise TypeError(f"a CRD schema cannot express a union: {any_of!r}")
            merged = {k: v for k, v in node.items() if k != "anyOf"}
            merged.update(_as_schema(options[0]))
            node = merged
        description = node.get("description")
        node, def_name = self.resolve(node)
        owner = def_name or owner
        out: _Schema = {}
        if isinstance(description, str):
            out["description"] = description
        elif isinstance(node.get("description"), str):
            out["description"] = node["description"]
        kind = node.get("type")
        if "enum" in node:
            out["type"] = "string"
            out["enum"] = list(_as_list(node["enum"]))
            return out
        if kind == "array":
            out["type"] = "array"
            out["items"] = self.convert(node.get("items", {}), owner)
            return out
        if kind == "object" or "properties" in node:
            out["type"] = "object"
            properties = _as_schema(node.get("properties", {}))
            if properties:
                out["properties"] = {
                    key: self.field(def_name or "", key, value) for key, value in properties.items()
                }
            required = node.get("required")
            if isinstance(required, list) and required:
                out["required"] = list(required)
            extra = node.get("additionalProperties")
            if extra is True:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(extra, dict):
                out["additionalProperties"] = self.convert(extra, owner)
            return out
        if isinstance(kind, str):
            out["type"] = kind
        else:
            # Any JSON value (a fan-out's withItems entries): the API server keeps it as sent.
            out["x-kubernetes-preserve-unknown-fields"] = True
        return out

    def field(self, model: str, key: str, raw: object) -> _Schema:
        schema = self.convert(raw, model)
        if (model, key) in _DEFAULTS:
            schema["default"] = _DEFAULTS[(model, key)]
        bounds = _BOUNDS.get((model, key))
        if bounds:
            for bound, value in bounds.items():
                if bound == "items" and isinstance(value, Mapping):
                    schema["items"] = dict(value)
                else:
                    schema[bound] = value
        return schema


def _as_list(value: object) -> list[object]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value


def openapi_schema() -> _Schema:
    """The structural OpenAPI v3 schema of a JobFlow object."""
    root = _as_schema(JobFlow.model_json_schema(by_alias=True))
    converter = _Converter(root)
    properties = _as_schema(root["properties"])
    return {
        "type": "object",
        "description": "A DAG of steps; each Job step runs as a batch/v1 Job.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": converter.convert(properties["spec"]),
            "status": converter.convert(properties["status"]),
        },
    }


def crd() -> dict[str, object]:
    """The complete apiextensions.k8s.io/v1 CustomResourceDefinition."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": names.CRD_NAME,
            "labels": {names.LABEL_MANAGED_BY: names.MANAGED_BY},
        },
        "spec": {
            "group": names.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.KIND,
                "listKind": names.LIST_KIND,
                "plural": names.PLURAL,
                "singular": names.SINGULAR,
                "shortNames": list(names.SHORT_NAMES),
                "categories": ["all"],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                        {
                            "name": "Progress",
                            "type": "string",
                            "description": "Finished steps / all steps",
                            "jsonPath": ".status.progress.display",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def crd_yaml() -> str:
    """``crd()`` as YAML, the exact text of ``crds/jobflows.yaml``."""
    header = "# Generated by `zen-flow crd` from jobflow/model.py. Do not edit by hand.\n"
    body = yaml.safe_dump(crd(), sort_keys=False, default_flow_style=False, width=100)
    return header + body
