"""Step kinds: what a step of each ``type`` is and how it runs, behind one small interface.

Everything that differs between kinds lives in its class here: the facts validation, the
graph and ``zen-flow approve`` read (``needs_template``, ``awaits_approval``) and the two things
the planner asks of a ready or running step (``start``, ``refresh``), written against the
``PassContext`` protocol so this module imports nothing of the planner at run time. A new kind
is a new class here plus its tests; the planner, validation, approve and graph do not change.

- ``Job``: a ready step creates a Job for its next attempt (``names.job_name``) from its
  template with inputs resolved; a running step is read from its Job's conditions: success
  collects outputs, failure (after its pods are read once) becomes a failed attempt judged by
  the pod failure policy, ``timeoutSeconds`` deletes the Job and fails the attempt, and a Job
  the API server refused for good (``PassContext.rejected``) fails it with the server's message.
- ``Manual``: a ready step waits in PendingApproval until the annotation
  ``approve.workflow.kube-zen.io/<step>`` says "true" (Succeeded) or "false" (Failed, Rejected).
  With an ``approval`` policy (jobflow.approvals) only the admission webhook's records count:
  a quorum of distinct allowed users approves (their inputs become the step's output
  parameters), an allowed rejection rejects, and ``timeoutSeconds`` applies ``onTimeout``
  (reason ApprovalTimeout).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar, Final, Protocol

from jobflow import approvals, decoded, defaults, jobs, names, parameters, phases, requests
from jobflow import outputs as jobflow_outputs
from jobflow.jobs import ObservedJob
from jobflow.spec import FlowSpec, PodFailureAction
from jobflow.stepstate import Event, StepState

# What a step's message quotes of its failed container: a runtime error or a traceback's last
# line fits; a whole log tail (FallbackToLogsOnError keeps 80 lines) would bury the cause.
MAX_CONTAINER_WORDS: Final = 300


class Slots(Protocol):
    """The room for new Jobs (jobflow.planning.governance.Slots)."""

    def take(self, step: StepState) -> bool: ...
    def give_back(self) -> None: ...


class PassContext(Protocol):
    """What a kind may use of the pass that plans its step."""

    @property
    def slots(self) -> Slots: ...
    def items_of(self, step: StepState) -> list[object]: ...
    def is_failing(self) -> bool: ...
    def quiet(self, action: Callable[[], object]) -> None: ...

    @property
    def flow(self) -> FlowSpec: ...
    @property
    def now(self) -> datetime: ...
    @property
    def now_text(self) -> str: ...
    @property
    def steps(self) -> Sequence[StepState]: ...
    @property
    def observed(self) -> Mapping[str, Mapping[int, ObservedJob]]: ...
    @property
    def rejected(self) -> Mapping[str, str]: ...
    @property
    def retried_at(self) -> str | None: ...

    def emit(self, event: Event) -> None: ...
    def wake_at(self, moment: datetime) -> None: ...
    def create_job(self, step: StepState, manifest: Mapping[str, object]) -> None: ...
    def delete_job(self, name: str) -> None: ...
    def need_pod_details(self, job_name: str) -> None: ...
    def job_manifest(self, step: StepState, attempt: int) -> dict[str, object]: ...
    def fail_attempt(
        self,
        step: StepState,
        *,
        at: datetime,
        reason: str,
        message: str,
        action: PodFailureAction,
    ) -> None: ...
    def pod_failure_action(
        self, observed: ObservedJob, outcome: jobs.JobOutcome
    ) -> PodFailureAction: ...
    def init_failure(self, step: StepState, observed: ObservedJob) -> str: ...


class StepKind:
    """The interface; the defaults are a Job step's facts."""

    name: ClassVar[str]
    needs_template: ClassVar[bool] = True  # a batch/v1 Job template is required (else refused)
    # What validation says when the template rule is broken (a template missing, or present).
    template_rule: ClassVar[str] = (
        "a Job step needs a template (a batch/v1 Job); use type: Manual for an approval step"
    )
    awaits_approval: ClassVar[bool] = False  # a person decides its outcome
    runs_jobs: ClassVar[bool] = True  # its attempts are Jobs (adopted, timed out, stopped)
    # Its Jobs take their slots themselves (a fan-out's items), not one per step.
    takes_own_slots: ClassVar[bool] = False

    def start(self, ctx: PassContext, step: StepState) -> bool:
        """The step is ready (or its retry is due, or it awaits a decision): act; True when its
        phase changed."""
        raise NotImplementedError

    def refresh(self, ctx: PassContext, step: StepState) -> None:
        """The step is Running: read what its attempt did."""


