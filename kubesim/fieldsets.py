"""Field sets: which leaves of an object field management tracks, and their FieldsV1 form.

A field set is a set of leaf paths (``Path``); maps are descended (labels and annotations per
key), lists by their list type (``ListType``: the schema's ``x-kubernetes-list-type``): a
``map`` list per item, named ``k:{"name":"main"}`` by its key fields, a ``set`` list per value
(``v:"x"``); other lists are atomic leaves. Built-in kinds take their list types from a table
of upstream's markers (``builtin_list_type``), custom resources from their CRD schema
(``schema_list_type``). ``encode``/``decode`` convert a set to and from FieldsV1;
``fields_of`` is ``encode(leaves(obj))`` in one walk, ``changes`` the leaves an update changed
or removed, skipping what both objects share. ``kubesim.managed`` builds managedFields and
server-side apply on these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import orjson

Path = tuple[str, ...]
# a list's type at a path: map-list key fields, "set", or None (atomic)
ListType = Callable[[Path], tuple[str, ...] | str | None]
META_TRACKED = ("labels", "annotations", "finalizers", "ownerReferences")

# upstream's x-kubernetes-list-type/-map-keys of the built-in list fields kubesim serves
_BUILTIN_MAP_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ownerReferences": ("uid",),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "containerStatuses": ("name",),
    "initContainerStatuses": ("name",),
    "resourceClaims": ("name",),
    "schedulingGates": ("name",),
    "webhooks": ("name",),
}
_BUILTIN_SETS = frozenset({"finalizers"})
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
# key fields a map-list item may leave out: upstream matches them by their schema default
_KEY_DEFAULTS = {"protocol": "TCP"}


def _names(path: Path) -> list[str]:
    return [p for p in path if not p.startswith(("k:", "v:"))]


def builtin_list_type(path: Path) -> tuple[str, ...] | str | None:
    """The list type of a built-in kind's field, by the field's name (as upstream marks it)."""
    names = _names(path)
    if not names:
        return None
    field = names[-1]
    if field == "ports":
        in_container = any(n in _CONTAINER_LISTS for n in names[:-1])
        return ("containerPort", "protocol") if in_container else ("port", "protocol")
    if field in _BUILTIN_SETS:
        return "set"
    return _BUILTIN_MAP_KEYS.get(field)


def schema_list_type(schema: Mapping[str, Any] | None) -> ListType:
    """The list types a CRD's structural schema declares (metadata's are the built-in ones)."""

    def resolve(path: Path) -> tuple[str, ...] | str | None:
        if path[:1] == ("metadata",):
            return builtin_list_type(path)
        node: Any = schema or {}
        for part in path:
            if not isinstance(node, dict):
                return None
            if part.startswith(("k:", "v:")):
                node = node.get("items") or {}
            elif part in (node.get("properties") or {}):
                node = node["properties"][part]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]
            else:
                return None
        if not isinstance(node, dict):
            return None
        kind = node.get("x-kubernetes-list-type")
        if kind == "map":
            return tuple(str(k) for k in node.get("x-kubernetes-list-map-keys") or ())
        return "set" if kind == "set" else None

    return resolve


def item_key(item: Any, keys: tuple[str, ...]) -> str | None:
    """The path element of a map-list item (``k:{...}``, keys sorted as upstream writes them),
    or None when the item is not an object or lacks a key without a default."""
    if not isinstance(item, dict):
        return None
    picked = {}
    for k in keys:
        if k in item:
            picked[k] = item[k]
        elif k in _KEY_DEFAULTS:
            picked[k] = _KEY_DEFAULTS[k]
        else:
            return None
    return "k:" + key_text(picked)


def set_key(value: Any) -> str:
    return "v:" + key_text(value)


_SCALARS = (str, int, type(None))  # bool is an int


def key_text(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"))``: the JSON of a map-list
    item's keys or a set's value in a path element. orjson writes the same text for strings,
    integers, booleans and null when it is printable ASCII (json.dumps escapes the rest, DEL
    included, and writes floats its own way), at a fraction of the cost: every created object names its containers, owner
    references and ports so."""
    values = value.values() if isinstance(value, dict) else (value,)
    if all(isinstance(v, _SCALARS) for v in values):
        try:
            text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, a non-str key
            text = b""
        if text and text.isascii() and b"\x7f" not in text:  # json.dumps escapes DEL too
            return text.decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _tracked(obj: dict[str, Any], *, has_status: bool, subresource: str | None) -> dict[Path, Any]:
    """The parts of an object field management tracks, by path: its top-level fields but
    apiVersion and kind (the status, or everything but it, per subresource), and metadata's
    labels, annotations, finalizers and owner references (not through ``status``)."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            if subresource == "status" or not isinstance(value, dict):
                continue
            for mk in META_TRACKED:
                if mk in value:
                    out[("metadata", mk)] = value[mk]
            continue
        if has_status and (key == "status") != (subresource == "status"):
            continue
        out[(key,)] = value
    return out


def leaves(
    obj: dict[str, Any],
    *,
    has_status: bool,
    subresource: str | None = None,
    list_type: ListType = builtin_list_type,
) -> dict[Path, Any]:
    """Leaf paths of an object that field management tracks, with their values."""
    out: dict[Path, Any] = {}
    for path, value in _tracked(obj, has_status=has_status, subresource=subresource).items():
        _walk(value, path, out, list_type)
    return out


def _walk(value: Any, path: Path, out: dict[Path, Any], list_type: ListType) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, (*path, str(k)), out, list_type)
        return
    if isinstance(value, list) and value:
        kind = list_type(path)
        if kind == "set" and all(not isinstance(v, (dict, list)) for v in value):
            for v in value:
                out[(*path, set_key(v))] = v
            return
        if isinstance(kind, tuple) and kind:
            elems = [item_key(item, kind) for item in value]
            if all(elems) and len(set(elems)) == len(elems):
                for elem, item in zip(elems, value, strict=True):
                    _walk(item, (*path, str(elem)), out, list_type)
                return
    out[path] = value


_MISSING: Any = object()


def changes(
    new: dict[str, Any],
    old: dict[str, Any],
    *,
    has_status: bool,
    subresource: str | None = None,
    list_type: ListType = builtin_list_type,
) -> tuple[set[Path], set[Path]]:
    """(changed, removed): the leaves ``new`` sets anew or to another value than ``old`` has,
    and the leaves of ``old`` that ``new`` lacks; the same as comparing ``leaves`` of both,
    but subtrees equal in both (most of an update) are skipped whole."""
    changed: set[Path] = set()
    removed: set[Path] = set()
    a = _tracked(new, has_status=has_status, subresource=subresource)
    b = _tracked(old, has_status=has_status, subresource=subresource)
    for path in a.keys() | b.keys():
        _diff(a.get(path, _MISSING), b.get(path, _MISSING), path, (changed, removed), list_type)
    return changed, removed


def _diff(
    new: Any, old: Any, path: Path, out: tuple[set[Path], set[Path]], list_type: ListType
) -> None:
    if new is old:
        return
    changed, removed = out
    if new is _MISSING or old is _MISSING or new != old:
        if isinstance(new, dict) and new and isinstance(old, dict) and old:
            for k in new.keys() | old.keys():
                _diff(new.get(k, _MISSING), old.get(k, _MISSING), (*path, str(k)), out, list_type)
            return
        nl: dict[Path, Any] = {}
        ol: dict[Path, Any] = {}
        if new is not _MISSING:
            _walk(new, path, nl, list_type)
        if old is not _MISSING:
            _walk(old, path, ol, list_type)
        changed.update(p for p, v in nl.items() if p not in ol or ol[p] != v)
        removed.update(ol.keys() - nl.keys())


def fields_of(
    obj: dict[str, Any],
    *,
    has_status: bool,
    subresource: str | None = None,
    list_type: ListType = builtin_list_type,
) -> dict[str, Any]:
    """``encode(leaves(obj))`` (the same keys in the same order) in one walk of ``obj``: the
    field set a create's manager owns."""
    root: dict[str, Any] = {}
    tracked = _tracked(obj, has_status=has_status, subresource=subresource)
    for path in sorted(tracked):
        node = root
        for part in path:
            node = _child(node, part)
        _fill(tracked[path], path, node, list_type)
    return root


