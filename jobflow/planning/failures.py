"""Failed attempts: what the pod failure policy says of one, and what becomes of each failure
of a pass (a retry at a deterministic time, or the end of the step).

Retries need a retryPolicy with retries left and the flow's ``backoffLimit`` not used up; a
pod-failure-policy ``Ignore`` retries without charging either (up to MAX_IGNORED_RETRIES);
``FailJob`` ends the step at once; every retry is cancelled when the flow is failing. A retry
is due at the failure's own time plus the backoff delay, rounded up to a second, so planning
again after a lost status write gives the same time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from jobflow import artifacts, decoded, jobs
from jobflow.jobs import ObservedJob
from jobflow.spec import PodFailureAction, PodFailureRule, RetryPolicy
from jobflow.stepstate import Event, StepState

# Safety net for pod-failure-policy Ignore: those retries are not charged to any limit, so a
# step that always fails with an ignored exit code would otherwise loop forever.
MAX_IGNORED_RETRIES: Final = 20
_NO_POLICY: Final = RetryPolicy.read({})  # the delay of an Ignore retry without a retryPolicy


@dataclass(frozen=True)
class Failure:
    """A finished-badly attempt seen in this pass, before retries are decided."""

    step: StepState
    at: datetime
    reason: str
    message: str
    action: PodFailureAction


def pod_failure_action(
    rules: Sequence[PodFailureRule], observed: ObservedJob, outcome: jobs.JobOutcome
) -> PodFailureAction:
    """The pod failure policy's verdict on a failed attempt whose pods have been read."""
    if not rules:
        return PodFailureAction.COUNT
    if outcome.reason == "DeadlineExceeded":
        return (
            PodFailureAction.COUNT
        )  # the Job's own activeDeadlineSeconds: no pod exit code to match
    code = observed.exit_code
    if code is None:
        return PodFailureAction.COUNT  # the pods were gone or said nothing
    for rule in rules:
        if rule.matches(code):
            return rule.action
    return PodFailureAction.COUNT


def init_failure(step: Mapping[str, object], observed: ObservedJob) -> str:
    """What a failed init container did wrong, in the words a user acts on: which input
    artifact could not be downloaded from where, with curl's own last words."""
    container = observed.failed_init_container or ""
    said = (observed.termination_message or "").strip()
    tail = f": {said.splitlines()[-1][:300]}" if said else ""
    artifact = artifacts.fetched_by(step, container)
    if artifact is not None:
        name = decoded.string(artifact.get("name")) or "?"
        url = decoded.string(decoded.path(artifact, "http", "url")) or "?"
        return (
            f"input artifact {name!r} could not be downloaded from {url} "
            f"(exit code {observed.exit_code}{tail})"
        )
    return f"init container {container!r} failed (exit code {observed.exit_code}{tail})"


def decide(
    failures: Sequence[Failure],
    steps: Sequence[StepState],
    *,
    backoff_limit: int,
    may_retry: bool,
    stopping: bool,
) -> list[Event]:
    """Turn this pass's failed attempts into retries or final failures (spec order)."""
    total_retries = sum(s.retries for s in steps)
    retrying: list[tuple[Failure, bool]] = []  # (failure, charged to the limits)
    final: list[Failure] = []
    for failure in sorted(failures, key=lambda f: f.step.index):
        step = failure.step
        step.fail(failure.reason, failure.message, at=decoded.format_time(failure.at))
        if failure.action == PodFailureAction.FAIL_JOB or not may_retry:
            final.append(failure)
            continue
        if failure.action == PodFailureAction.IGNORE:
            ignored = step.run_attempts - 1 - step.retries
            if ignored < MAX_IGNORED_RETRIES:
                retrying.append((failure, False))
            else:
                step.message = f"{step.message}; {MAX_IGNORED_RETRIES} ignored failures, giving up"
                final.append(failure)
            continue
        limit = step.spec.retry_limit
        if step.retries < limit and total_retries < backoff_limit:
            total_retries += 1
            retrying.append((failure, True))
            continue
        if step.retries < limit:
            step.message = f"{step.message}; flow backoffLimit {backoff_limit} reached"
        elif limit:
            step.message = f"{step.message}; retry limit {limit} reached"
        final.append(failure)

    retrying_steps = {id(f.step) for f, _ in retrying}
    # A failing DAG never cancels a finally step's retry (planning.finale); a stop does.
    failing = stopping or any(
        s.is_blocking_failure
        for s in steps
        if id(s) not in retrying_steps and not s.spec.is_finally
    )
    events: list[Event] = []
    for failure, counted in retrying:
        step = failure.step
        if stopping if step.spec.is_finally else failing:
            step.message = f"{step.message}; not retried: the flow is failing"
            final.append(failure)
            continue
        policy = step.spec.retry or _NO_POLICY
        delay = policy.delay(step.run_attempts - 1)
        due = decoded.ceil_seconds(failure.at + timedelta(seconds=delay))
        if counted:
            step.retries += 1
        charged = (
            f"retry {step.retries}/{step.spec.retry_limit}"
            if counted
            else "retry not counted (pod failure policy Ignore)"
        )
        events.append(
            step.wait_retry(
                due=decoded.format_time(due),
                reason=failure.reason,
                message=failure.message,
                charged=charged,
            )
        )
    for failure in sorted(final, key=lambda f: f.step.index):
        step = failure.step
        events.append(
            Event(
                "Warning", "StepFailed", f"step {step.name} failed ({step.reason}): {step.message}"
            )
        )
    return events
