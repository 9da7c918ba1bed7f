"""What `zen-flow run` shows while flows run: step rows, step logs, transitions, a summary.

The watcher (app.run_cmd) turns each observation of the cluster into ``StepRow``s and log lines
and hands them to a ``Display``; a display only renders, it never talks to the cluster. Three
displays, chosen once:

- ``LiveDisplay`` (stdout is a terminal): a rich Live table, one row per step (phase, attempt,
  duration, note), redrawn in place; log lines and notes scroll above it, prefixed by the step
  name in a colour per step, as `docker compose up` does.
- ``PlainDisplay`` (stdout is a pipe or a file: CI logs, tests): one line per transition
  (``demo/fetch-deps: Running (attempt 1/3)``) and the same prefixed log lines; nothing is
  redrawn, so the output reads top to bottom.
- ``QuietDisplay`` (``-o json``): nothing, so stdout holds only the final JSON.

All of them end with ``summary()``: a table of every step and one verdict line per flow.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobflow import decoded, phases

TERMINAL_FLOW_PHASES = phases.TERMINAL_FLOW_PHASES
_PHASE_STYLES: Mapping[str, str] = {
    "Pending": "dim",
    "Running": "bold blue",
    "Succeeded": "green",
    "Failed": "bold red",
    "Skipped": "yellow",
    "PendingApproval": "bold magenta",
    "Paused": "magenta",
    "Suspended": "magenta",
    "Queued": "yellow",
    "Retrying": "yellow",
}
_PHASE_WORDS: Mapping[str, str] = {"PendingApproval": "awaiting approval"}
# Colours cycled over log prefixes, as `docker compose up` does (red is kept for failures).
_PREFIX_COLOURS = ("cyan", "magenta", "blue", "green", "yellow", "bright_cyan", "bright_magenta")
# The plain summary table fits an 80-column terminal; a note keeps at least this many columns.
SUMMARY_WIDTH = 80
MIN_NOTE_WIDTH = 20
# Redraws per second of the live table: smooth enough, and cheap on a 2-core machine.
LIVE_REFRESH_PER_SECOND = 8


@dataclass(frozen=True)
class StepRow:
    """One step of one flow as last observed."""

    flow: str
    step: str
    phase: str
    attempts: int
    max_attempts: int
    started: datetime | None
    finished: datetime | None
    reason: str | None = None
    message: str | None = None
    kind: str = "Job"

    first_attempt: int = 0  # attempts before a retry request ran the step again
    is_finally: bool = False  # a step of spec.finally
    # A fan-out's items as its status says them (jobflow.fanout): count, phase characters and
    # the detail entries of the items with more to say (running, retrying, failed).
    items: Mapping[str, Any] | None = None

    @property
    def attempt_text(self) -> str:
        if self.items is not None:
            codes = str(self.items.get("phases") or "")
            return f"{codes.count('S')}/{self.items.get('count', 0)} items"
        if self.attempts == 0 or self.kind != "Job":
            return "-"
        # a step run again by a retry request counts the attempts of its new run
        return f"{max(self.attempts - self.first_attempt, 0)}/{self.max_attempts}"

    def duration(self, now: datetime) -> str:
        if self.started is None:
            return "-"
        return format_duration(((self.finished or now) - self.started).total_seconds())

    @property
    def note(self) -> str:
        if self.phase == "Succeeded":
            return ""
        return self.message or self.reason or ""


def format_duration(seconds: float) -> str:
    """``<1s``, ``42s``, ``3m05s``, ``2h01m``: status times have one-second precision."""
    whole = int(max(0.0, seconds))
    if whole < 1:
        return "<1s"
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def _max_attempts(step: Mapping[str, Any]) -> int:
    if not isinstance(step.get("retryPolicy"), Mapping):
        return 1
    retry = decoded.mapping(step.get("retryPolicy"))
    limit = retry.get("limit")
    # The webhook defaults a missing limit to 3; a flow admitted without it shows the default.
    return (limit if isinstance(limit, int) and limit >= 0 else 3) + 1


def step_rows(flow: Mapping[str, Any]) -> list[StepRow]:
    """A row per step in spec order, from the flow's spec and its status."""
    name = decoded.string(decoded.path(flow, "metadata", "name")) or "?"
    by_name = {
        decoded.string(entry.get("name")): entry
        for entry in decoded.items(decoded.path(flow, "status", "steps"))
    }
    rows: list[StepRow] = []
    finals = decoded.items(decoded.path(flow, "spec", "finally"))
    listed = decoded.items(decoded.path(flow, "spec", "steps"))
    for index, step in enumerate([*listed, *finals]):
        step_name = decoded.string(step.get("name")) or "?"
        seen = by_name.get(step_name) or {}
        attempts = seen.get("attempts")
        phase = decoded.string(seen.get("phase")) or "Pending"
        reason = decoded.string(seen.get("reason"))
        if phase == "Pending" and reason == phases.RETRY_BACKOFF:
            phase = "Retrying"  # waiting for its next attempt, not for its turn
        first = seen.get("firstAttempt")
        rows.append(
            StepRow(
                flow=name,
                step=step_name,
                phase=phase,
                attempts=attempts if isinstance(attempts, int) else 0,
                max_attempts=_max_attempts(step),
                started=decoded.parse_time(seen.get("startTime")),
                finished=decoded.parse_time(seen.get("completionTime")),
                reason=reason,
                message=decoded.string(seen.get("message")),
                kind=decoded.string(step.get("type")) or "Job",
                first_attempt=first if isinstance(first, int) else 0,
                is_finally=index >= len(listed),
                items=decoded.mapping_or_none(seen.get("items")),
            )
        )
    return rows