def _child(node: dict[str, Any], part: str) -> dict[str, Any]:
    """The node of ``part`` below ``node``, named as ``encode`` names it."""
    child: dict[str, Any] = node.setdefault(
        part if part.startswith(("k:", "v:")) else "f:" + part, {}
    )
    return child


def _fill(value: Any, path: Path, node: dict[str, Any], list_type: ListType) -> None:
    """The leaves of ``value`` (at ``path``, whose node is ``node``) added below ``node``,
    children in sorted order: ``_walk`` and ``encode`` at once (a ``k:`` node that paths go
    on below gets its ``.`` first)."""
    if isinstance(value, dict) and value:
        if path[-1].startswith("k:"):
            node.setdefault(".", {})
        for name, v in sorted((str(k), v) for k, v in value.items()):
            child = _child(node, name)
            if isinstance(v, (dict, list)) and v:  # else a leaf: its node is all there is
                _fill(v, (*path, name), child, list_type)
        return
    if isinstance(value, list) and value:
        kind = list_type(path)
        if kind == "set" and all(not isinstance(v, (dict, list)) for v in value):
            if path[-1].startswith("k:"):
                node.setdefault(".", {})
            for elem in sorted({set_key(v) for v in value}):
                node.setdefault(elem, {})
            return
        if isinstance(kind, tuple) and kind:
            named = [(e, item) for item in value if (e := item_key(item, kind)) is not None]
            if len(named) == len(value) and len({e for e, _ in named}) == len(named):
                if path[-1].startswith("k:"):
                    node.setdefault(".", {})
                for elem, item in sorted(named, key=_first):
                    _fill(item, (*path, elem), _child(node, elem), list_type)
                return


def _first(pair: tuple[str, Any]) -> str:
    return pair[0]


def encode(paths: set[Path] | list[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        node = root
        for i, part in enumerate(p):
            is_elem = part.startswith(("k:", "v:"))
            node = node.setdefault(part if is_elem else f"f:{part}", {})
            if part.startswith("k:") and i < len(p) - 1:
                node.setdefault(".", {})  # upstream marks the item itself
    return root


def decode(fields: dict[str, Any] | None) -> set[Path]:
    out: set[Path] = set()

    def rec(node: dict[str, Any], prefix: Path) -> None:
        children = [k for k in node if k.startswith(("f:", "k:", "v:"))]
        if not children and prefix:
            out.add(prefix)
        for k in children:
            if isinstance(node[k], dict):
                rec(node[k], (*prefix, k[2:] if k.startswith("f:") else k))

    if isinstance(fields, dict):
        rec(fields, ())
    return out
