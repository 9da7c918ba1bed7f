"""What the pages show, read from the cluster with the user's client. Pure reading: the actions
are the CLI's functions (app.ui.server maps them).

The graph is drawn from the spec generically: every list of steps in ``GROUPS`` (``steps``,
then ``finally`` when a flow has it) gives nodes; ``dependencies`` give edges; a step that fans
out (``withItems``, ``withParam``) is one node with its item count; a ``finally`` step with no
dependencies of its own hangs off the main steps' ends (dashed). A new kind of step list is one
more entry in GROUPS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from app import cluster, progress, views
from controller import kube as kube_mod
from jobflow import decoded, fanout, kinds, names, phases

# (spec field, group name shown on the page), in drawing order.
GROUPS: Final = (("steps", "main"), ("finally", "finally"))
# Characters of one pod's log sent at most (the end is kept: that is where a failure shows).
MAX_LOG_CHARS: Final = 256 * 1024
MAX_EVENTS: Final = 200


def _spec_steps(flow: Mapping[str, Any]) -> list[tuple[str, Mapping[str, object]]]:
    spec = decoded.mapping(flow.get("spec"))
    return [(group, step) for field, group in GROUPS for step in decoded.items(spec.get(field))]


def _status_steps(flow: Mapping[str, Any]) -> dict[str, Mapping[str, object]]:
    status = decoded.mapping(flow.get("status"))
    out: dict[str, Mapping[str, object]] = {}
    for field, _group in GROUPS:
        for entry in decoded.items(status.get(field)):
            name = decoded.string(entry.get("name"))
            if name:
                out[name] = entry
    return out


def _fanout(step: Mapping[str, object], entry: Mapping[str, object]) -> int | None:
    """How many items a fan-out step runs (0: not known until it starts: ``withParam`` reads a
    step's output); None for a step that is not a fan-out."""
    items = step.get("withItems")
    if isinstance(items, list):
        return len(items)
    if items is None and step.get("withParam") is None:
        return None
    count = decoded.integer(decoded.path(entry, "items", "count"))
    return count if count is not None else 0


def graph(flow: Mapping[str, Any]) -> dict[str, Any]:
    """Nodes (one per step, with its phase) and edges (dependency -> dependant)."""
    status = _status_steps(flow)
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    main_names: list[str] = []
    depended: set[str] = set()
    finally_roots: list[str] = []
    for group, step in _spec_steps(flow):
        name = decoded.string(step.get("name"))
        if not name:
            continue
        entry = status.get(name, {})
        deps = decoded.strings(step.get("dependencies"))
        when = step.get("when")
        nodes.append(
            {
                "id": name,
                "group": group,
                "kind": kinds.of_step(step).name,
                "phase": decoded.string(entry.get("phase")) or "Pending",
                "attempts": decoded.integer(entry.get("attempts")) or 0,
                "fanout": _fanout(step, entry),
                "conditional": isinstance(when, str) and when.strip() not in ("", "true"),
            }
        )
        for dep in deps:
            edges.append({"source": dep, "target": name, "kind": "dependency"})
            depended.add(dep)
        if group == "main":
            main_names.append(name)
        elif not deps:
            finally_roots.append(name)
    ends = [n for n in main_names if n not in depended]
    for root in finally_roots:
        edges += [{"source": end, "target": root, "kind": "finally"} for end in ends]
    return {"nodes": nodes, "edges": edges}


def summary(flow: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """One row of the flows page (the columns of `zen-flow list`)."""
    meta = decoded.mapping(flow.get("metadata"))
    created = decoded.parse_time(meta.get("creationTimestamp"))
    return {
        "name": decoded.string(meta.get("name")) or "?",
        "namespace": decoded.string(meta.get("namespace")) or "",
        "phase": progress.flow_phase(flow),
        "progress": decoded.string(decoded.path(flow, "status", "progress", "display")) or "",
        "age": views.human_age((now - created).total_seconds()) if created else "",
        "created": decoded.string(meta.get("creationTimestamp")) or "",
        "reason": views.flow_reason(flow),
        "labels": decoded.string_map(meta.get("labels")),
    }


def list_flows(
    kube: kube_mod.Kube, namespace: str, *, phase: str = "", selector: str = ""
) -> list[dict[str, Any]]:
    items = cluster.retrying(
        lambda: kube.list_all(kube_mod.JOBFLOWS, namespace, label_selector=selector or None)[
            "items"
        ]
    )
    now = datetime.now(UTC)
    rows = [summary(f, now) for f in items]
    if phase:
        rows = [r for r in rows if r["phase"] == phase]
    return sorted(rows, key=lambda r: r["name"])


def flow_view(flow: Mapping[str, Any]) -> dict[str, Any]:
    """The flow page's model: its summary, graph, steps' status and what may be done to it."""
    row = summary(flow, datetime.now(UTC))
    status = _status_steps(flow)
    finished = row["phase"] in phases.TERMINAL_FLOW_PHASES
    suspended = decoded.path(flow, "spec", "suspend") is True
    return {
        **row,
        "resourceVersion": decoded.string(decoded.path(flow, "metadata", "resourceVersion")),
        "graph": graph(flow),
        "steps": {name: dict(entry) for name, entry in status.items()},
        "suspended": suspended,
        "actions": {
            "retry": row["phase"] == "Failed",
            "stop": not finished,
            "terminate": not finished,
            "suspend": not finished and not suspended,
            "resume": not finished and suspended,
        },
    }


def _attempt(labels: Mapping[str, str]) -> int:
    text = labels.get(names.LABEL_ATTEMPT, "0")
    return int(text) + 1 if text.isdigit() else 1


def _item(labels: Mapping[str, str]) -> int | None:
    """The fan-out item a Job or pod runs (its index), None for a step that does not fan out."""
    text = labels.get(fanout.LABEL_ITEM, "")
    return int(text) if text.isdigit() else None


def _order(entry: Mapping[str, Any]) -> tuple[int, int]:
    """Items in index order, each item's attempts in order (a plain step: item -1)."""
    item = entry.get("item")
    return (item if isinstance(item, int) else -1, int(entry["attempt"]))


def _job_phase(job: Mapping[str, Any]) -> str:
    for cond in decoded.items(decoded.path(job, "status", "conditions")):
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return "Succeeded" if cond.get("type") == "Complete" else "Failed"
    return "Suspended" if decoded.path(job, "spec", "suspend") is True else "Running"


def _exit_code(pod: Mapping[str, Any]) -> int | None:
    for cs in decoded.items(decoded.path(pod, "status", "containerStatuses")):
        code = decoded.path(cs, "state", "terminated", "exitCode")
        if isinstance(code, int):
            return code
    return None


def _owned(items: Sequence[Mapping[str, Any]], step: str) -> list[Mapping[str, Any]]:
    return [
        i
        for i in items
        if decoded.string_map(decoded.path(i, "metadata", "labels")).get(names.LABEL_STEP) == step
    ]


def step_view(
    kube: kube_mod.Kube, namespace: str, flow: Mapping[str, Any], step: str
) -> dict[str, Any]:
    """A step's status (message, reason, outputs) and its attempts: one per Job, with the
    exit code of its pod(s) as `zen-flow get` shows them."""
    name = decoded.string(decoded.path(flow, "metadata", "name")) or ""
    selector = f"{names.LABEL_FLOW}={names.label_value(name)},{names.LABEL_STEP}={step}"
    jobs = cluster.retrying(
        lambda: kube.list_all(kube_mod.JOBS, namespace, label_selector=selector)["items"]
    )
    pods = cluster.retrying(
        lambda: kube.list_all(kube_mod.PODS, namespace, label_selector=selector)["items"]
    )
    attempts: list[dict[str, Any]] = []
    for job in _owned(jobs, step):
        labels = decoded.string_map(decoded.path(job, "metadata", "labels"))
        job_name = decoded.string(decoded.path(job, "metadata", "name")) or ""
        mine = [
            p
            for p in pods
            if decoded.string_map(decoded.path(p, "metadata", "labels")).get("job-name") == job_name
        ]
        codes = [c for c in (_exit_code(p) for p in mine) if c is not None]
        failed = next(
            (
                c
                for c in decoded.items(decoded.path(job, "status", "conditions"))
                if c.get("type") == "Failed" and c.get("status") == "True"
            ),
            {},
        )
        attempts.append(
            {
                "attempt": _attempt(labels),
                "item": _item(labels),
                "job": job_name,
                "phase": _job_phase(job),
                "exitCode": codes[-1] if codes else None,
                "start": decoded.string(decoded.path(job, "status", "startTime")) or "",
                "end": decoded.string(decoded.path(job, "status", "completionTime"))
                or decoded.string(failed.get("lastTransitionTime"))
                or "",
                "message": " ".join(
                    x
                    for x in (
                        decoded.string(failed.get("reason")),
                        decoded.string(failed.get("message")),
                    )
                    if x
                ),
            }
        )
    attempts.sort(key=_order)
    spec = next((s for _g, s in _spec_steps(flow) if s.get("name") == step), {})
    return {
        "name": step,
        "kind": kinds.of_step(spec).name if spec else "",
        "status": dict(_status_steps(flow).get(step, {})),
        "attempts": attempts,
        "dependencies": decoded.strings(spec.get("dependencies")),
        "message": decoded.string(spec.get("message")) or "",
    }


def step_logs(
    kube: kube_mod.Kube, namespace: str, flow_name: str, step: str
) -> list[dict[str, Any]]:
    """The log of each pod of the step, by attempt (a running pod's log so far)."""
    selector = f"{names.LABEL_FLOW}={names.label_value(flow_name)},{names.LABEL_STEP}={step}"
    pods = cluster.retrying(
        lambda: kube.list_all(kube_mod.PODS, namespace, label_selector=selector)["items"]
    )
    out: list[dict[str, Any]] = []
    for pod in pods:
        meta = decoded.mapping(pod.get("metadata"))
        phase = decoded.string(decoded.path(pod, "status", "phase")) or "Pending"
        text = ""
        if phase != "Pending":
            try:
                text = kube.pod_log(namespace, decoded.string(meta.get("name")) or "")
            except (kube_mod.NotFound, kube_mod.Invalid):
                text = ""  # gone with its Job, or not started yet
        labels = decoded.string_map(meta.get("labels"))
        out.append(
            {
                "attempt": _attempt(labels),
                "item": _item(labels),
                "pod": decoded.string(meta.get("name")) or "",
                "phase": phase,
                "text": text[-MAX_LOG_CHARS:],
                "created": decoded.string(meta.get("creationTimestamp")) or "",
            }
        )
    out.sort(key=lambda p: (*_order(p), p["created"], p["pod"]))
    return out


def flow_events(
    kube: kube_mod.Kube, namespace: str, flow: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The Events about the JobFlow (involvedObject), oldest first."""
    uid = decoded.path(flow, "metadata", "uid")
    name = decoded.path(flow, "metadata", "name")
    items = cluster.retrying(lambda: kube.list_all(kube_mod.EVENTS, namespace)["items"])
    out: list[dict[str, Any]] = []
    for event in items:
        involved = decoded.mapping(event.get("involvedObject"))
        if involved.get("kind") != "JobFlow" or involved.get("name") != name:
            continue
        if involved.get("uid") not in (None, uid):
            continue
        when = (
            event.get("lastTimestamp")
            or event.get("eventTime")
            or decoded.path(event, "metadata", "creationTimestamp")
        )
        out.append(
            {
                "type": decoded.string(event.get("type")) or "",
                "reason": decoded.string(event.get("reason")) or "",
                "message": decoded.string(event.get("message")) or "",
                "count": decoded.integer(event.get("count")) or 1,
                "time": decoded.string(when) or "",
            }
        )
    out.sort(key=lambda e: e["time"])
    return out[-MAX_EVENTS:]
