"""RFC 6902 JSON Patch (pure), as admission webhooks' replies use it: all six operations on a
deep copy, any problem a ``JSONPatchError``."""

from __future__ import annotations

import copy
from typing import Any


class JSONPatchError(ValueError):
    pass


def _decode_pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise JSONPatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise JSONPatchError(f"invalid array index {token!r}")
    idx = int(token)
    if idx > len(container) or (idx == len(container) and not allow_end):
        raise JSONPatchError(f"array index {idx} out of range")
    return idx


def _parent(doc: Any, tokens: list[str]) -> Any:
    cur = doc
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise JSONPatchError(f"path component {tok!r} not found")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_index(cur, tok, allow_end=False)]
        else:
            raise JSONPatchError(f"cannot traverse into {type(cur).__name__}")
    return cur


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        if tok not in parent:
            raise JSONPatchError(f"path component {tok!r} not found")
        return parent[tok]
    if isinstance(parent, list):
        return parent[_index(parent, tok, allow_end=False)]
    raise JSONPatchError("cannot index a scalar")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        parent[tok] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tok, allow_end=True), value)
    else:
        raise JSONPatchError("cannot add to a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    if not tokens:
        raise JSONPatchError("cannot remove the whole document")
    parent = _parent(doc, tokens)
    tok = tokens[-1]
    if isinstance(parent, dict):
        if tok not in parent:
            raise JSONPatchError(f"path component {tok!r} not found")
        return doc, parent.pop(tok)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, tok, allow_end=False))
    raise JSONPatchError("cannot remove from a scalar")


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 patch to a deep copy of ``doc``; raise JSONPatchError on any problem."""
    if not isinstance(ops, list):
        raise JSONPatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise JSONPatchError(f"invalid operation {op!r}")
        kind = op.get("op")
        tokens = _decode_pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise JSONPatchError(f"operation {kind!r} needs a value")
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, tokens)
        elif kind == "replace":
            doc, _ = _remove(doc, tokens) if tokens else (doc, None)
            doc = _add(doc, tokens, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise JSONPatchError(f"operation {kind!r} needs 'from'")
            src = _decode_pointer(op["from"])
            if kind == "move":
                if tokens[: len(src)] == src and len(tokens) > len(src):
                    raise JSONPatchError("cannot move a value into one of its children")
                doc, value = _remove(doc, src)
            else:
                value = copy.deepcopy(_get(doc, src))
            doc = _add(doc, tokens, value)
        elif kind == "test":
            if _get(doc, tokens) != op["value"]:
                raise JSONPatchError(f"test operation failed at {op['path']!r}")
        else:
            raise JSONPatchError(f"unknown operation {kind!r}")
    return doc
