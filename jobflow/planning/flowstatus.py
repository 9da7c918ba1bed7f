"""The flow's ``.status`` from its steps: phase, conditions, progress, and the flow events.

One builder (``build``) serves every path that writes a status from step states: the queued
flow and the running or finished one. Condition lastTransitionTime moves only on a real
transition (``status.merge_conditions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from jobflow import phases, status
from jobflow.phases import FlowPhase, StepPhase
from jobflow.stepstate import Event, StepState


def flow_phase(
    steps: Sequence[StepState], *, stop_reason: str | None, stop_message: str, suspended: bool
) -> tuple[str, str, str]:
    """(phase, failure reason, failure message) of a flow whose steps are ``steps``.

    Failed/Succeeded when done; else Running while a step fails but others still run;
    Suspended; Queued when nothing runs or waits to retry and a step is Queued (its Job
    suspended) or held by the controller's cap; Paused when a step awaits approval and nothing
    runs or waits to retry; Running.
    """
    if stop_reason is not None:
        return FlowPhase.FAILED, stop_reason, stop_message
    blocking = [s for s in steps if s.is_blocking_failure]
    active = any(s.is_active or s.is_waiting_retry for s in steps)
    if all(s.is_terminal for s in steps) or (blocking and not active):
        if blocking:
            failed = ", ".join(s.name for s in blocking)
            return FlowPhase.FAILED, "StepFailed", f"step(s) failed: {failed}"
        return FlowPhase.SUCCEEDED, "", ""
    if blocking:
        return FlowPhase.RUNNING, "", ""  # running steps finish first
    if suspended:
        return FlowPhase.SUSPENDED, "", ""
    if _queued(steps):
        return FlowPhase.QUEUED, "", ""
    if not active and any(s.phase == StepPhase.PENDING_APPROVAL for s in steps):
        return FlowPhase.PAUSED, "", ""
    return FlowPhase.RUNNING, "", ""


def _queued(steps: Sequence[StepState]) -> bool:
    """Nothing runs or waits to retry, and a step waits in a queue (a suspended Job, or the
    controller's --max-active-jobs)."""
    waiting = False
    for s in steps:
        if s.phase == StepPhase.RUNNING or s.is_waiting_retry:
            return False
        waiting = (
            waiting
            or s.phase == StepPhase.QUEUED
            or (s.phase == StepPhase.PENDING and s.reason == phases.WAITING_FOR_CAPACITY)
        )
    return waiting


def flow_event(name: str, before: str | None, after: str, fail_message: str) -> Event | None:
    """The Event for a flow phase change (None when the change is not worth one)."""
    if after == FlowPhase.SUCCEEDED:
        return Event("Normal", "FlowSucceeded", f"flow {name} succeeded")
    if after == FlowPhase.FAILED:
        return Event("Warning", "FlowFailed", f"flow {name} failed: {fail_message}")
    if after == FlowPhase.SUSPENDED:
        return Event("Normal", "FlowSuspended", f"flow {name} suspended (spec.suspend)")
    if after == FlowPhase.PAUSED:
        return Event("Normal", "FlowPaused", f"flow {name} waits for manual approval")
    if after == FlowPhase.QUEUED:
        return Event("Normal", "FlowQueued", f"flow {name} waits in a queue for its steps' Jobs")
    if after == FlowPhase.RUNNING and before in (
        FlowPhase.SUSPENDED,
        FlowPhase.PAUSED,
        FlowPhase.QUEUED,
    ):
        return Event("Normal", "FlowResumed", f"flow {name} resumed")
    return None


def queued_conditions(message: str) -> list[status.Desired]:
    return [
        status.Desired(status.ACCEPTED, True, "Valid", "the spec is valid"),
        status.Desired(status.PROGRESSING, False, "Queued", message),
        status.Desired(status.COMPLETE, False, "Queued", "not started"),
        status.Desired(status.FAILED, False, "Queued", "not started"),
        status.Desired(status.AWAITING_APPROVAL, False, "NoneWaiting", "no step waits"),
        status.Desired(status.QUEUED, True, "ConcurrencyForbid", message),
    ]


def running_conditions(
    phase: str,
    *,
    progress: Mapping[str, object],
    waiting: Sequence[str],
    fail_reason: str,
    fail_message: str,
    resources_done: bool | None,
    waiting_in_queue: Sequence[StepState] = (),
) -> list[status.Desired]:
    succeeded = phase == FlowPhase.SUCCEEDED
    desired = [
        status.Desired(status.ACCEPTED, True, "Valid", "the spec is valid"),
        status.Desired(
            status.PROGRESSING,
            phase in (FlowPhase.RUNNING, FlowPhase.QUEUED),
            phase,
            f"{progress['display']} steps done",
        ),
        status.Desired(
            status.COMPLETE,
            succeeded,
            "Succeeded" if succeeded else phase,
            "all steps finished" if succeeded else "not complete",
        ),
        status.Desired(
            status.FAILED,
            phase == FlowPhase.FAILED,
            fail_reason or phase,
            fail_message or "no failure",
        ),
        status.Desired(
            status.AWAITING_APPROVAL,
            bool(waiting),
            "ManualApproval" if waiting else "NoneWaiting",
            f"waiting for approval of: {', '.join(waiting)}" if waiting else "no step waits",
        ),
        queued_condition(phase, waiting_in_queue),
    ]
    if resources_done is not None:
        desired.append(
            status.Desired(
                status.RESOURCES_CREATED,
                resources_done,
                "Created" if resources_done else "NotCreated",
                "resourceTemplates objects created"
                if resources_done
                else "resourceTemplates objects not created",
            )
        )
    return desired


def queued_condition(phase: str, steps: Sequence[StepState]) -> status.Desired:
    """``Queued``: True while the flow (phase Queued) waits for a queue: Kueue's admission of a
    suspended Job, or the controller's --max-active-jobs; the message says which steps."""
    if phase != FlowPhase.QUEUED or not steps:
        return status.Desired(status.QUEUED, False, "NotQueued", "not waiting for other flows")
    shown = "; ".join(f"{s.name}: {s.message}" if s.message else s.name for s in steps[:5])
    more = f"; and {len(steps) - 5} more" if len(steps) > 5 else ""
    reason = steps[0].reason or phases.JOB_SUSPENDED
    return status.Desired(status.QUEUED, True, reason, f"waiting in a queue: {shown}{more}")


def waiting_in_queue(steps: Sequence[StepState]) -> list[StepState]:
    """The steps that wait in a queue: Queued (a suspended Job) or held for capacity."""
    return [
        s
        for s in steps
        if s.phase == StepPhase.QUEUED
        or (s.phase == StepPhase.PENDING and s.reason == phases.WAITING_FOR_CAPACITY)
    ]


def build(
    *,
    phase: str,
    steps: Sequence[StepState],
    desired: Sequence[status.Desired],
    prior_conditions: Sequence[Mapping[str, object]],
    namespace: str,
    flow_name: str,
    generation: int | None,
    now: datetime,
    progress: Mapping[str, object] | None = None,
    start: str | None = None,
    completion: str | None = None,
) -> dict[str, object]:
    """The whole ``.status`` (keys in the order the API shows them)."""
    new_status: dict[str, object] = {"phase": str(phase)}
    if generation is not None:
        new_status["observedGeneration"] = generation
    if start is not None:
        new_status["startTime"] = start
    if completion is not None:
        new_status["completionTime"] = completion
    new_status["steps"] = [s.to_status(namespace, flow_name=flow_name) for s in steps]
    new_status["progress"] = (
        progress if progress is not None else status.progress([s.phase for s in steps])
    )
    new_status["conditions"] = status.merge_conditions(
        prior_conditions, desired, now=now, generation=generation
    )
    return new_status