class JobKind(StepKind):
    name = "Job"

    def start(self, ctx: PassContext, step: StepState) -> bool:
        attempt = step.attempts
        try:
            manifest = ctx.job_manifest(step, attempt)
        except parameters.ParameterError as exc:
            # Deterministic: retrying cannot help, so the step fails at once (no Job).
            event = step.fail(
                phases.INPUT_ERROR,
                str(exc),
                at=ctx.now_text,
                started=True,
                event=Event("Warning", "StepFailed", f"step {step.name}: {exc}"),
            )
            ctx.emit(event)
            return True
        ctx.create_job(step, manifest)
        job_name = names.job_name(ctx.flow.name, ctx.flow.uid, step.name, attempt)
        ctx.emit(step.start(job_name=job_name, at=ctx.now_text))
        # The nearer of its run and pending deadlines, as the next pass computes them.
        budgets = [step.spec.timeout_seconds, step.spec.pending_timeout_seconds]
        seconds = [b for b in budgets if b is not None]
        if seconds:
            ctx.wake_at(decoded.truncate(ctx.now) + timedelta(seconds=min(seconds)))
        return True

    def refresh(self, ctx: PassContext, step: StepState) -> None:
        attempt = step.attempts - 1
        if attempt < 0:
            # Running without a Job recorded: status from elsewhere; start attempt 0 properly.
            step.phase = phases.StepPhase.PENDING
            return
        observed = ctx.observed.get(step.name, {}).get(attempt)
        job_name = names.job_name(ctx.flow.name, ctx.flow.uid, step.name, attempt)
        step.job_name = step.job_name or job_name
        outcome = jobs.job_outcome(observed.job) if observed is not None else None
        if observed is not None and outcome is not None and outcome.state == "succeeded":
            self._succeeded(ctx, step, observed, outcome)
            return
        if observed is not None and outcome is not None and outcome.state == "failed":
            self._failed(ctx, step, observed, outcome)
            return
        refusal = ctx.rejected.get(job_name) if observed is None else None
        if refusal is not None:
            self._rejected(ctx, step, job_name, refusal)
            return
        job = observed.job if observed is not None else None
        self._follow_queue(ctx, step, job)
        if self._timed_out(ctx, step, job):
            return
        if observed is None:
            # The Job of a Running step is missing (deleted by hand, or the cache has not caught
            # up with our own create): ensure it exists under its deterministic name. If it does
            # exist, the create is AlreadyExists, which the runtime treats as adoption.
            # Its inputs resolved when it first started; if they no longer do, leave it be.
            with contextlib.suppress(parameters.ParameterError):
                ctx.create_job(step, ctx.job_manifest(step, attempt))

    def _follow_queue(
        self, ctx: PassContext, step: StepState, job: Mapping[str, object] | None
    ) -> None:
        """Queued while its Job is suspended (by Kueue or any admission controller: zen-flow
        never sets or clears ``spec.suspend``), Running again once it is resumed."""
        if job is None:
            return  # not seen yet: nothing new to say
        if jobs.is_suspended(job):
            since = jobs.waiting_since(job, decoded.parse_time(step.start_time) or ctx.now)
            queue = step.spec.queue_name
            where = f" in queue {queue}" if queue else ""
            event = step.queue(
                f"Job {step.job_name} is suspended{where} since {decoded.format_time(since)}:"
                " waiting for admission"
            )
            if event is not None:
                ctx.emit(event)
        elif step.phase == phases.StepPhase.QUEUED:
            ctx.emit(step.admit())

    def _timed_out(
        self, ctx: PassContext, step: StepState, job: Mapping[str, object] | None
    ) -> bool:
        """Fail the attempt past its run or pending deadline (True), else wake at the nearer.

        Run: ``timeoutSeconds`` from when its Job started (``status.startTime``, set when it
        is admitted; the step's start until the Job says), never while it is suspended.
        Pending: ``pendingTimeoutSeconds`` while no pod of it has run, from its creation or
        last suspension/resumption (``jobs.waiting_since``)."""
        timeout = step.spec.timeout_seconds
        pending = step.spec.pending_timeout_seconds
        if timeout is None and pending is None:
            return False
        created = decoded.parse_time(step.start_time)
        if created is None:
            return False
        budgets: list[tuple[datetime, str, str]] = []  # (deadline, reason, message)
        suspended = job is not None and jobs.is_suspended(job)
        if timeout is not None and not suspended:
            # The later of its start and its last resumption: until the Job controller resets
            # startTime on resume, a preempted Job still carries the one of its first run.
            since = max(
                jobs.waiting_since(job, created), (jobs.started_at(job) if job else None) or created
            )
            budgets.append(
                (
                    since + timedelta(seconds=timeout),
                    phases.TIMEOUT,
                    f"exceeded timeoutSeconds={timeout}",
                )
            )
        if pending is not None and (job is None or not jobs.has_run(job)):
            since = jobs.waiting_since(job, created)
            state = "suspended" if suspended else "its pods had not started"
            budgets.append(
                (
                    since + timedelta(seconds=pending),
                    phases.PENDING_TIMEOUT,
                    f"did not start within pendingTimeoutSeconds={pending} ({state})",
                )
            )
        if not budgets:
            return False
        deadline, reason, message = min(budgets)
        # A Job is deleted for a timeout only once a persisted status records its attempt: if
        # this pass's status write were lost after the delete, nothing would remember the
        # attempt and it would run again. An adopted step is timed out by the next pass.
        if ctx.now < deadline or step.adopted:
            ctx.wake_at(max(deadline, ctx.now))
            return False
        ctx.delete_job(step.job_name or "")
        ctx.emit(
            Event(
                "Warning",
                "StepTimedOut" if reason == phases.TIMEOUT else "StepPendingTimedOut",
                f"step {step.name} {message}; deleting Job {step.job_name}",
            )
        )
        ctx.fail_attempt(
            step, at=deadline, reason=reason, message=message, action=PodFailureAction.COUNT
        )
        return True

    def _rejected(self, ctx: PassContext, step: StepState, job_name: str, refusal: str) -> None:
        """The API server refused this attempt's Job for good: a failed attempt (retries
        apply), at the attempt's own start so a pass planned again gives the same retry time."""
        ctx.emit(
            Event(
                "Warning",
                phases.CREATE_REJECTED,
                f"step {step.name}: the API server refused Job {job_name}: {refusal}",
            )
        )
        ctx.fail_attempt(
            step,
            at=decoded.parse_time(step.start_time) or decoded.truncate(ctx.now),
            reason=phases.CREATE_REJECTED,
            message=refusal,
            action=PodFailureAction.COUNT,
        )

    def _failed(
        self,
        ctx: PassContext,
        step: StepState,
        observed: ObservedJob,
        outcome: jobs.JobOutcome,
    ) -> None:
        if not observed.pod_details_read:
            # the exit code explains the failure (status.steps[].exitCode, a failed download)
            # and the pod failure policy matches on it: read the pods once
            ctx.need_pod_details(step.job_name or "")
            return
        action = ctx.pod_failure_action(observed, outcome)
        if observed.exit_code is not None:
            step.exit_code = observed.exit_code
        detail = outcome.message or outcome.reason or "the Job failed"
        if observed.failed_init_container is not None:
            detail = f"{detail}: {ctx.init_failure(step, observed)}"
        elif observed.exit_code is not None:
            detail = f"{detail} (exit code {observed.exit_code}){_words(observed)}"
        if action == PodFailureAction.FAIL_JOB:
            reason = phases.POD_FAILURE_POLICY
            detail = (
                f"exit code {observed.exit_code} matched a FailJob rule: not retried"
                f"{_words(observed)}"
            )
        else:
            reason = phases.JOB_FAILED
        ctx.fail_attempt(
            step,
            at=outcome.finished_at or decoded.truncate(ctx.now),
            reason=reason,
            message=detail,
            action=action,
        )

    def _succeeded(
        self,
        ctx: PassContext,
        step: StepState,
        observed: ObservedJob,
        outcome: jobs.JobOutcome,
    ) -> None:
        # Outputs are collected by jobflow.outputs; a missing non-optional value or one over a
        # cap fails the attempt (retries apply).
        try:
            values = _outputs(ctx, step, observed)
        except jobflow_outputs.OutputError as exc:
            ctx.fail_attempt(
                step,
                at=outcome.finished_at or decoded.truncate(ctx.now),
                reason=phases.OUTPUT_ERROR,
                message=str(exc),
                action=PodFailureAction.COUNT,
            )
            return
        if values is None:
            ctx.need_pod_details(step.job_name or "")
            return
        if observed.exit_code is not None:
            step.exit_code = observed.exit_code
        if values:
            step.outputs = values
        ctx.emit(step.succeed(at=decoded.format_time(outcome.finished_at or ctx.now)))