def flow_phase(flow: Mapping[str, Any]) -> str:
    return decoded.string(decoded.path(flow, "status", "phase")) or "Pending"


def flow_verdict(flow: Mapping[str, Any], *, now: datetime) -> str:
    """``JobFlow demo Succeeded in 3s: 5 succeeded, 1 skipped``."""
    name = decoded.string(decoded.path(flow, "metadata", "name")) or "?"
    phase = flow_phase(flow)
    started = decoded.parse_time(decoded.path(flow, "status", "startTime"))
    finished = decoded.parse_time(decoded.path(flow, "status", "completionTime"))
    took = (
        f" in {format_duration(((finished or now) - started).total_seconds())}" if started else ""
    )
    counts: dict[str, int] = {}
    for row in step_rows(flow):
        counts[row.phase] = counts.get(row.phase, 0) + 1
    parts = [f"{n} {_PHASE_WORDS.get(phase, phase.lower())}" for phase, n in counts.items()]
    return f"JobFlow {name} {phase}{took}: {', '.join(parts)}"


class Display(Protocol):
    def update(self, flows: Sequence[Mapping[str, Any]]) -> None:
        """Show the latest observation of every flow."""

    def log(self, prefix: str, line: str) -> None:
        """One line of a step's pod log."""

    def note(self, text: str) -> None:
        """A one-off message (e.g. how to approve a waiting step)."""

    def summary(self, flows: Sequence[Mapping[str, Any]]) -> None:
        """The final table and verdicts."""

    def close(self) -> None:
        """Stop redrawing (idempotent)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _label(row: StepRow, multi: bool) -> str:
    return f"{row.flow}/{row.step}" if multi else row.step


def _prefix_width(row: StepRow, multi: bool) -> int:
    """Room for the log prefix of the step's last attempt (``step#3``), so columns align."""
    suffix = len(f"#{row.max_attempts}") if row.max_attempts > 1 else 0
    return len(_label(row, multi)) + suffix


def _table(
    flows: Sequence[Mapping[str, Any]], *, now: datetime, title: bool, width: int | None = None
) -> Table:
    """The step table; the live one (``title``) keeps a row per step, cutting long notes."""
    multi = len(flows) > 1
    rows = [row for flow in flows for row in step_rows(flow)]
    table = Table(box=None, pad_edge=False, header_style="bold", show_edge=False)
    # Fixed columns never shrink (a narrow terminal cuts the note, not the step names).
    label_width = max([4, *(len(_label(r, multi)) for r in rows)])
    table.add_column("STEP", no_wrap=True, min_width=label_width)
    table.add_column("PHASE", no_wrap=True, min_width=len("PendingApproval"))
    table.add_column("ATTEMPT", justify="right", no_wrap=True, min_width=len("ATTEMPT"))
    table.add_column("DURATION", justify="right", no_wrap=True, min_width=len("DURATION"))
    table.add_column("NOTE", overflow="fold")
    # The live table keeps one line per row: the note is cut to what the terminal has left.
    fixed = label_width + len("PendingApproval") + len("ATTEMPT") + len("DURATION") + 8
    note_width = None if width is None else max(10, width - fixed)
    if title and flows:
        table.title = " ".join(
            f"JobFlow {decoded.string(decoded.path(f, 'metadata', 'name'))}: {flow_phase(f)}"
            for f in flows
        )
        table.title_justify = "left"
    for row in rows:
        table.add_row(
            _label(row, multi),
            Text(row.phase, style=_PHASE_STYLES.get(row.phase, "")),
            row.attempt_text,
            row.duration(now),
            _cut(row.note, note_width),
        )
    return table


def _cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


