"""Server-side printing: ``meta.k8s.io/v1`` Table conversion for get, list and watch.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns
it gets; without Tables it falls back to NAME/AGE. Custom resources get Name plus the version's
``additionalPrinterColumns`` (JSONPath evaluated here; ``date`` columns become human durations
such as ``5m`` or ``2d3h``, as the real server does); without printer columns just Name and Age.
Built-in kinds get the columns kubectl users know (pods READY/STATUS/RESTARTS, jobs
STATUS/COMPLETIONS/DURATION...). Rows carry the object as PartialObjectMetadata (the default
``includeObject=Metadata``), the full object (``Object``) or nothing (``None``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any, TypedDict

from kubesim.resources import ResourceType


class ColumnDefinition(TypedDict):
    """meta.k8s.io/v1 TableColumnDefinition."""

    name: str
    type: str
    format: str
    description: str
    priority: int


Getter = Callable[[dict[str, Any]], Any]  # one cell of a row, from the object

NAME_COLUMN: ColumnDefinition = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN: ColumnDefinition = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "CreationTimestamp is a timestamp representing the server time when this object was "
    "created.",
    "priority": 0,
}


def parse_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d{h % 24}h" if h % 24 else f"{h // 24}d"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    y = h // (24 * 365)
    if y < 8:
        return f"{y}y{(h // 24) % 365}d"
    return f"{y}y"


def age(value: object, now: dt.datetime | None = None) -> str | None:
    t = parse_time(value)
    if t is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    return human_duration((now - t).total_seconds())


_TOKEN = re.compile(r"\.([A-Za-z0-9_\-$/]+)|\[(\*|-?\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """A JSONPath subset for printer columns: ``.a.b``, ``[0]``, ``[*]``, ``['dotted.key']``."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    if expr and not expr.startswith((".", "[")):
        expr = "." + expr
    results = [obj]
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            return []
        pos = m.end()
        name, index, q1, q2 = m.groups()
        key = name if name is not None else (q1 if q1 is not None else q2)
        nxt: list[Any] = []
        for r in results:
            if key is not None:
                if isinstance(r, dict) and key in r:
                    nxt.append(r[key])
            elif index == "*":
                if isinstance(r, list):
                    nxt.extend(r)
                elif isinstance(r, dict):
                    nxt.extend(r.values())
            elif isinstance(r, list):
                i = int(index)
                if -len(r) <= i < len(r):
                    nxt.append(r[i])
        results = nxt
    return results


def _format_cell(values: list[Any], typ: str) -> Any:
    if not values:
        return None
    if typ == "date":
        return age(values[0])
    if typ in ("integer", "number", "boolean"):
        v = values[0]
        return v if isinstance(v, (int, float, bool)) else None
    parts = []
    for v in values:
        if isinstance(v, (dict, list)):
            import json

            parts.append(json.dumps(v, separators=(",", ":")))
        elif isinstance(v, bool):
            parts.append("true" if v else "false")
        else:
            parts.append(str(v))
    return ",".join(parts)


# ---------------------------------------------------------------- built-in columns

Column = tuple[ColumnDefinition, Getter]


def col(
    name: str, typ: str = "string", priority: int = 0, description: str = ""
) -> ColumnDefinition:
    return {
        "name": name,
        "type": typ,
        "format": "",
        "description": description or name,
        "priority": priority,
    }


def field(obj: dict[str, Any], *path: str, default: Any = None) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(p)
    return default if cur is None else cur


def created(obj: dict[str, Any]) -> str | None:
    return age(field(obj, "metadata", "creationTimestamp"))


def selector_text(sel: object) -> str:
    if isinstance(sel, dict):
        ml = sel.get("matchLabels") if "matchLabels" in sel or "matchExpressions" in sel else sel
        if isinstance(ml, dict):
            return ",".join(f"{k}={v}" for k, v in ml.items()) or "<none>"
    return "<none>"


def _printer_column(path: str, typ: str) -> Getter:
    return lambda o: _format_cell(jsonpath(o, path), typ)


def _aged(fn: Getter) -> Getter:
    return lambda o: age(fn(o))


def name_cell(obj: dict[str, Any]) -> Any:
    return field(obj, "metadata", "name")


def builtin_columns(columns: Iterable[Column]) -> tuple[list[ColumnDefinition], list[Getter]]:
    """A built-in kind's table: Name, its columns (date columns as ages), and Age before the
    wide (priority 1) columns unless one of its columns is a date."""
    defs: list[ColumnDefinition] = [NAME_COLUMN.copy()]
    getters: list[Getter] = [name_cell]
    cols = list(columns)
    has_age = any(c[0]["type"] == "date" for c in cols)
    for d, fn in cols:
        defs.append(d)
        getters.append(_aged(fn) if d["type"] == "date" else fn)
    if not has_age:
        # Age sits before the wide (priority 1) columns, as kubectl shows it
        idx = next((i for i, d in enumerate(defs) if d["priority"] > 0), len(defs))
        defs.insert(idx, AGE_COLUMN.copy())
        getters.insert(idx, created)
    return defs, getters


def custom_columns(rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
    """A custom resource's table: Name and the version's additionalPrinterColumns (Age when it
    has none)."""
    defs: list[ColumnDefinition] = [NAME_COLUMN.copy()]
    getters: list[Getter] = [name_cell]
    pcs = list(rt.printer_columns)
    if not pcs:
        defs.append(AGE_COLUMN.copy())
        getters.append(created)
    for pc in pcs:
        typ = str(pc.get("type", "string"))
        path = str(pc.get("jsonPath", ""))
        defs.append(
            {
                "name": str(pc.get("name", "")),
                "type": typ,
                "format": str(pc.get("format", "")),
                "description": str(
                    pc.get("description")
                    or f"Custom resource definition column (in JSONPath format): {path}"
                ),
                "priority": int(pc.get("priority", 0)),
            }
        )
        getters.append(_printer_column(path, typ))
    return defs, getters


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}


def to_table(
    columns: tuple[list[ColumnDefinition], list[Getter]],
    objs: list[dict[str, Any]],
    *,
    resource_version: str = "",
    cont: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
    remaining: int | None = None,
) -> dict[str, Any]:
    defs, getters = columns
    rows = []
    for o in objs:
        cells = []
        for g in getters:
            try:
                cells.append(g(o))
            except Exception:  # a malformed object prints an empty cell, never a 500
                cells.append(None)
        row: dict[str, Any] = {"cells": cells}
        ro = _row_object(o, include_object)
        if ro is not None:
            row["object"] = ro
        rows.append(row)
    meta: dict[str, Any] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if cont:
        meta["continue"] = cont
    if remaining:
        meta["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": defs if with_columns else [],
        "rows": rows,
    }
