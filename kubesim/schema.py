"""Structural OpenAPI v3 schemas of CRDs: pruning, defaulting and validation.

Order, as upstream applies it to a custom resource: prune unknown fields (reporting them so the
``fieldValidation`` mode can reject (Strict), warn (Warn) or ignore them), apply ``default``
values, then validate. Validation collects *every* problem as a ``Cause`` with a field path
(``spec.steps[0].image``) so one 422 lists them all, in the wording kubectl renders.

Supported: type (incl. ``x-kubernetes-int-or-string``), nullable, required, enum, minimum /
maximum (+ exclusive), minLength / maxLength, pattern, minItems / maxItems, uniqueItems,
properties, additionalProperties, items, ``x-kubernetes-preserve-unknown-fields``,
``x-kubernetes-embedded-resource``, ``x-kubernetes-list-type: set|map`` uniqueness. Not supported
(accepted and ignored): ``x-kubernetes-validations`` (CEL), ``format``, oneOf/anyOf/allOf/not.
"""

from __future__ import annotations

import re
from typing import Any

from kubesim import errors
from kubesim.clone import clone
from kubesim.errors import Cause

_ROOT_KEEP = ("apiVersion", "kind", "metadata")
MISSING: Any = object()  # "no old value" (None is a value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def prune(
    schema: dict[str, Any], obj: Any, path: str = "", *, root: bool = True, old: Any = MISSING
) -> list[str]:
    """Remove fields the schema does not know (in place); return their paths.

    ``old``: the stored object (already pruned); a subtree equal to its counterpart there is
    skipped, which keeps status writes from re-walking a large unchanged spec.
    """
    unknown: list[str] = []
    if old is not MISSING and obj == old:
        return unknown
    if isinstance(obj, dict):
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(obj.keys()):
            sub_path = _join(path, key)
            if (root or embedded) and key in _ROOT_KEEP:
                if key == "metadata" and isinstance(obj[key], dict) and embedded and not root:
                    _prune_embedded_metadata(obj[key])
                continue
            value = obj[key]
            if value is None and not _nullable(schema, key):
                del obj[key]
                continue
            if isinstance(props, dict) and key in props:
                unknown += prune(props[key], value, sub_path, root=False, old=_child(old, key))
            elif isinstance(addl, dict):
                unknown += prune(addl, value, sub_path, root=False, old=_child(old, key))
            elif addl is True or preserve:
                continue
            elif props is None and addl is None and not preserve:
                # a schema without properties and without preserve prunes everything
                unknown.append(sub_path)
                del obj[key]
            else:
                unknown.append(sub_path)
                del obj[key]
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(obj):
                unknown += prune(items, item, f"{path}[{i}]", root=False, old=_item(old, i))
    return unknown


def _prune_embedded_metadata(meta: dict[str, Any]) -> None:
    allowed = {"name", "namespace", "labels", "annotations", "generateName", "finalizers"}
    for key in list(meta):
        if key not in allowed:
            del meta[key]


def _nullable(schema: dict[str, Any], key: str) -> bool:
    props = schema.get("properties")
    sub = props.get(key) if isinstance(props, dict) else schema.get("additionalProperties")
    if isinstance(sub, dict):
        return bool(sub.get("nullable"))
    return True


def apply_defaults(schema: dict[str, Any], obj: Any, *, old: Any = MISSING) -> None:
    """Fill in ``default`` values of missing properties (in place), recursively (subtrees equal
    to the already defaulted ``old`` are skipped)."""
    if old is not MISSING and obj == old:
        return
    if isinstance(obj, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if key not in obj and "default" in sub:
                    obj[key] = clone(sub["default"])
                if key in obj:
                    apply_defaults(sub, obj[key], old=_child(old, key))
        addl = schema.get("additionalProperties")
        if isinstance(addl, dict):
            for key, value in obj.items():
                if not (isinstance(props, dict) and key in props):
                    apply_defaults(addl, value, old=_child(old, key))
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(obj):
                apply_defaults(items, item, old=_item(old, i))


def validate(
    schema: dict[str, Any], obj: Any, path: str = "", *, root: bool = True, old: Any = MISSING
) -> list[Cause]:
    """Every violation of ``schema`` by ``obj`` as causes (empty list: valid).

    With ``old`` (an update), subtrees equal to the stored object's are not validated again:
    upstream's CRD validation ratcheting, which also lets objects stored before a stricter
    schema keep their unchanged fields.
    """
    causes: list[Cause] = []
    _validate(schema, obj, path, causes, root=root, old=old)
    return causes


def _child(old: Any, key: str) -> Any:
    return old.get(key, MISSING) if isinstance(old, dict) else MISSING


def _item(old: Any, i: int) -> Any:
    return old[i] if isinstance(old, list) and i < len(old) else MISSING


def _validate(
    schema: dict[str, Any],
    value: Any,
    path: str,
    causes: list[Cause],
    *,
    root: bool = False,
    old: Any = MISSING,
) -> None:
    if old is not MISSING and value == old:
        return
    if value is None:
        if schema.get("nullable") or not schema:
            return
        if schema.get("type"):
            causes.append(
                errors.type_invalid(
                    path, "null", f'{path} in body must be of type {schema["type"]}: "null"'
                )
            )
        return
    typ = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, (int, str)) and not isinstance(value, bool)):
            causes.append(
                errors.type_invalid(
                    path,
                    _type_name(value),
                    f'{path} in body must be of type integer or string: "{_type_name(value)}"',
                )
            )
            return
    elif typ and not _type_ok(typ, value):
        tn = _type_name(value)
        causes.append(
            errors.type_invalid(path, tn, f'{path} in body must be of type {typ}: "{tn}"')
        )
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        causes.append(errors.not_supported(path, value, enum))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(schema, value, path, causes)
    if isinstance(value, str):
        _check_string(schema, value, path, causes)
    if isinstance(value, list):
        _check_array(schema, value, path, causes, old)
    if isinstance(value, dict):
        _check_object(schema, value, path, causes, root=root, old=old)


