"""managedFields: who owns which field, and server-side apply on top of it.

Model (upstream's structured-merge-diff, reduced): a field set is a set of leaf paths; maps are
descended (labels and annotations per key); lists are descended by their list type, as the
schema's ``x-kubernetes-list-type`` says (``ListType``): a ``map`` list per item, an item named
``k:{"name":"main"}`` by its key fields (containers by name, container ports by containerPort
and protocol, env by name...), a ``set`` list per value (``v:"x"``); other lists are atomic
leaves. Built-in kinds take their list types from a table of upstream's markers, custom
resources from their CRD schema. Every write with a field manager records ownership: an Update
moves the fields it changed to its manager; an Apply makes its manager own exactly the leaves
of the applied configuration.

Server-side apply: the applied configuration is deep-merged into the live object (maps merge,
map lists merge by key, sets by value, atomic lists replace); fields the manager applied
before but no longer mentions are removed unless another manager owns them too (a map-list
item whose key fields go goes whole); a leaf owned by another manager whose value would change
is a conflict (409, causes ``FieldManagerConflict``) unless ``force``, which moves ownership;
applying a value equal to the live one shares its ownership. Fields owned by
``kubectl-client-side-apply`` on an object carrying the last-applied annotation do not
conflict: that is upstream's client-side to server-side apply upgrade path.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from kubesim.clone import clone
from kubesim.errors import ApiError
from kubesim.timestamps import now_rfc3339

Path = tuple[str, ...]
# a list's type at a path: map-list key fields, "set", or None (atomic)
ListType = Callable[[Path], tuple[str, ...] | str | None]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CSA_MANAGER = "kubectl-client-side-apply"
_META_TRACKED = ("labels", "annotations", "finalizers", "ownerReferences")

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
    return "k:" + json.dumps(picked, sort_keys=True, separators=(",", ":"))


def _set_key(value: Any) -> str:
    return "v:" + json.dumps(value, sort_keys=True, separators=(",", ":"))


def leaves(
    obj: dict[str, Any],
    *,
    has_status: bool,
    subresource: str | None = None,
    list_type: ListType = builtin_list_type,
) -> dict[Path, Any]:
    """Leaf paths of an object that field management tracks, with their values."""
    out: dict[Path, Any] = {}
    for key, value in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            if subresource == "status" or not isinstance(value, dict):
                continue
            for mk in _META_TRACKED:
                if mk in value:
                    _walk(value[mk], ("metadata", mk), out, list_type)
            continue
        if has_status and (key == "status") != (subresource == "status"):
            continue
        _walk(value, (key,), out, list_type)
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
                out[(*path, _set_key(v))] = v
            return
        if isinstance(kind, tuple) and kind:
            elems = [item_key(item, kind) for item in value]
            if all(elems) and len(set(elems)) == len(elems):
                for elem, item in zip(elems, value, strict=True):
                    _walk(item, (*path, str(elem)), out, list_type)
                return
    out[path] = value


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


def _find_item(items: list[Any], elem: str, keys: tuple[str, ...] | None) -> int | None:
    """Index of the list item that ``elem`` (``k:...`` or ``v:...``) names."""
    for i, item in enumerate(items):
        if elem.startswith("v:"):
            if _set_key(item) == elem:
                return i
        elif keys is not None and item_key(item, keys) == elem:
            return i
    return None


def _keys_of(elem: str) -> tuple[str, ...]:
    return tuple(json.loads(elem[2:]))


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for p in path:
        if isinstance(cur, list) and p.startswith(("k:", "v:")):
            i = _find_item(cur, p, _keys_of(p) if p.startswith("k:") else None)
            if i is None:
                return False, None
            cur = cur[i]
            continue
        if not isinstance(cur, dict) or p not in cur:
            return False, None
        cur = cur[p]
    return True, cur


def _delete(obj: dict[str, Any], path: Path) -> None:
    parents: list[tuple[Any, Any]] = []
    cur: Any = obj
    for i, p in enumerate(path[:-1]):
        if isinstance(cur, list) and p.startswith(("k:", "v:")):
            idx = _find_item(cur, p, _keys_of(p) if p.startswith("k:") else None)
            if idx is None:
                return
            if p.startswith("k:") and path[-1] in _keys_of(p) and i == len(path) - 2:
                del cur[idx]  # a key field goes: the whole item goes
                break
            parents.append((cur, idx))
            cur = cur[idx]
            continue
        if not isinstance(cur, dict) or p not in cur:
            return
        parents.append((cur, p))
        cur = cur[p]
    else:
        last = path[-1]
        if isinstance(cur, list) and last.startswith("v:"):
            idx = _find_item(cur, last, None)
            if idx is not None:
                del cur[idx]
        elif isinstance(cur, dict):
            cur.pop(last, None)
    # drop maps and lists the removal left empty (an applier that stops owning the last label)
    for parent, key in reversed(parents):
        child = parent[key]
        if isinstance(child, (dict, list)) and not child:
            del parent[key]
        else:
            break


def _entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    mf = (obj.get("metadata") or {}).get("managedFields")
    return [e for e in mf if isinstance(e, dict)] if isinstance(mf, list) else []


def _entry_key(e: dict[str, Any]) -> tuple[str, str, str]:
    return (str(e.get("manager", "")), str(e.get("operation", "")), str(e.get("subresource", "")))


def _rebuild(entries: list[tuple[dict[str, Any], set[Path]]]) -> list[dict[str, Any]]:
    out = []
    for e, paths in entries:
        if not paths:
            continue
        e = dict(e)
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = encode(paths)
        out.append(e)
    return out


def record_update(
    new: dict[str, Any],
    old: dict[str, Any] | None,
    *,
    manager: str,
    api_version: str,
    has_status: bool,
    subresource: str | None,
    list_type: ListType = builtin_list_type,
) -> None:
    """Record an Update (create, PUT or non-apply patch) by ``manager`` in new.metadata.managedFields."""
    new_leaves = leaves(new, has_status=has_status, subresource=subresource, list_type=list_type)
    old_leaves = (
        leaves(old, has_status=has_status, subresource=subresource, list_type=list_type)
        if old is not None
        else {}
    )
    changed = {p for p, v in new_leaves.items() if p not in old_leaves or old_leaves[p] != v}
    removed = set(old_leaves) - set(new_leaves)
    source = old if old is not None else new
    entries = [(e, decode(e.get("fieldsV1"))) for e in _entries(source)]
    for _e, paths in entries:
        paths -= changed
        paths -= removed
    key = (manager, "Update", subresource or "")
    mine = next((p for e, p in entries if _entry_key(e) == key), None)
    if mine is None:
        entry: dict[str, Any] = {
            "manager": manager,
            "operation": "Update",
            "apiVersion": api_version,
        }
        if subresource:
            entry["subresource"] = subresource
        mine = set()
        entries.append((entry, mine))
    if changed:
        mine |= changed
        for e, p in entries:
            if p is mine:
                e["time"] = now_rfc3339()
    new.setdefault("metadata", {})["managedFields"] = _rebuild(entries)
    if not new["metadata"]["managedFields"]:
        del new["metadata"]["managedFields"]


def _merge(base: Any, patch: Any, path: Path, list_type: ListType) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v, (*path, k), list_type) if k in base else clone(v)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        kind = list_type(path)
        if kind == "set":
            return [*base, *(clone(v) for v in patch if v not in base)]
        if isinstance(kind, tuple) and kind:
            return _merge_map_list(base, patch, path, kind, list_type)
    return clone(patch)


def _merge_map_list(
    base: list[Any], patch: list[Any], path: Path, keys: tuple[str, ...], list_type: ListType
) -> list[Any]:
    """Items merged by key: live items keep their place, new ones follow in applied order."""
    elems = [item_key(item, keys) for item in base]
    out = list(base)
    for item in patch:
        elem = item_key(item, keys)
        if elem is None:
            return clone(patch)  # not a well-formed map list: atomic, as upstream refuses it
        if elem in elems:
            i = elems.index(elem)
            out[i] = _merge(base[i], item, (*path, elem), list_type)
        else:
            out.append(clone(item))
            elems.append(elem)
    return out


def apply(
    cur: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    has_status: bool,
    subresource: str | None,
    list_type: ListType = builtin_list_type,
) -> dict[str, Any]:
    """The object after server-side apply of ``applied`` by ``manager`` (cur None: create)."""
    applied_leaves = leaves(
        applied, has_status=has_status, subresource=subresource, list_type=list_type
    )
    key = (manager, "Apply", subresource or "")
    entries: list[tuple[dict[str, Any], set[Path]]] = []
    if cur is None:
        new = clone(applied)
    else:
        entries = [(dict(e), decode(e.get("fieldsV1"))) for e in _entries(cur)]
        conflicts = _conflicts(cur, applied_leaves, entries, key=key)
        if conflicts and not force:
            raise _conflict_error(conflicts, api_version)
        _release_overridden(cur, applied_leaves, entries, key=key)
        new = _merge_applied(
            clone(cur), applied, applied_leaves, entries, key=key, list_type=list_type
        )
    entries = [(e, p) for e, p in entries if _entry_key(e) != key]
    entry: dict[str, Any] = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": now_rfc3339(),
    }
    if subresource:
        entry["subresource"] = subresource
    entries.append((entry, set(applied_leaves)))
    new.setdefault("metadata", {})["managedFields"] = _rebuild(entries)
    return new


def _conflicts(
    cur: dict[str, Any],
    applied_leaves: dict[Path, Any],
    entries: list[tuple[dict[str, Any], set[Path]]],
    *,
    key: tuple[str, str, str],
) -> dict[str, list[Path]]:
    """Fields the apply would change that another manager owns, by that manager.

    Not conflicts: the applier's own fields, kubectl's last-applied annotation, and the fields
    of kubectl's client-side apply on an object that carries that annotation (the move from
    client-side to server-side apply)."""
    manager = key[0]
    migrating = LAST_APPLIED in ((cur.get("metadata") or {}).get("annotations") or {})
    conflicts: dict[str, list[Path]] = {}
    for path, value in applied_leaves.items():
        present, live = _get(cur, path)
        if not present or live == value:
            continue
        for e, paths in entries:
            if _entry_key(e) == key or path not in paths:
                continue
            other = str(e.get("manager", ""))
            if other == manager or (path[:3] == ("metadata", "annotations", LAST_APPLIED)):
                continue
            if migrating and other == CSA_MANAGER:
                continue
            conflicts.setdefault(other, []).append(path)
    return conflicts


def _release_overridden(
    cur: dict[str, Any],
    applied_leaves: dict[Path, Any],
    entries: list[tuple[dict[str, Any], set[Path]]],
    *,
    key: tuple[str, str, str],
) -> None:
    """Ownership moves away from managers whose values the apply overrides."""
    for e, paths in entries:
        if _entry_key(e) == key:
            continue
        for path in list(paths):
            if path in applied_leaves:
                present, live = _get(cur, path)
                if present and live != applied_leaves[path]:
                    paths.discard(path)


def _merge_applied(
    new: dict[str, Any],
    applied: dict[str, Any],
    applied_leaves: dict[Path, Any],
    entries: list[tuple[dict[str, Any], set[Path]]],
    *,
    key: tuple[str, str, str],
    list_type: ListType,
) -> dict[str, Any]:
    """``new`` without the fields this applier owned and no longer applies (unless another
    manager owns them too), merged with the applied configuration."""
    mine_before: set[Path] = set()
    others: set[Path] = set()
    for e, paths in entries:
        if _entry_key(e) == key:
            mine_before = set(paths)
        else:
            others |= paths
    for path in sorted(mine_before - set(applied_leaves), key=len, reverse=True):
        if path not in others:
            _delete(new, path)
    body = {k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}
    if "metadata" in body:
        m = {k: v for k, v in (body["metadata"] or {}).items() if k in _META_TRACKED}
        body["metadata"] = m
    merged: dict[str, Any] = _merge(new, body, (), list_type)
    return merged


def path_string(path: Path) -> str:
    """A field path as upstream prints it: ``.spec.containers[name="main"].image``."""
    out = []
    for part in path:
        if part.startswith("k:"):
            keys = json.loads(part[2:])
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]")
        elif part.startswith("v:"):
            out.append(f"[={part[2:]}]")
        else:
            out.append("." + part)
    return "".join(out)


def _conflict_error(conflicts: dict[str, list[Path]], api_version: str) -> ApiError:
    causes = []
    total = sum(len(v) for v in conflicts.values())
    parts = []
    for mgr, paths in conflicts.items():
        for p in paths:
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{mgr}" using {api_version}',
                    "field": path_string(p),
                }
            )
        if len(paths) == 1:
            parts.append(f'conflict with "{mgr}" using {api_version}: {path_string(paths[0])}')
        else:
            lines = "\n".join(f"- {path_string(p)}" for p in paths)
            parts.append(f'conflicts with "{mgr}" using {api_version}:\n{lines}')
    noun = "conflict" if total == 1 else "conflicts"
    message = f"Apply failed with {total} {noun}: " + "\n".join(parts)
    return ApiError(409, "Conflict", message, details={"causes": causes})


def list_type_for(rt: Any) -> ListType:
    """The list types of a resource type: the built-in table, or its CRD schema."""
    return builtin_list_type if rt.builtin else schema_list_type(rt.schema)
