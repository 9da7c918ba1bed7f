"""One step's working state during a planner pass, and its transitions, each written once.

A transition sets every field a phase change implies (phase, reason, message, times, the retry
timer) and returns the Event that says so; the pass collects the events. Nothing else assigns
``phase``: a new way for a step to end is a new method here, not six edits elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from jobflow import artifacts, decoded, fanout, phases
from jobflow.phases import StepPhase
from jobflow.spec import StepSpec


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(slots=True)
class StepState:
    """A step's status entry, being updated by this pass."""

    spec: StepSpec
    phase: str = StepPhase.PENDING
    attempts: int = 0
    retries: int = 0
    job_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    next_attempt_time: str | None = None
    outputs: dict[str, str] | None = None
    # Running because of a Job the prior status did not record (adopted in this pass).
    adopted: bool = False
    # The attempt the current run of the step began with: 0, or its attempts when a retry
    # request reset it (attempts keep their numbering, so Job names stay unique).
    first_attempt: int = 0
    # Who decided a Manual step with an approval policy (jobflow.approvals): [{user, time}],
    # and the rejecting user {user, time}; recorded by the webhook, shown in the status.
    approved_by: list[dict[str, str]] | None = None
    rejected_by: dict[str, str] | None = None
    # Fan-out (jobflow.fanout): an item's index (its state is a StepState of the same spec),
    # and a fan-out step's items once it started (None before).
    item: int | None = None
    items: list[StepState] | None = None

    @property
    def name(self) -> str:
        """The step's name; an item's is ``step[i]`` (its key for Jobs, events, messages)."""
        if self.item is not None:
            return fanout.item_key(self.spec.name, self.item)
        return self.spec.name

    @property
    def index(self) -> int:
        return self.spec.index

    # -- what the step is --

    @property
    def run_attempts(self) -> int:
        """Attempts made since the step last started running (a retry request resets it)."""
        return max(self.attempts - self.first_attempt, 0)

    @property
    def is_terminal(self) -> bool:
        return self.phase in phases.TERMINAL_STEP_PHASES

    @property
    def is_active(self) -> bool:
        """Its attempt's Job exists and has not finished: Running, or Queued (suspended)."""
        return self.phase in (StepPhase.RUNNING, StepPhase.QUEUED)

    @property
    def is_waiting_retry(self) -> bool:
        return self.phase == StepPhase.PENDING and self.reason == phases.RETRY_BACKOFF

    @property
    def is_blocking_failure(self) -> bool:
        """Failed for good without continueOnFailure: the flow will fail."""
        return self.phase == StepPhase.FAILED and not self.spec.continue_on_failure

    @property
    def satisfies_dependants(self) -> bool:
        return self.phase in (StepPhase.SUCCEEDED, StepPhase.SKIPPED) or (
            self.phase == StepPhase.FAILED and self.spec.continue_on_failure
        )

    # -- transitions --

    def start(self, *, job_name: str, at: str) -> Event:
        """A new attempt: its Job is being created."""
        attempt = self.attempts
        self.attempts = attempt + 1
        self.phase = StepPhase.RUNNING
        self.job_name = job_name
        self.start_time = at
        self.completion_time = None
        self.reason = None
        self.message = None
        self.next_attempt_time = None
        self.exit_code = None
        self.outputs = None
        return Event(
            "Normal",
            "StepStarted",
            f"step {self.name} started (attempt {attempt + 1}, Job {job_name})",
        )

    def succeed(
        self,
        *,
        at: str,
        reason: str | None = None,
        message: str | None = None,
        event: Event | None = None,
    ) -> Event:
        self.phase = StepPhase.SUCCEEDED
        self.start_time = self.start_time or at
        self.completion_time = at
        self.reason = reason
        self.message = message
        self.next_attempt_time = None
        return event or Event("Normal", "StepSucceeded", f"step {self.name} succeeded")

    def fail(
        self,
        reason: str,
        message: str,
        *,
        at: str,
        started: bool = False,
        event: Event | None = None,
    ) -> Event:
        """Failed for good (retries, if any, were decided before). ``started``: the step ends
        at the moment it would have started (no attempt ran), so it gets a startTime too."""
        self.phase = StepPhase.FAILED
        self.reason = reason
        self.message = message
        if started:
            self.start_time = self.start_time or at
        self.completion_time = at
        self.next_attempt_time = None
        return event or Event(
            "Warning", "StepFailed", f"step {self.name} failed ({reason}): {message}"
        )

    def give_up_retry(
        self, why: str, *, reason: str | None = None, event_why: str | None = None
    ) -> Event:
        """A step waiting for its next attempt fails instead (its last attempt's time stays)."""
        self.phase = StepPhase.FAILED
        self.message = f"{self.message}; not retried: {why}"
        if reason is not None:
            self.reason = reason
        self.next_attempt_time = None
        return Event("Warning", "StepFailed", f"step {self.name} not retried: {event_why or why}")

    def skip(self, reason: str, message: str, *, at: str) -> Event:
        self.phase = StepPhase.SKIPPED
        self.reason = reason
        self.message = message
        self.completion_time = at
        self.next_attempt_time = None
        return Event("Normal", "StepSkipped", f"step {self.name} skipped ({reason}): {message}")

    def wait_retry(self, *, due: str, reason: str, message: str, charged: str) -> Event:
        """The last attempt failed (``reason``: ``message``); the next one starts at ``due``."""
        self.phase = StepPhase.PENDING
        self.reason = phases.RETRY_BACKOFF
        self.next_attempt_time = due
        self.message = (
            f"attempt {self.attempts} failed ({reason}: {message}); next attempt at {due}"
        )
        return Event(
            "Normal",
            "StepRetrying",
            f"step {self.name} attempt {self.attempts} failed ({reason}); {charged} at {due}",
        )

    def await_approval(self, prompt: str, *, hint: str, at: str) -> Event:
        self.phase = StepPhase.PENDING_APPROVAL
        self.reason = phases.AWAITING_APPROVAL
        self.message = f"{prompt} ({hint})"
        self.start_time = at
        return Event("Normal", "AwaitingApproval", f"step {self.name}: {prompt}")

    def queue(self, message: str) -> Event | None:
        """Its Job is suspended (Kueue, or another admission controller): it waits in a queue.
        The Event only on the transition; the message may be refreshed without one."""
        moved = self.phase != StepPhase.QUEUED
        self.phase = StepPhase.QUEUED
        self.reason = phases.JOB_SUSPENDED
        self.message = message
        if not moved:
            return None
        return Event("Normal", "StepQueued", f"step {self.name}: {message}")

    def admit(self) -> Event:
        """Its suspended Job was resumed (admitted): Running again."""
        self.phase = StepPhase.RUNNING
        self.reason = None
        self.message = None
        return Event("Normal", "StepAdmitted", f"step {self.name}: its Job was admitted and runs")

    def hold(self, reason: str, message: str) -> None:
        """Ready but held by a cap (parallelism, the controller's): stays Pending, says why. A
        step waiting for its retry keeps its RetryBackoff reason (its retry is charged)."""
        if self.is_waiting_retry:
            return
        self.reason = reason
        self.message = message

    def rerun(self, why: str) -> None:
        """A retry request runs the step again: Pending (reason Retried), its attempts keep
        counting (the next Job is a new attempt), its retries start again from zero."""
        self.phase = StepPhase.PENDING
        self.first_attempt = self.attempts
        self.retries = 0
        self.job_name = None
        self.start_time = None
        self.completion_time = None
        self.exit_code = None
        self.reason = phases.RETRIED
        self.message = why
        self.next_attempt_time = None
        self.outputs = None
        self.approved_by = None
        self.rejected_by = None
        self.items = None  # a fan-out runs every item again, attempts numbered from here

    def adopt(self, *, attempt: int, job_name: str, created: str) -> None:
        """Running attempt ``attempt`` whose Job the status did not record (a lost write)."""
        # The Jobs are the record: attempt ``attempt`` exists, so every attempt before it
        # failed and was retried. The status already decided the retries up to the one it
        # waits for (RetryBackoff charged that one; a Running or new step has decided one per
        # attempt after the first); every later attempt is a retry it missed: charge exactly
        # those, or a lost write would buy the step extra retries (or, charged twice, cost it
        # one). An Ignore retry the status missed is charged too: the conservative side of a
        # rare race (its pods would have to be read again to know).
        # A Pending step has decided the attempt it waits for (a RetryBackoff, or the first
        # attempt of a run a retry request began); a Running one, one per attempt after its first.
        decided = self.attempts if self.phase == StepPhase.PENDING else max(self.attempts - 1, 0)
        self.retries += max(attempt - decided, 0)
        self.attempts = attempt + 1
        self.adopted = True
        self.phase = StepPhase.RUNNING
        self.job_name = job_name
        self.start_time = created
        self.completion_time = None
        self.reason = None
        self.message = None
        self.next_attempt_time = None
        self.exit_code = None

    # -- status entries --

    def restore(self, entry: Mapping[str, object]) -> None:
        phase = decoded.string(entry.get("phase"))
        if phase in phases.STEP_PHASES:
            self.phase = phase
        self.attempts = max(decoded.integer(entry.get("attempts")) or 0, 0)
        self.retries = max(decoded.integer(entry.get("retries")) or 0, 0)
        self.job_name = decoded.string(decoded.path(entry, "jobRef", "name"))
        self.start_time = decoded.string(entry.get("startTime"))
        self.completion_time = decoded.string(entry.get("completionTime"))
        self.exit_code = decoded.integer(entry.get("exitCode"))
        self.reason = decoded.string(entry.get("reason"))
        self.message = decoded.string(entry.get("message"))
        self.next_attempt_time = decoded.string(entry.get("nextAttemptTime"))
        self.first_attempt = min(
            max(decoded.integer(entry.get("firstAttempt")) or 0, 0), self.attempts
        )
        params = decoded.path(entry, "outputs", "parameters")
        if params is not None and isinstance(params, Mapping):
            self.outputs = decoded.string_map(params)
        # Approvals and fan-out items: most entries have neither (each read costs a pass ~1%).
        if "approvedBy" in entry:
            approved = [decoded.string_map(a) for a in decoded.items(entry.get("approvedBy"))]
            self.approved_by = approved or None
        if "rejectedBy" in entry:
            self.rejected_by = decoded.string_map(entry.get("rejectedBy")) or None
        if self.spec.is_fanout:
            items = decoded.mapping_or_none(entry.get("items"))
            if items is not None:
                self.items = self._restore_items(items)

    def new_items(self, count: int, *, first_attempt: int = 0) -> list[StepState]:
        """Pending item states for a fan-out step (attempt numbering starts at
        ``first_attempt``: a retry request keeps the numbers of earlier Jobs unused)."""
        return [
            StepState(self.spec, attempts=first_attempt, first_attempt=first_attempt, item=i)
            for i in range(count)
        ]

    def _restore_items(self, raw: Mapping[str, object]) -> list[StepState]:
        count = max(decoded.integer(raw.get("count")) or 0, 0)
        base = max(decoded.integer(raw.get("firstAttempt")) or 0, 0)
        codes = decoded.string(raw.get("phases")) or ""
        items = self.new_items(count, first_attempt=base)
        per_item = fanout.uncollect(self.outputs, count)
        for item, code in zip(items, codes, strict=False):
            item.phase, item.reason = fanout.code_phase(code)
            if code not in ("P", "K"):
                item.attempts = base + 1
            if item.phase == StepPhase.SUCCEEDED:
                item.outputs = per_item[item.item or 0]
        for extra in decoded.items(raw.get("detail")):
            index = decoded.integer(extra.get("i"))
            if index is None or not 0 <= index < count:
                continue
            item = items[index]
            attempts = decoded.integer(extra.get("a"))
            item.attempts = max(item.attempts if attempts is None else attempts, base)
            item.retries = max(decoded.integer(extra.get("r")) or 0, 0)
            item.start_time = decoded.string(extra.get("t"))
            item.next_attempt_time = decoded.string(extra.get("n"))
            item.reason = decoded.string(extra.get("reason")) or item.reason
            item.message = decoded.string(extra.get("message"))
        return items

    def _items_status(self, items: list[StepState]) -> dict[str, object]:
        """The compact form (jobflow.fanout): a character per item, detail where needed."""
        base = items[0].first_attempt if items else 0
        detail: list[dict[str, object]] = []
        codes: list[str] = []
        for item in items:
            code = fanout.phase_code(item.phase, item.reason)
            codes.append(code)
            usual = base if code in ("P", "K") else base + 1
            extra: dict[str, object] = {}
            if item.attempts != usual:
                extra["a"] = item.attempts
            if item.retries:
                extra["r"] = item.retries
            if code in ("R", "Q") and item.start_time:
                extra["t"] = item.start_time
            if code == fanout.RETRY_CODE and item.next_attempt_time:
                extra["n"] = item.next_attempt_time
            # (a skipped item's why is the step's message: 1,000 of them would not fit)
            if code in ("F", fanout.RETRY_CODE) and item.reason:
                extra["reason"] = item.reason
                if item.message:
                    extra["message"] = item.message[: fanout.MAX_ITEM_MESSAGE]
            if extra:
                detail.append({"i": item.item, **extra})
        out: dict[str, object] = {"count": len(items), "phases": "".join(codes)}
        if base:
            out["firstAttempt"] = base
        if detail:
            out["detail"] = detail
        return out

    def to_status(self, namespace: str, *, flow_name: str = "") -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "phase": str(self.phase)}
        if self.spec.is_finally:
            out["finally"] = True
        out["attempts"] = self.attempts
        if self.first_attempt:
            out["firstAttempt"] = self.first_attempt
        if self.retries:
            out["retries"] = self.retries
        if self.job_name is not None:
            out["jobRef"] = {"name": self.job_name, "namespace": namespace}
        optional: dict[str, object | None] = {
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "message": self.message,
            "nextAttemptTime": self.next_attempt_time,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.items is not None:
            out["items"] = self._items_status(self.items)
        if self.outputs is not None:
            out["outputs"] = {"parameters": dict(self.outputs)}
        if self.approved_by:
            out["approvedBy"] = [dict(a) for a in self.approved_by]
        if self.rejected_by:
            out["rejectedBy"] = dict(self.rejected_by)
        # Where a succeeded step's artifacts are in the workspace claim (derived from the spec,
        # so every pass writes the same).
        if flow_name and self.phase == StepPhase.SUCCEEDED:
            files = artifacts.status_entries(self.spec.raw, flow_name)
            if files:
                out["outputs"] = {**decoded.mapping(out.get("outputs")), "artifacts": files}
        return out
