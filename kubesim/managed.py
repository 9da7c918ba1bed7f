"""managedFields: who owns which field, and server-side apply on top of it.

Model (upstream's structured-merge-diff, reduced): a field set is a set of leaf paths
(``kubesim.fieldsets``: maps descended, lists by their list type, atomic lists as leaves).
Every write with a field manager records ownership: an Update moves the fields it changed to
its manager; an Apply makes its manager own exactly the leaves of the applied configuration.

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
from typing import Any

from kubesim.clone import clone
from kubesim.errors import ApiError
from kubesim.fieldsets import (
    META_TRACKED,
    ListType,
    Path,
    builtin_list_type,
    changes,
    decode,
    encode,
    fields_of,
    item_key,
    leaves,
    schema_list_type,
    set_key,
)
from kubesim.timestamps import now_rfc3339

__all__ = ["Path", "apply", "decode", "encode", "leaves", "list_type_for", "record_update"]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CSA_MANAGER = "kubectl-client-side-apply"


def _find_item(items: list[Any], elem: str, keys: tuple[str, ...] | None) -> int | None:
    """Index of the list item that ``elem`` (``k:...`` or ``v:...``) names."""
    for i, item in enumerate(items):
        if elem.startswith("v:"):
            if set_key(item) == elem:
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
    """Record an Update (create, PUT or non-apply patch) by ``manager`` in new.metadata.managedFields.

    The fields the write changed (set anew or to another value) move to the manager's entry,
    those it removed leave every entry. Entries that own none of them are kept as they are
    (shared: stored entries are never changed in place), so a write re-encodes only the
    entries it moves fields out of or into."""
    key = (manager, "Update", subresource or "")
    current = _entries(old if old is not None else new)
    if old is None and not current:  # a create: the manager owns every leaf
        fields = fields_of(new, has_status=has_status, subresource=subresource, list_type=list_type)
        out = [_new_entry(key, api_version, fields)] if fields else []
    else:
        if old is None:
            changed = set(
                leaves(new, has_status=has_status, subresource=subresource, list_type=list_type)
            )
            removed: set[Path] = set()
        else:
            changed, removed = changes(
                new, old, has_status=has_status, subresource=subresource, list_type=list_type
            )
        out = _moved(current, key, api_version, changed, removed)
    meta = new.setdefault("metadata", {})
    if out:
        meta["managedFields"] = out
    else:
        meta.pop("managedFields", None)


def _new_entry(
    key: tuple[str, str, str], api_version: str, fields: dict[str, Any]
) -> dict[str, Any]:
    entry: dict[str, Any] = {"manager": key[0], "operation": key[1], "apiVersion": api_version}
    if key[2]:
        entry["subresource"] = key[2]
    entry["time"] = now_rfc3339()
    entry["fieldsType"] = "FieldsV1"
    entry["fieldsV1"] = fields
    return entry


def _moved(
    current: list[dict[str, Any]],
    key: tuple[str, str, str],
    api_version: str,
    changed: set[Path],
    removed: set[Path],
) -> list[dict[str, Any]]:
    """The entries after an Update by ``key``'s manager (see ``record_update``)."""
    touched = changed | removed
    out = []
    mine_seen = False
    for e in current:
        mine = not mine_seen and _entry_key(e) == key
        mine_seen = mine_seen or mine
        if not (mine and changed) and _untouched(e, touched):
            out.append(e)
            continue
        paths = decode(e.get("fieldsV1")) - touched
        if mine:
            paths |= changed
        if not paths:
            continue
        e = dict(e)
        if mine and changed:
            e["time"] = now_rfc3339()
        e["fieldsType"] = "FieldsV1"
        e["fieldsV1"] = encode(paths)
        out.append(e)
    if not mine_seen and changed:
        out.append(_new_entry(key, api_version, encode(changed)))
    return out


def _untouched(entry: dict[str, Any], touched: set[Path]) -> bool:
    """Whether an entry is kept as it is: FieldsV1, and owning none of the ``touched`` leaves."""
    fields = entry.get("fieldsV1")
    if entry.get("fieldsType") != "FieldsV1" or not isinstance(fields, dict) or not fields:
        return False
    return not any(_owns(fields, p) for p in touched)


def _owns(fields: dict[str, Any], path: Path) -> bool:
    """Whether ``path`` is one of the leaves of an encoded field set (as ``decode`` reads it)."""
    node: Any = fields
    for part in path:
        node = node.get(part if part.startswith(("k:", "v:")) else "f:" + part)
        if not isinstance(node, dict):
            return False
    return not any(k.startswith(("f:", "k:", "v:")) for k in node)


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
        m = {k: v for k, v in (body["metadata"] or {}).items() if k in META_TRACKED}
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
