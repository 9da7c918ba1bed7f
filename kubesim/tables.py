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
from collections.abc import Callable
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


def _parse_time(value: object) -> dt.datetime | None:
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
    t = _parse_time(value)
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


def _col(
    name: str, typ: str = "string", priority: int = 0, description: str = ""
) -> ColumnDefinition:
    return {
        "name": name,
        "type": typ,
        "format": "",
        "description": description or name,
        "priority": priority,
    }


def _g(obj: dict[str, Any], *path: str, default: Any = None) -> Any:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(p)
    return default if cur is None else cur


def _created(obj: dict[str, Any]) -> str | None:
    return age(_g(obj, "metadata", "creationTimestamp"))


def _pod_status(obj: dict[str, Any]) -> str:
    if _g(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    reason = _g(obj, "status", "reason") or _g(obj, "status", "phase", default="Pending")
    for cs in _g(obj, "status", "containerStatuses", default=[]) or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or (f"ExitCode:{t.get('exitCode')}")
    return str(reason)


def _pod_ready(obj: dict[str, Any]) -> str:
    total = len(_g(obj, "spec", "containers", default=[]) or [])
    ready = sum(
        1 for cs in _g(obj, "status", "containerStatuses", default=[]) or [] if cs.get("ready")
    )
    return f"{ready}/{total}"


def _pod_restarts(obj: dict[str, Any]) -> int:
    return sum(
        int(cs.get("restartCount") or 0)
        for cs in _g(obj, "status", "containerStatuses", default=[]) or []
    )


def _job_status(obj: dict[str, Any]) -> str:
    for c in _g(obj, "status", "conditions", default=[]) or []:
        if c.get("status") == "True" and c.get("type") in (
            "Complete",
            "Failed",
            "Suspended",
            "FailureTarget",
        ):
            kind = str(c["type"])
            return {"FailureTarget": "Failed"}.get(kind, kind)
    return "Running"


def _job_duration(obj: dict[str, Any]) -> str | None:
    start = _parse_time(_g(obj, "status", "startTime"))
    if start is None:
        return None
    end = _parse_time(_g(obj, "status", "completionTime")) or dt.datetime.now(dt.UTC)
    return human_duration((end - start).total_seconds())


def _svc_ports(obj: dict[str, Any]) -> str:
    ports = _g(obj, "spec", "ports", default=[]) or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _event_object(obj: dict[str, Any]) -> str:
    io = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(io.get('kind', '')).lower()}/{io.get('name', '')}"


def _event_last_seen(obj: dict[str, Any]) -> str | None:
    for f in ("lastTimestamp", "eventTime", "deprecatedLastTimestamp", "firstTimestamp"):
        v = obj.get(f) or (_g(obj, "series", "lastObservedTime") if f == "eventTime" else None)
        if v:
            return age(v)
    return _created(obj)


def _selector(sel: object) -> str:
    if isinstance(sel, dict):
        ml = sel.get("matchLabels") if "matchLabels" in sel or "matchExpressions" in sel else sel
        if isinstance(ml, dict):
            return ",".join(f"{k}={v}" for k, v in ml.items()) or "<none>"
    return "<none>"


def _template_containers(obj: dict[str, Any], field: str) -> str:
    containers = _g(obj, "spec", "template", "spec", "containers", default=[]) or []
    return ",".join(c.get(field, "") for c in containers)


# the wide (-o wide) columns of every workload with a pod template (Jobs, Deployments)
_POD_TEMPLATE_COLUMNS: list[Column] = [
    (_col("Containers", priority=1), lambda o: _template_containers(o, "name")),
    (_col("Images", priority=1), lambda o: _template_containers(o, "image")),
    (_col("Selector", priority=1), lambda o: _selector(_g(o, "spec", "selector"))),
]