class LiveDisplay:
    """A live table on a terminal; logs and notes print above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._flows: Sequence[Mapping[str, Any]] = ()
        self._colours: dict[str, str] = {}
        self._width = 0
        self._live = Live(
            self._render(),
            console=self.console,
            refresh_per_second=LIVE_REFRESH_PER_SECOND,
            transient=True,
            get_renderable=self._render,
        )
        self._live.start()
        self._closed = False

    def _render(self) -> Table:
        return _table(self._flows, now=_utcnow(), title=True, width=self.console.width)

    def update(self, flows: Sequence[Mapping[str, Any]]) -> None:
        self._flows = list(flows)
        self._width = max(
            [self._width, *(_prefix_width(r, len(flows) > 1) for f in flows for r in step_rows(f))]
        )
        self._live.refresh()

    def log(self, prefix: str, line: str) -> None:
        colour = self._colours.setdefault(
            prefix.split("#")[0], _PREFIX_COLOURS[len(self._colours) % len(_PREFIX_COLOURS)]
        )
        text = Text(f"{prefix:<{self._width}} | ", style=colour)
        text.append(line)
        self.console.print(text, soft_wrap=True, highlight=False)

    def note(self, text: str) -> None:
        self.console.print(Text(text, style="bold"), highlight=False)

    def summary(self, flows: Sequence[Mapping[str, Any]]) -> None:
        self.close()
        now = _utcnow()
        self.console.print()
        self.console.print(_table(flows, now=now, title=False))
        for flow in flows:
            style = _PHASE_STYLES.get(flow_phase(flow), "bold")
            self.console.print(Text(flow_verdict(flow, now=now), style=style), highlight=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._live.stop()


class PlainDisplay:
    """A line per transition and per log line, for pipes, files and CI logs."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._seen: dict[tuple[str, str], tuple[str, int, str | None]] = {}
        self._flow_seen: dict[str, str] = {}
        self._width = 0

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def update(self, flows: Sequence[Mapping[str, Any]]) -> None:
        multi = len(flows) > 1
        now = _utcnow()
        for flow in flows:
            name = decoded.string(decoded.path(flow, "metadata", "name")) or "?"
            phase = flow_phase(flow)
            flow_line = None
            if self._flow_seen.get(name) != phase:
                self._flow_seen[name] = phase
                flow_line = f"{now:%H:%M:%S} JobFlow {name}: {phase}"
            # A flow's end is told after the step transitions that ended it, its start before.
            ended = phase in TERMINAL_FLOW_PHASES
            if flow_line and not ended:
                self._print(flow_line)
            for row in step_rows(flow):
                self._width = max(self._width, _prefix_width(row, multi))
                state = (row.phase, row.attempts, row.reason)
                key = (row.flow, row.step)
                if self._seen.get(key, ("Pending", 0, None)) == state:
                    continue
                self._seen[key] = state
                line = f"{now:%H:%M:%S} {row.flow}/{row.step}: {row.phase}"
                if row.items is not None:
                    line += f" ({row.attempt_text})"  # a fan-out: 2/3 items
                elif row.attempts and row.max_attempts > 1:
                    line += f" (attempt {row.attempt_text})"
                if row.note:
                    line += f": {row.note}"
                self._print(line)
            if flow_line and ended:
                self._print(flow_line)

    def log(self, prefix: str, line: str) -> None:
        self._print(f"{prefix:<{self._width}} | {line}")

    def note(self, text: str) -> None:
        self._print(text)

    def summary(self, flows: Sequence[Mapping[str, Any]]) -> None:
        now = _utcnow()
        multi = len(flows) > 1
        rows = [r for f in flows for r in step_rows(f)]
        header = ("STEP", "PHASE", "ATTEMPT", "DURATION", "NOTE")
        cells = [(_label(r, multi), r.phase, r.attempt_text, r.duration(now), r.note) for r in rows]
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]
        # The table fits SUMMARY_WIDTH columns: the note is cut (its whole text was printed
        # with the step's transition above), never the names.
        room = max(SUMMARY_WIDTH - sum(widths) - 2 * 4, MIN_NOTE_WIDTH)
        self._print("")
        for cell in [header, *cells]:
            line = "  ".join(f"{c:<{w}}" for c, w in zip(cell[:4], widths, strict=True))
            self._print(f"{line}  {_cut(cell[4], room)}".rstrip())
        for flow in flows:
            self._print(flow_verdict(flow, now=now))

    def close(self) -> None:
        pass


class QuietDisplay:
    """Shows nothing (``-o json``: stdout carries only the result)."""

    def update(self, flows: Sequence[Mapping[str, Any]]) -> None:
        pass

    def log(self, prefix: str, line: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def summary(self, flows: Sequence[Mapping[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass


def choose(*, output: str, stream: IO[str] | None = None) -> Display:
    out = stream or sys.stdout
    if output == "json":
        return QuietDisplay()
    if out.isatty():
        return LiveDisplay(Console(file=out))
    return PlainDisplay(out)
