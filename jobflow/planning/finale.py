"""``spec.finally``: steps that run once every step of ``spec.steps`` (the DAG) has ended.

Semantics (docs/finally.md):
- A finally step is ready when every DAG step is terminal, whatever the outcome (a failure,
  ``activeDeadlineSeconds``, a Stop request, Replace, a refused resource), and its own
  dependencies (other finally steps only; validation refuses the rest) allow it.
- Finally steps do not stop each other: a finally step that fails skips only its dependants
  (UpstreamFailed); independent finally steps still run (each cleanup gets its chance), and
  a failing DAG never cancels a finally step's retries.
- The DAG's outcome is recorded once, in ``status.outcome`` (phase, reason, message,
  failedSteps), in the pass where the last DAG step ended; finally steps read it as
  ``flow.phase`` / ``flow.failedSteps`` in ``when`` and as inputs (``valueFrom.flowOutcome``).
  The flow's phase is that outcome once every finally step has ended, except that a failing
  finally step (without continueOnFailure) fails an outcome that succeeded (reason
  FinallyFailed). Until then the flow is Running (or Queued): completionTime, and so the TTL,
  count from the end of the last finally step.
- Bounds: ``activeDeadlineSeconds`` ends the DAG; the finally steps then get the same budget
  again, counted from the DAG's deadline: past ``startTime + 2 x activeDeadlineSeconds`` the
  running finally Jobs are deleted and the flow fails (DeadlineExceeded). A Terminate request
  ends everything at once: finally steps that have not ended are skipped or their Jobs deleted
  (reason Terminated); a Stop request lets them run.
- A retry request on a finished flow runs the finally steps again after the steps it re-runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from jobflow import decoded, phases
from jobflow.phases import FlowPhase, StepPhase
from jobflow.planning import flowstatus
from jobflow.stepstate import StepState

# The flow reason when the DAG succeeded and a finally step failed.
FINALLY_FAILED: Final = "FinallyFailed"
# What ``valueFrom.flowOutcome`` may name.
OUTCOME_FIELDS: Final = ("phase", "failedSteps")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the DAG ended: what finally steps see of the flow."""

    phase: str
    reason: str = ""
    message: str = ""
    failed_steps: tuple[str, ...] = ()

    @classmethod
    def restore(cls, entry: object) -> Outcome | None:
        raw = decoded.mapping(entry)
        phase = decoded.string(raw.get("phase"))
        if phase not in phases.TERMINAL_FLOW_PHASES:
            return None
        return cls(
            phase=phase,
            reason=decoded.string(raw.get("reason")) or "",
            message=decoded.string(raw.get("message")) or "",
            failed_steps=tuple(decoded.strings(raw.get("failedSteps"))),
        )

    def to_status(self) -> dict[str, object]:
        out: dict[str, object] = {"phase": str(self.phase)}
        if self.reason:
            out["reason"] = self.reason
        if self.message:
            out["message"] = self.message
        out["failedSteps"] = list(self.failed_steps)
        return out

    def value(self, field: str) -> str:
        """``valueFrom.flowOutcome``: the phase, or the failed steps as a JSON list."""
        if field == "phase":
            return self.phase
        return json.dumps(list(self.failed_steps))


def dag(steps: Sequence[StepState]) -> list[StepState]:
    return [s for s in steps if not s.spec.is_finally]


def finals(steps: Sequence[StepState]) -> list[StepState]:
    return [s for s in steps if s.spec.is_finally]


def dag_done(steps: Sequence[StepState]) -> bool:
    return all(s.is_terminal for s in steps if not s.spec.is_finally)


def outcome_of(steps: Sequence[StepState], *, phase: str, reason: str, message: str) -> Outcome:
    failed = tuple(s.name for s in steps if not s.spec.is_finally and s.phase == StepPhase.FAILED)
    return Outcome(phase=phase, reason=reason, message=message, failed_steps=failed)


def finally_deadline(started: datetime, deadline_seconds: int | None) -> datetime | None:
    """When running finally steps are stopped: the DAG's deadline plus the same budget."""
    if deadline_seconds is None:
        return None
    return started + timedelta(seconds=2 * deadline_seconds)


def blocked_by(step: StepState, by_name: Mapping[str, StepState]) -> str | None:
    """A dependency of finally ``step`` that failed for good (or was skipped for one): the
    step is skipped (UpstreamFailed) rather than run."""
    for dep in step.spec.dependencies:
        other = by_name.get(dep)
        if other is None:
            continue
        if other.is_blocking_failure or (
            other.phase == StepPhase.SKIPPED and other.reason == phases.UPSTREAM_FAILED
        ):
            return dep
    return None


def combine(outcome: Outcome, finally_steps: Sequence[StepState]) -> tuple[str, str, str] | None:
    """The flow's (phase, reason, message) once every finally step ended; None before."""
    if not all(s.is_terminal for s in finally_steps):
        return None
    if outcome.phase == FlowPhase.FAILED:
        return FlowPhase.FAILED, outcome.reason, outcome.message
    failed = [s.name for s in finally_steps if s.is_blocking_failure]
    if failed:
        return FlowPhase.FAILED, FINALLY_FAILED, f"finally step(s) failed: {', '.join(failed)}"
    return FlowPhase.SUCCEEDED, "", ""


def flow_phase(
    steps: Sequence[StepState], outcome: Outcome | None, *, suspended: bool
) -> tuple[str, str, str]:
    """(phase, reason, message) of a flow with finally steps: the DAG's while it runs, the
    finally steps' while they run (never terminal before they all ended), then ``combine``."""
    running = finals(steps) if outcome is not None else dag(steps)
    if outcome is not None:
        ended = combine(outcome, running)
        if ended is not None:
            return ended
    phase, reason, message = flowstatus.flow_phase(
        running, stop_reason=None, stop_message="", suspended=suspended
    )
    if phase in phases.TERMINAL_FLOW_PHASES:
        # Not over yet: the finally steps (or the rest of the DAG) have not all ended.
        return FlowPhase.RUNNING, "", ""
    return phase, reason, message
