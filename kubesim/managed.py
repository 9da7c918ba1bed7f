"""managedFields: who owns which field, and server-side apply on top of it.

Model (the "minimal acceptable implementation" of the reference, §7.4): a field set is a set of
leaf paths; maps are descended (labels and annotations per key), lists are atomic leaves. Every
write with a field manager records ownership: an Update moves the fields it changed to its
manager; an Apply makes its manager own exactly the leaves of the applied configuration.

Server-side apply: the applied configuration is deep-merged into the live object (maps merge,
lists replace); fields the manager applied before but no longer mentions are removed unless
another manager owns them too; a leaf owned by another manager whose value would change is a
conflict (409, causes ``FieldManagerConflict``) unless ``force``, which moves ownership. Fields
owned by ``kubectl-client-side-apply`` on an object carrying the last-applied annotation do not
conflict: that is upstream's client-side to server-side apply upgrade path.
"""

from __future__ import annotations

from typing import Any

from kubesim.clone import clone
from kubesim.errors import ApiError
from kubesim.timestamps import now_rfc3339

Path = tuple[str, ...]
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
CSA_MANAGER = "kubectl-client-side-apply"
_META_TRACKED = ("labels", "annotations", "finalizers", "ownerReferences")


def leaves(
    obj: dict[str, Any], *, has_status: bool, subresource: str | None = None
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
                    _walk(value[mk], ("metadata", mk), out)
            continue
        if has_status and (key == "status") != (subresource == "status"):
            continue
        _walk(value, (key,), out)
    return out


def _walk(value: Any, path: Path, out: dict[Path, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _walk(v, (*path, str(k)), out)
    else:
        out[path] = value


def encode(paths: set[Path] | list[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for p in sorted(paths):
        node = root
        for part in p:
            node = node.setdefault(f"f:{part}", {})
    return root


def decode(fields: dict[str, Any] | None) -> set[Path]:
    out: set[Path] = set()

    def rec(node: dict[str, Any], prefix: Path) -> None:
        children = [k for k in node if k.startswith("f:")]
        if not children and prefix:
            out.add(prefix)
        for k in children:
            if isinstance(node[k], dict):
                rec(node[k], (*prefix, k[2:]))

    if isinstance(fields, dict):
        rec(fields, ())
    return out


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return False, None
        cur = cur[p]
    return True, cur


def _delete(obj: dict[str, Any], path: Path) -> None:
    parents: list[tuple[dict[str, Any], str]] = []
    cur: Any = obj
    for p in path[:-1]:
        if not isinstance(cur, dict) or p not in cur:
            return
        parents.append((cur, p))
        cur = cur[p]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # drop maps the removal left empty (an applier that stops owning the last label)
    for parent, key in reversed(parents):
        if isinstance(parent.get(key), dict) and not parent[key]:
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
) -> None:
    """Record an Update (create, PUT or non-apply patch) by ``manager`` in new.metadata.managedFields."""
    new_leaves = leaves(new, has_status=has_status, subresource=subresource)
    old_leaves = (
        leaves(old, has_status=has_status, subresource=subresource) if old is not None else {}
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


def _merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base.get(k), v) if k in base else clone(v)
        return out
    return clone(patch)


def apply(
    cur: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    api_version: str,
    has_status: bool,
    subresource: str | None,
) -> dict[str, Any]:
    """The object after server-side apply of ``applied`` by ``manager`` (cur None: create)."""
    applied_leaves = leaves(applied, has_status=has_status, subresource=subresource)
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
        new = _merge_applied(clone(cur), applied, applied_leaves, entries, key=key)
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
    merged: dict[str, Any] = _merge(new, body)
    return merged


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
                    "field": "." + ".".join(p),
                }
            )
        if len(paths) == 1:
            parts.append(f'conflict with "{mgr}" using {api_version}: .{".".join(paths[0])}')
        else:
            lines = "\n".join(f"- .{'.'.join(p)}" for p in paths)
            parts.append(f'conflicts with "{mgr}" using {api_version}:\n{lines}')
    noun = "conflict" if total == 1 else "conflicts"
    message = f"Apply failed with {total} {noun}: " + "\n".join(parts)
    return ApiError(409, "Conflict", message, details={"causes": causes})