def _type_ok(typ: str, value: Any) -> bool:
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "boolean":
        return isinstance(value, bool)
    if typ == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


def _check_number(schema: dict[str, Any], value: float, path: str, causes: list[Cause]) -> None:
    lo = schema.get("minimum")
    if lo is not None:
        if schema.get("exclusiveMinimum") and value <= lo:
            causes.append(
                errors.invalid_value(path, value, f"{path} in body should be greater than {lo}")
            )
        elif value < lo:
            causes.append(
                errors.invalid_value(
                    path, value, f"{path} in body should be greater than or equal to {lo}"
                )
            )
    hi = schema.get("maximum")
    if hi is not None:
        if schema.get("exclusiveMaximum") and value >= hi:
            causes.append(
                errors.invalid_value(path, value, f"{path} in body should be less than {hi}")
            )
        elif value > hi:
            causes.append(
                errors.invalid_value(
                    path, value, f"{path} in body should be less than or equal to {hi}"
                )
            )
    mult = schema.get("multipleOf")
    if mult and (value / mult) != int(value / mult):
        causes.append(
            errors.invalid_value(path, value, f"{path} in body should be a multiple of {mult}")
        )


def _check_string(schema: dict[str, Any], value: str, path: str, causes: list[Cause]) -> None:
    min_len = schema.get("minLength")
    if min_len is not None and len(value) < min_len:
        causes.append(
            errors.invalid_value(
                path, value, f"{path} in body should be at least {min_len} chars long"
            )
        )
    max_len = schema.get("maxLength")
    if max_len is not None and len(value) > max_len:
        causes.append(
            Cause("FieldValueTooLong", path, f"Too long: may not be more than {max_len} bytes")
        )
    pattern = schema.get("pattern")
    if pattern:
        try:
            ok = re.search(pattern, value) is not None
        except re.error:
            ok = True  # an ECMA pattern Python cannot compile is not the user's fault here
        if not ok:
            causes.append(
                errors.invalid_value(path, value, f"{path} in body should match '{pattern}'")
            )


def _check_size(
    schema: dict[str, Any],
    size: int,
    path: str,
    causes: list[Cause],
    *,
    keys: tuple[str, str],
    noun: str,
) -> None:
    """minItems/maxItems or minProperties/maxProperties (upstream says "items" in both
    too-many messages)."""
    lo, hi = schema.get(keys[0]), schema.get(keys[1])
    if lo is not None and size < lo:
        causes.append(
            errors.invalid_value(path, size, f"{path} in body should have at least {lo} {noun}")
        )
    if hi is not None and size > hi:
        causes.append(
            Cause("FieldValueTooMany", path, f"Too many: {size}: must have at most {hi} items")
        )


def _check_array(
    schema: dict[str, Any], value: list[Any], path: str, causes: list[Cause], old: Any = MISSING
) -> None:
    _check_size(schema, len(value), path, causes, keys=("minItems", "maxItems"), noun="items")
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                causes.append(errors.duplicate(f"{path}[{i}]", item))
            seen.append(item)
    if list_type == "map":
        keys = tuple(schema.get("x-kubernetes-list-map-keys") or ())
        seen_keys: set[tuple[str, ...]] = set()
        for i, item in enumerate(value):
            if isinstance(item, dict) and keys:
                k = tuple(repr(item.get(key)) for key in keys)
                if k in seen_keys:
                    causes.append(
                        errors.duplicate(f"{path}[{i}]", {key: item.get(key) for key in keys})
                    )
                seen_keys.add(k)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(items, item, f"{path}[{i}]", causes, old=_item(old, i))


def _check_object(
    schema: dict[str, Any],
    value: dict[str, Any],
    path: str,
    causes: list[Cause],
    *,
    root: bool,
    old: Any = MISSING,
) -> None:
    for req in schema.get("required") or ():
        if req not in value:
            causes.append(errors.required(_join(path, req)))
    props = schema.get("properties")
    addl = schema.get("additionalProperties")
    for key, sub_value in value.items():
        if root and key in _ROOT_KEEP:
            continue
        if isinstance(props, dict) and isinstance(props.get(key), dict):
            _validate(props[key], sub_value, _join(path, key), causes, old=_child(old, key))
        elif isinstance(addl, dict):
            _validate(addl, sub_value, _join(path, key), causes, old=_child(old, key))
    _check_size(
        schema, len(value), path, causes, keys=("minProperties", "maxProperties"), noun="properties"
    )
