"""What `zen-flow list` and `zen-flow get` print: pure functions from JobFlow (and Job) objects
and a clock to lines of text, so their exact output is unit-tested with a fixed ``now``.

- ``list_lines``: `kubectl get jf` with one more column, REASON: why a flow failed (its failed
  steps and their reasons, or the flow's own reason: Stopped, Terminated, DeadlineExceeded),
  who it waits for (approval, a queue). Columns are separated as kubectl's tabwriter does
  (three spaces), AGE as kubectl's ``HumanDuration``.
- ``get_lines``: a header (phase, times, progress, parameters, history) and a tree of the
  steps like `argo get`: one row per step in spec order (symbol, phase, attempts, duration,
  message) and, for a step with several attempts, a row per attempt read from its Jobs.
  Rows fit ``width`` (80 by default): the message is cut, never the names.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from app import progress
from jobflow import decoded, fanout, names, phases

COLUMN_GAP: Final = 3  # kubectl's tabwriter padding
DEFAULT_WIDTH: Final = 80
MAX_REASON: Final = 60  # characters of the REASON column of `list`
MAX_ITEM_ROWS: Final = 5  # items of a fan-out `get` lists under it (failed, running, retrying)
_ITEM_PHASES: Final[Mapping[str, str]] = {
    "R": "Running",
    "Q": "Queued",
    "B": "Retrying",
    "F": "Failed",
    "P": "Pending",
}
SYMBOLS: Final[Mapping[str, str]] = {
    "Succeeded": "✔",
    "Failed": "✖",
    "Skipped": "○",
    "Running": "●",
    "Pending": "◷",
    "Retrying": "↻",
    "PendingApproval": "⏸",
}


def human_age(seconds: float) -> str:
    """kubectl's ``duration.HumanDuration``: 45s, 5m10s, 37m, 3h20m, 15h, 2d5h, 12d, 2y."""
    s = int(max(seconds, 0))
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if s < 120:
        return f"{s}s"
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        years = days // 365
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{days // 365}y"


def columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns, three spaces apart, trailing blanks trimmed."""
    if not rows:
        return []
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        out.append((" " * COLUMN_GAP).join(cells).rstrip())
    return out


def _condition(flow: Mapping[str, Any], kind: str) -> Mapping[str, object]:
    for cond in decoded.items(decoded.path(flow, "status", "conditions")):
        if cond.get("type") == kind:
            return cond
    return {}


def flow_reason(flow: Mapping[str, Any]) -> str:
    """Why the flow is where it is, in a few words (empty when there is nothing to say)."""
    phase = progress.flow_phase(flow)
    rows = progress.step_rows(flow)
    if phase == "Failed":
        reason = decoded.string(_condition(flow, "Failed").get("reason")) or ""
        failed = [r for r in rows if r.phase == "Failed"]
        if reason == phases.STEP_FAILED and failed:
            return ", ".join(f"{r.step}: {r.reason or 'Failed'}" for r in failed)
        return reason
    if phase == "Paused":
        waiting = [r.step for r in rows if r.phase == "PendingApproval"]
        return f"awaiting approval: {', '.join(waiting)}"
    if _condition(flow, "Queued").get("status") == "True":
        return "Queued"
    if decoded.path(flow, "status", "stop") and phase not in phases.TERMINAL_FLOW_PHASES:
        return "Stopping"
    return ""


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def list_lines(
    flows: Sequence[Mapping[str, Any]], *, now: datetime, all_namespaces: bool = False
) -> list[str]:
    header = ["NAME", "PHASE", "PROGRESS", "AGE", "REASON"]
    if all_namespaces:
        header.insert(0, "NAMESPACE")
    rows = [header]
    for flow in flows:
        created = decoded.parse_time(decoded.path(flow, "metadata", "creationTimestamp"))
        row = [
            decoded.string(decoded.path(flow, "metadata", "name")) or "?",
            progress.flow_phase(flow),
            decoded.string(decoded.path(flow, "status", "progress", "display")) or "",
            human_age((now - created).total_seconds()) if created else "<unknown>",
            _cut(flow_reason(flow), MAX_REASON),
        ]
        if all_namespaces:
            row.insert(0, decoded.string(decoded.path(flow, "metadata", "namespace")) or "")
        rows.append(row)
    return columns(rows)


# -- get ---------------------------------------------------------------------------------------


def _span(start: object, end: object, now: datetime) -> str:
    begun = decoded.parse_time(start)
    if begun is None:
        return ""
    ended = decoded.parse_time(end) or now
    return progress.format_duration((ended - begun).total_seconds())


def _attempt_rows(
    step: str, jobs: Sequence[Mapping[str, Any]], now: datetime
) -> list[tuple[str, str, str, str]]:
    """(label, phase, duration, message) per Job of ``step``, by attempt."""
    mine = []
    for job in jobs:
        labels = decoded.string_map(decoded.path(job, "metadata", "labels"))
        if labels.get(names.LABEL_STEP) != step:
            continue
        text = labels.get(names.LABEL_ATTEMPT, "0")
        mine.append((int(text) if text.isdigit() else 0, job))
    rows = []
    for attempt, job in sorted(mine, key=lambda pair: pair[0]):
        phase, message, end = "Running", "", None
        for cond in decoded.items(decoded.path(job, "status", "conditions")):
            if cond.get("status") != "True":
                continue
            if cond.get("type") == "Complete":
                phase, end = "Succeeded", cond.get("lastTransitionTime")
            elif cond.get("type") == "Failed":
                phase, end = "Failed", cond.get("lastTransitionTime")
                message = decoded.string(cond.get("reason")) or ""
        start = decoded.path(job, "status", "startTime") or decoded.path(
            job, "metadata", "creationTimestamp"
        )
        rows.append((f"#{attempt + 1}", phase, _span(start, end, now), message))
    return rows


def _item_rows(step: str, items: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(label, phase, attempts, message) of a fan-out's items with more to say than their
    phase (running, retrying, failed; jobflow.fanout), ``step[3]``, at most MAX_ITEM_ROWS."""
    codes = str(items.get("phases") or "")
    rows: list[tuple[str, str, str, str]] = []
    details = decoded.items(items.get("detail"))

    def code(detail: Mapping[str, object]) -> str:
        index = decoded.integer(detail.get("i"))
        return codes[index] if index is not None and 0 <= index < len(codes) else ""

    shown = [d for d in details if code(d) not in ("S", "K", "")]
    for detail in shown[:MAX_ITEM_ROWS]:
        index = decoded.integer(detail.get("i")) or 0
        phase = _ITEM_PHASES.get(code(detail), "?")
        attempts = decoded.integer(detail.get("a"))
        said = decoded.string(detail.get("message")) or decoded.string(detail.get("reason")) or ""
        rows.append((fanout.item_key(step, index), phase, str(attempts) if attempts else "", said))
    if len(shown) > MAX_ITEM_ROWS:
        rows.append((f"... {len(shown) - MAX_ITEM_ROWS} more", "", "", ""))
    return rows


def _header(flow: Mapping[str, Any], now: datetime, width: int) -> list[str]:
    status = decoded.mapping(flow.get("status"))
    fields: list[tuple[str, str]] = [
        ("Name", decoded.string(decoded.path(flow, "metadata", "name")) or "?"),
        ("Namespace", decoded.string(decoded.path(flow, "metadata", "namespace")) or ""),
        ("Phase", progress.flow_phase(flow)),
    ]
    reason = flow_reason(flow)
    if reason:
        fields.append(("Reason", reason))
    if status.get("startTime"):
        fields.append(("Started", str(status["startTime"])))
    if status.get("completionTime"):
        fields.append(("Finished", str(status["completionTime"])))
    if status.get("startTime"):
        fields.append(
            ("Duration", _span(status.get("startTime"), status.get("completionTime"), now))
        )
    display = decoded.string(decoded.path(status, "progress", "display"))
    if display:
        fields.append(("Progress", display))
    params = decoded.string_map(status.get("parameters"))
    if params:
        fields.append(("Parameters", ", ".join(f"{k}={v}" for k, v in sorted(params.items()))))
    for entry in decoded.items(status.get("history")):
        said = " ".join(
            part
            for part in (
                decoded.string(entry.get("type")) or "",
                decoded.string(entry.get("id")) or "",
                f"by {entry['requestedBy']}" if entry.get("requestedBy") else "",
                f"at {entry['time']}" if entry.get("time") else "",
            )
            if part
        )
        message = decoded.string(entry.get("message"))
        fields.append(("History", f"{said}: {message}" if message else said))
    indent = max(len(k) for k, _ in fields) + 2
    lines = []
    for key, value in fields:
        # long values (history messages) wrap under themselves, within ``width``
        wrapped = textwrap.wrap(value, max(width - indent, 20), break_on_hyphens=False) or [""]
        lines.append(f"{key + ':':<{indent}}{wrapped[0]}")
        lines.extend(" " * indent + more for more in wrapped[1:])
    return lines


# The Job controller's own words for a failed Job: true of every failed attempt, so in a cut
# message they would hide the cause that follows them (the exit code, the container's words).
_JOB_FAILED_WORDS: Final = "Job has reached the specified backoff limit"


def _note(row: progress.StepRow) -> str:
    """The step's note, its cause first: ``JobFailed (exit code 2): main.c:3: ...``."""
    note = row.note
    if note.startswith(_JOB_FAILED_WORDS) and row.reason:
        return row.reason + note[len(_JOB_FAILED_WORDS) :]
    return note


def get_lines(
    flow: Mapping[str, Any],
    jobs: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    width: int = DEFAULT_WIDTH,
) -> list[str]:
    """`zen-flow get`: the header, a blank line, the tree (see the module docstring)."""
    status = decoded.mapping(flow.get("status"))
    rows: list[tuple[str, str, str, str, str]] = [
        ("STEP", "PHASE", "ATTEMPTS", "DURATION", "MESSAGE"),
        (
            decoded.string(decoded.path(flow, "metadata", "name")) or "?",
            progress.flow_phase(flow),
            "",
            _span(status.get("startTime"), status.get("completionTime"), now),
            "",
        ),
    ]
    steps = progress.step_rows(flow)
    for i, row in enumerate(steps):
        last = i == len(steps) - 1
        branch, stem = ("└─", "   ") if last else ("├─", "│  ")
        attempts = "-" if row.kind != "Job" or not row.attempts else str(row.attempts)
        if row.items is not None:
            attempts = row.attempt_text
        mark = " (finally)" if row.is_finally else ""
        rows.append(
            (
                f"{branch} {SYMBOLS.get(row.phase, '?')} {row.step}{mark}",
                row.phase,
                attempts,
                row.duration(now) if row.started else "",
                _note(row),
            )
        )
        # under a fan-out its items with more to say (the ATTEMPTS column), else the attempts
        if row.items is not None:
            tries = [
                (label, phase, tried, "", said)
                for label, phase, tried, said in _item_rows(row.step, row.items)
            ]
        else:
            tries = [
                (label, phase, "", took, said)
                for label, phase, took, said in (
                    _attempt_rows(row.step, jobs, now) if row.attempts > 1 else []
                )
            ]
        for j, (label, phase, tried, took, message) in enumerate(tries):
            twig = "└─" if j == len(tries) - 1 else "├─"
            rows.append((f"{stem}{twig} {label}", phase, tried, took, message))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    room = max(width - sum(widths) - COLUMN_GAP * 4, 10)
    lines = []
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r[:4], widths, strict=True)] + [_cut(r[4], room)]
        lines.append((" " * COLUMN_GAP).join(cells).rstrip())
    return [*_header(flow, now, width), "", *lines]
