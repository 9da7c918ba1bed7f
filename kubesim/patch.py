"""Patch formats: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and strategic merge patch.

Strategic merge patch is implemented from a table of the list fields of the built-in kinds that
kubesim serves (merge key per field name, e.g. ``containers`` by ``name``, ``ports`` by
``containerPort`` or ``port``) instead of full Go struct tags. It honours the directives kubectl
sends: ``$patch: replace|delete|merge``, ``$retainKeys``, ``$deleteFromPrimitiveList/<f>`` and
``$setElementOrder/<f>`` (used to order merged lists). Lists without a known merge key are
replaced, as for atomic lists upstream. Custom resources never get here (415 upstream).
"""

from __future__ import annotations

from typing import Any

from kubesim.clone import clone
from kubesim.errors import ApiError

# list field name -> merge key (None: a set of primitives merged by value)
MERGE_KEYS: dict[str, str | None] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "finalizers": None,
    "conditions": "type",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "containerStatuses": "name",
    "initContainerStatuses": "name",
    "secrets": "name",
    "webhooks": "name",
}
# "ports" is keyed by containerPort in containers and by port in services
PORT_KEYS = ("containerPort", "port")


def _bad_json_patch(message: str) -> ApiError:
    return ApiError(422, "Invalid", message, details={})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parse_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _bad_json_patch(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _resolve(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for t in tokens:
        if isinstance(cur, dict):
            if t not in cur:
                raise _bad_json_patch(
                    f"the server rejected our request due to an error in our request: "
                    f"jsonpatch: path {path!r} not found"
                )
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError) as exc:
                raise _bad_json_patch(
                    f"jsonpatch: path {path!r}: index {t!r} out of range"
                ) from exc
        else:
            raise _bad_json_patch(f"jsonpatch: path {path!r} not found")
    return cur


def _add(doc: Any, tokens: list[str], value: Any, path: str, *, replace: bool = False) -> Any:
    if not tokens:
        return clone(value)
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _bad_json_patch(
                f"jsonpatch replace operation does not apply: doc is missing key: {path}"
            )
        parent[last] = clone(value)
    elif isinstance(parent, list):
        if last == "-":
            if replace:
                raise _bad_json_patch(f"jsonpatch: invalid index '-' for replace at {path}")
            parent.append(clone(value))
        else:
            try:
                i = int(last)
            except ValueError as exc:
                raise _bad_json_patch(f"jsonpatch: invalid array index {last!r}") from exc
            if replace:
                if not 0 <= i < len(parent):
                    raise _bad_json_patch(
                        f"jsonpatch replace operation does not apply: index {i} out of range"
                    )
                parent[i] = clone(value)
            else:
                if not 0 <= i <= len(parent):
                    raise _bad_json_patch(
                        f"jsonpatch add operation does not apply: index {i} out of range"
                    )
                parent.insert(i, clone(value))
    else:
        raise _bad_json_patch(f"jsonpatch: path {path!r} not found")
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise _bad_json_patch("jsonpatch: cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _bad_json_patch(
                f"jsonpatch remove operation does not apply: doc is missing path: {path}"
            )
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            return parent.pop(int(last))
        except (ValueError, IndexError) as exc:
            raise _bad_json_patch(
                f"jsonpatch remove operation does not apply: index {last!r} out of range"
            ) from exc
    raise _bad_json_patch(f"jsonpatch: path {path!r} not found")


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 on a deep copy of doc; errors are 422 (a failed ``test`` included)."""
    if not isinstance(ops, list):
        raise ApiError(
            400,
            "BadRequest",
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
            details={},
        )
    doc = clone(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise _bad_json_patch("jsonpatch: each operation needs 'op' and 'path'")
        kind, path = op["op"], str(op["path"])
        tokens = _parse_pointer(path)
        if kind == "add":
            doc = _add(doc, tokens, op.get("value"), path)
        elif kind == "remove":
            _remove(doc, tokens, path)
        elif kind == "replace":
            doc = _add(doc, tokens, op.get("value"), path, replace=True)
        elif kind in ("move", "copy"):
            src = str(op.get("from", ""))
            stokens = _parse_pointer(src)
            value = (
                _remove(doc, stokens, src) if kind == "move" else clone(_resolve(doc, stokens, src))
            )
            doc = _add(doc, tokens, value, path)
        elif kind == "test":
            if _resolve(doc, tokens, path) != op.get("value"):
                raise _bad_json_patch(
                    f"the server rejected our request due to an error in our request: "
                    f"testing value {path} failed"
                )
        else:
            raise _bad_json_patch(f"jsonpatch: unexpected operation {kind!r}")
    return doc


def _merge_key_for(field: str, items: list[Any]) -> str | bool | None:
    """The merge key of a list field, None for primitive sets, False for atomic (replace)."""
    if field == "ports":
        for k in PORT_KEYS:
            if any(isinstance(i, dict) and k in i for i in items):
                return k
        return False
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    return False


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch of built-in objects (see module docstring)."""
    if not isinstance(patch, dict):
        return clone(patch)
    if patch.get("$patch") == "replace":
        return {k: clone(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys"):
            continue
        if k.startswith("$setElementOrder/"):
            orders[k.split("/", 1)[1]] = v if isinstance(v, list) else []
        elif k.startswith("$deleteFromPrimitiveList/"):
            field = k.split("/", 1)[1]
            drop = v if isinstance(v, list) else []
            if isinstance(out.get(field), list):
                out[field] = [x for x in out[field] if x not in drop]
        else:
            _merge_field(out, k, v)
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = _order(field, out[field], order)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_field(out: dict[str, Any], k: str, v: Any) -> None:
    """Patch field ``k`` of ``out`` with ``v``: null deletes, lists and maps merge, scalars replace."""
    if v is None:
        out.pop(k, None)
        return
    cur = out.get(k)
    if isinstance(v, list):
        out[k] = _merge_list(k, cur if isinstance(cur, list) else [], v)
    elif isinstance(v, dict):
        merged = strategic_merge(cur, v)
        if merged is None:
            out.pop(k, None)
        else:
            out[k] = merged
    else:
        out[k] = clone(v)


def _merge_list(field: str, cur: list[Any], patch: list[Any]) -> list[Any]:
    key = _merge_key_for(field, cur + patch)
    if key is False:
        return [clone(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    if key is None:
        out = list(cur)
        for x in patch:
            if x not in out:
                out.append(clone(x))
        return out
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [clone(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    out = [clone(x) for x in cur]
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            out.append(clone(item))
            continue
        idx = next(
            (i for i, x in enumerate(out) if isinstance(x, dict) and x.get(key) == item[key]), None
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item))
        else:
            out[idx] = strategic_merge(out[idx], item)
    return out


def _order(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = _merge_key_for(field, items + order)
    if key is False:
        return items

    def ident(x: Any) -> Any:
        return x.get(key) if isinstance(x, dict) and isinstance(key, str) else x

    wanted = [ident(o) for o in order]
    ranked = sorted(
        range(len(items)),
        key=lambda i: (
            wanted.index(ident(items[i])) if ident(items[i]) in wanted else len(wanted) + i
        ),
    )
    return [items[i] for i in ranked]