def _words(observed: ObservedJob) -> str:
    """``": <what the failed container said>"``, or nothing when it said nothing.

    The Job's condition says only "reached the specified backoff limit"; the cause is the
    container's own (a missing binary's "StartError: exec: ... not found in $PATH", an
    application's termination message or, with FallbackToLogsOnError, its log's tail). Its
    first and last non-empty lines are kept, at most ``MAX_CONTAINER_WORDS`` characters (the
    middle of a longer text goes: a runtime error ends with its cause)."""
    lines = [line.strip() for line in (observed.termination_message or "").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    if len(text) > MAX_CONTAINER_WORDS:
        keep = (MAX_CONTAINER_WORDS - len(" ... ")) // 2
        text = f"{text[:keep]} ... {text[-keep:]}"
    return f": {text}"


def _outputs(ctx: PassContext, step: StepState, observed: ObservedJob) -> dict[str, str] | None:
    """Output parameters of a succeeded step; None while the termination message is needed.

    Raises ``outputs.OutputError`` (missing value, over a cap)."""
    raw = step.spec.raw
    if not decoded.path(raw, "outputs", "parameters"):
        return {}
    if (
        observed.termination_message is None
        and not observed.pod_details_read
        and jobflow_outputs.needs_termination_message(raw)
    ):
        return None
    values = jobflow_outputs.collect(
        raw, job=observed.job, termination_message=observed.termination_message
    )
    jobflow_outputs.check_flow_budget(
        values, [s.outputs for s in ctx.steps if s is not step and s.outputs]
    )
    return values


class ManualKind(StepKind):
    name = "Manual"
    needs_template = False
    template_rule = "a Manual step waits for approval and runs nothing; remove its template"
    awaits_approval = True
    runs_jobs = False

    def start(self, ctx: PassContext, step: StepState) -> bool:
        """Apply an approval or rejection; otherwise wait for one (once)."""
        policy = approvals.Policy.read(step.spec.raw)
        if policy is not None:
            return self._decide(ctx, step, policy)
        key = names.approve_annotation(step.name)
        verdict = approval(ctx.flow.annotations.get(key))
        # Who set the annotation, when the webhook recorded it (shown, never required).
        entries = approvals.read_records(ctx.flow.annotations, step.name)
        last = entries[-1] if entries else None
        if verdict is True:
            if last is not None and last.decision == approvals.APPROVE:
                step.approved_by = [{"user": last.user, "time": last.time}]
            ctx.emit(
                step.succeed(
                    at=ctx.now_text,
                    reason=phases.APPROVED,
                    message=f"approved by annotation {key}" + requests.by(_user(last)),
                    event=Event(
                        "Normal",
                        "StepApproved",
                        f"step {step.name} approved{requests.by(_user(last))}",
                    ),
                )
            )
            return True
        if verdict is False:
            if last is not None and last.decision == approvals.REJECT:
                step.rejected_by = {"user": last.user, "time": last.time}
            ctx.emit(
                step.fail(
                    phases.REJECTED,
                    f"rejected by annotation {key}" + requests.by(_user(last)),
                    at=ctx.now_text,
                    started=True,
                    event=Event(
                        "Warning",
                        "StepRejected",
                        f"step {step.name} rejected{requests.by(_user(last))}",
                    ),
                )
            )
            return True
        if step.phase == phases.StepPhase.PENDING_APPROVAL:
            return False
        prompt = step.spec.message or f"waiting for manual approval of step {step.name}"
        hint = f'annotate {key}="true" to approve, "false" to reject'
        ctx.emit(step.await_approval(prompt, hint=hint, at=ctx.now_text))
        return True

    def _decide(self, ctx: PassContext, step: StepState, policy: approvals.Policy) -> bool:
        """A step with an approval policy: only the webhook's records count (who, when, with
        which inputs); a quorum of distinct users approves, any allowed rejection rejects, and
        past timeoutSeconds onTimeout applies. Every time comes from a record or from the
        status (the wait's start), so a restarted controller decides the same."""
        entries = approvals.read_records(ctx.flow.annotations, step.name)
        creator = ctx.flow.annotations.get(approvals.CREATED_BY_ANNOTATION)
        count = approvals.tally(policy, entries, since=ctx.retried_at, creator=creator)
        known = {a.get("user") for a in step.approved_by or ()}
        for entry in count.approvals:
            if entry.user not in known:
                ctx.emit(
                    Event(
                        "Normal",
                        "ApprovalRecorded",
                        f"step {step.name} approved by {entry.user} at {entry.time}"
                        f" ({len(known) + 1} of {policy.required})",
                    )
                )
                known.add(entry.user)
        step.approved_by = [{"user": e.user, "time": e.time} for e in count.approvals] or None
        if count.rejection is not None:
            who = count.rejection
            step.rejected_by = {"user": who.user, "time": who.time}
            ctx.emit(
                step.fail(
                    phases.REJECTED,
                    f"rejected by {who.user} at {who.time}",
                    at=ctx.now_text,
                    started=True,
                    event=Event(
                        "Warning", "StepRejected", f"step {step.name} rejected by {who.user}"
                    ),
                )
            )
            return True
        if count.is_approved:
            return self._approved(ctx, step, policy, count)
        if step.phase != phases.StepPhase.PENDING_APPROVAL:
            prompt = step.spec.message or f"waiting for approval of step {step.name}"
            hint = f"{count.progress()}; approvers: {policy.who()}"
            ctx.emit(step.await_approval(prompt, hint=hint, at=ctx.now_text))
            changed = True
        else:
            prompt = step.spec.message or f"waiting for approval of step {step.name}"
            step.message = f"{prompt} ({count.progress()}; approvers: {policy.who()})"
            changed = False
        return self._timed_out(ctx, step, policy, count) or changed

    def _approved(
        self, ctx: PassContext, step: StepState, policy: approvals.Policy, count: approvals.Tally
    ) -> bool:
        users = ", ".join(e.user for e in count.approvals)
        step.outputs = count.inputs(policy) or None
        ctx.emit(
            step.succeed(
                at=ctx.now_text,
                reason=phases.APPROVED,
                message=f"approved by {users}",
                event=Event("Normal", "StepApproved", f"step {step.name} approved by {users}"),
            )
        )
        return True

    def _timed_out(
        self, ctx: PassContext, step: StepState, policy: approvals.Policy, count: approvals.Tally
    ) -> bool:
        """Past ``timeoutSeconds`` from the start of the wait: onTimeout (True); else wake
        then."""
        started = decoded.parse_time(step.start_time)
        if policy.timeout_seconds is None or started is None:
            return False
        deadline = started + timedelta(seconds=policy.timeout_seconds)
        if ctx.now < deadline:
            ctx.wake_at(deadline)
            return False
        at = decoded.format_time(deadline)
        what = f"no decision within approval.timeoutSeconds={policy.timeout_seconds}"
        if policy.on_timeout == approvals.APPROVE:
            step.outputs = count.inputs(policy) or None
            ctx.emit(
                step.succeed(
                    at=at,
                    reason=phases.APPROVAL_TIMEOUT,
                    message=f"{what} ({count.progress()}): approved (onTimeout Approve)",
                    event=Event(
                        "Normal",
                        "StepApprovalTimedOut",
                        f"step {step.name}: {what}; approved (onTimeout Approve)",
                    ),
                )
            )
            return True
        ctx.emit(
            step.fail(
                phases.APPROVAL_TIMEOUT,
                f"{what} ({count.progress()}): rejected (onTimeout Reject)",
                at=at,
                started=True,
                event=Event(
                    "Warning",
                    "StepApprovalTimedOut",
                    f"step {step.name}: {what}; rejected (onTimeout Reject)",
                ),
            )
        )
        return True


def _user(entry: approvals.Entry | None) -> str | None:
    return entry.user if entry is not None else None


def approval(value: str | None) -> bool | None:
    """An approval annotation's verdict: True, False, or None (absent or neither word)."""
    if value is None:
        return None
    text = value.strip().lower()
    return True if text == "true" else False if text == "false" else None


JOB: Final = JobKind()
MANUAL: Final = ManualKind()
KINDS: Final[Mapping[str, StepKind]] = {JOB.name: JOB, MANUAL.name: MANUAL}


def of(type_name: str | None) -> StepKind:
    """The kind of a step whose ``type`` is ``type_name`` (absent: the default, Job).

    An unknown type (refused by validation) reads as a Job, as the defaults would make it."""
    return KINDS.get(type_name or defaults.DEFAULT_STEP_TYPE, JOB)


def of_step(step: Mapping[str, object]) -> StepKind:
    """The kind of a raw step (``steps[]`` entry)."""
    value = step.get("type")
    return of(value if isinstance(value, str) else None)