BUILTIN_COLUMNS: dict[tuple[str, str], list[Column]] = {
    ("", "namespaces"): [(_col("Status"), lambda o: _g(o, "status", "phase"))],
    ("", "configmaps"): [
        (
            _col("Data", "integer"),
            lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
        )
    ],
    ("", "secrets"): [
        (_col("Type"), lambda o: o.get("type")),
        (_col("Data", "integer"), lambda o: len(o.get("data") or {})),
    ],
    ("", "serviceaccounts"): [(_col("Secrets", "integer"), lambda o: len(o.get("secrets") or []))],
    ("", "services"): [
        (_col("Type"), lambda o: _g(o, "spec", "type")),
        (_col("Cluster-IP"), lambda o: _g(o, "spec", "clusterIP", default="<none>")),
        (
            _col("External-IP"),
            lambda o: ",".join(_g(o, "spec", "externalIPs", default=[]) or []) or "<none>",
        ),
        (_col("Port(s)"), _svc_ports),
        (_col("Selector", priority=1), lambda o: _selector(_g(o, "spec", "selector"))),
    ],
    ("", "pods"): [
        (_col("Ready"), _pod_ready),
        (_col("Status"), _pod_status),
        (_col("Restarts", "string"), lambda o: str(_pod_restarts(o))),
        (_col("IP", priority=1), lambda o: _g(o, "status", "podIP", default="<none>")),
        (_col("Node", priority=1), lambda o: _g(o, "spec", "nodeName", default="<none>")),
    ],
    ("", "persistentvolumeclaims"): [
        (_col("Status"), lambda o: _g(o, "status", "phase")),
        (_col("Volume"), lambda o: _g(o, "spec", "volumeName", default="")),
        (_col("Capacity"), lambda o: _g(o, "status", "capacity", "storage", default="")),
        (
            _col("Access Modes"),
            lambda o: ",".join(
                {
                    "ReadWriteOnce": "RWO",
                    "ReadOnlyMany": "ROX",
                    "ReadWriteMany": "RWX",
                    "ReadWriteOncePod": "RWOP",
                }.get(m, m)
                for m in (_g(o, "status", "accessModes", default=[]) or [])
            ),
        ),
        (_col("StorageClass"), lambda o: _g(o, "spec", "storageClassName", default="<unset>")),
    ],
    ("batch", "jobs"): [
        (_col("Status"), _job_status),
        (
            _col("Completions"),
            lambda o: (
                f"{_g(o, 'status', 'succeeded', default=0)}/{_g(o, 'spec', 'completions', default=1)}"
            ),
        ),
        (_col("Duration"), _job_duration),
        *_POD_TEMPLATE_COLUMNS,
    ],
    ("apps", "deployments"): [
        (
            _col("Ready"),
            lambda o: (
                f"{_g(o, 'status', 'readyReplicas', default=0)}/{_g(o, 'spec', 'replicas', default=1)}"
            ),
        ),
        (_col("Up-to-date", "integer"), lambda o: _g(o, "status", "updatedReplicas", default=0)),
        (_col("Available", "integer"), lambda o: _g(o, "status", "availableReplicas", default=0)),
        *_POD_TEMPLATE_COLUMNS,
    ],
    ("rbac.authorization.k8s.io", "clusterroles"): [
        (_col("Created At", "date"), lambda o: _g(o, "metadata", "creationTimestamp"))
    ],
    ("rbac.authorization.k8s.io", "roles"): [
        (_col("Created At", "date"), lambda o: _g(o, "metadata", "creationTimestamp"))
    ],
    ("rbac.authorization.k8s.io", "clusterrolebindings"): [
        (
            _col("Role"),
            lambda o: (
                f"{_g(o, 'roleRef', 'kind', default='')}/{_g(o, 'roleRef', 'name', default='')}"
            ),
        )
    ],
    ("rbac.authorization.k8s.io", "rolebindings"): [
        (
            _col("Role"),
            lambda o: (
                f"{_g(o, 'roleRef', 'kind', default='')}/{_g(o, 'roleRef', 'name', default='')}"
            ),
        )
    ],
    ("policy", "poddisruptionbudgets"): [
        (_col("Min Available"), lambda o: str(_g(o, "spec", "minAvailable", default="N/A"))),
        (_col("Max Unavailable"), lambda o: str(_g(o, "spec", "maxUnavailable", default="N/A"))),
        (
            _col("Allowed Disruptions", "integer"),
            lambda o: _g(o, "status", "disruptionsAllowed", default=0),
        ),
    ],
    ("networking.k8s.io", "networkpolicies"): [
        (
            _col("Pod-Selector"),
            lambda o: _selector(_g(o, "spec", "podSelector")).replace("<none>", "<none>"),
        )
    ],
    ("coordination.k8s.io", "leases"): [
        (_col("Holder"), lambda o: _g(o, "spec", "holderIdentity", default=""))
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        (_col("Created At", "date"), lambda o: _g(o, "metadata", "creationTimestamp"))
    ],
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"): [
        (_col("Webhooks", "integer"), lambda o: len(o.get("webhooks") or []))
    ],
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"): [
        (_col("Webhooks", "integer"), lambda o: len(o.get("webhooks") or []))
    ],
}

_EVENT_COLUMNS: list[Column] = [
    (_col("Last Seen"), _event_last_seen),
    (_col("Type"), lambda o: o.get("type")),
    (_col("Reason"), lambda o: o.get("reason")),
    (_col("Object"), _event_object),
    (_col("Message"), lambda o: o.get("message") or o.get("note")),
]


def _printer_column(path: str, typ: str) -> Getter:
    return lambda o: _format_cell(jsonpath(o, path), typ)


def _aged(fn: Getter) -> Getter:
    return lambda o: age(fn(o))


def _name(obj: dict[str, Any]) -> Any:
    return _g(obj, "metadata", "name")


def _columns(rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
    defs: list[ColumnDefinition] = [NAME_COLUMN.copy()]
    getters: list[Getter] = [_name]
    if not rt.builtin:
        pcs = list(rt.printer_columns)
        if not pcs:
            defs.append(AGE_COLUMN.copy())
            getters.append(_created)
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
    if rt.resource == "events":
        # the name is a wide column of events (kubectl shows LAST SEEN, TYPE, REASON ... first)
        wide_name: ColumnDefinition = {**NAME_COLUMN, "priority": 1}
        event_defs = [d for d, _fn in _EVENT_COLUMNS] + [wide_name]
        return event_defs, [fn for _d, fn in _EVENT_COLUMNS] + [_name]
    cols = BUILTIN_COLUMNS.get(rt.key, [])
    has_age = any(c[0]["type"] == "date" for c in cols)
    for d, fn in cols:
        defs.append(d)
        getters.append(_aged(fn) if d["type"] == "date" else fn)
    if not has_age:
        # Age sits before the wide (priority 1) columns, as kubectl shows it
        idx = next((i for i, d in enumerate(defs) if d["priority"] > 0), len(defs))
        defs.insert(idx, AGE_COLUMN.copy())
        getters.insert(idx, _created)
    return defs, getters


def _row_object(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}


def to_table(
    rt: ResourceType,
    objs: list[dict[str, Any]],
    *,
    resource_version: str = "",
    cont: str = "",
    include_object: str = "Metadata",
    with_columns: bool = True,
    remaining: int | None = None,
) -> dict[str, Any]:
    defs, getters = _columns(rt)
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
