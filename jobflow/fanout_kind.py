"""The fan-out step: a Job step with ``withItems``/``withParam`` runs one Job per item.

Each item is a ``StepState`` of the step's spec with its ``item`` index (named ``step[i]``): the
Job kind starts and reads it exactly as a step (attempts, retries, timeouts, the pod failure
policy, outputs), so an item is retried alone. This kind drives the items and sums them up:

- ``start`` (the step is ready, or Running with items left): reads the items once, then starts
  Pending items (and due retries) while the step's ``parallelism``, the flow's parallelism and
  the controller's cap allow (each item Job takes a slot of ``PassContext.slots``).
- Failure: without ``continueOnFailure`` an item that failed for good (after its retries)
  stops new items from starting (they are Skipped; running ones finish) and the step Fails
  once nothing of it runs. With ``continueOnFailure`` every item runs; the step ends Failed
  when one failed (dependants still run: continueOnFailure) and the failed items' outputs are
  null. The flow failing or ending (stop, deadline) skips the items not started.
- ``settle`` (after the pass decided this pass's failed attempts): the step's attempts and
  retries are its items' (retries count against the flow's backoffLimit), its outputs the
  items' collected as JSON lists, and once every item ended it Succeeds, Fails (reason
  ItemFailed, the failed items named) or, when items were not started because the flow
  failed or ends, is Skipped (FlowFailed).
- Item start/success events are not emitted one by one (a 1,000-item fan-out would make 2,000
  Events): the step says when it fans out and how it ended; failures and retries still are.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Final

from jobflow import decoded, fanout, kinds, names, phases
from jobflow.kinds import PassContext, StepKind
from jobflow.phases import StepPhase
from jobflow.spec import StepSpec
from jobflow.stepstate import Event, StepState

ITEM_FAILED: Final = "ItemFailed"
# The order a fan-out's message counts its items in: the outcome first.
_PROGRESS_ORDER: Final = (
    StepPhase.SUCCEEDED,
    StepPhase.FAILED,
    StepPhase.RUNNING,
    StepPhase.QUEUED,
    StepPhase.PENDING,
    StepPhase.SKIPPED,
)
# How many failed items a step's message names before "and N more".
MAX_NAMED_ITEMS: Final = 5


class FanOutKind(StepKind):
    name = "Job"
    takes_own_slots = True

    def start(self, ctx: PassContext, step: StepState) -> bool:
        moved = False
        if step.items is None:
            try:
                count = len(ctx.items_of(step))
            except fanout.ItemsError as exc:
                ctx.emit(
                    step.fail(
                        phases.INPUT_ERROR,
                        str(exc),
                        at=ctx.now_text,
                        started=True,
                        event=Event("Warning", "StepFailed", f"step {step.name}: {exc}"),
                    )
                )
                return True
            step.items = step.new_items(count, first_attempt=step.first_attempt)
            step.phase = StepPhase.RUNNING
            step.start_time = ctx.now_text
            step.reason = step.message = None
            cap = step.spec.item_parallelism
            at_once = f", {cap} at a time" if cap is not None else ""
            ctx.emit(
                Event(
                    "Normal",
                    "StepStarted",
                    f"step {step.name} fans out over {count} items{at_once}",
                )
            )
            moved = True
        for item in step.items:
            adopt(ctx, item)
        self._start_items(ctx, step)
        return self.settle(ctx, step) or moved

    def _start_items(self, ctx: PassContext, step: StepState) -> None:
        items = step.items or []
        stopping = ctx.is_failing() or (
            not step.spec.continue_on_failure and any(i.is_blocking_failure for i in items)
        )
        if stopping:
            end_pending(ctx, step, reason=phases.FLOW_FAILED, why="another item or step failed")
            return
        if ctx.flow.suspend:
            return
        cap = step.spec.item_parallelism
        active = sum(1 for i in items if i.is_active)
        for item in items:
            if item.phase != StepPhase.PENDING:
                continue
            if item.is_waiting_retry:
                due = decoded.parse_time(item.next_attempt_time) or ctx.now
                if ctx.now < due:
                    continue  # its timer is set once the pass's sweeps settle (schedule)
            if cap is not None and active >= cap:
                item.hold(
                    phases.WAITING_FOR_PARALLELISM,
                    f"waiting for a free slot: the step's parallelism is {cap}",
                )
                continue
            if not ctx.slots.take(item):
                continue
            ctx.quiet(functools.partial(kinds.JOB.start, ctx, item))
            if item.is_active:
                active += 1
            else:
                ctx.slots.give_back()

    def refresh(self, ctx: PassContext, step: StepState) -> None:
        for item in step.items or []:
            adopt(ctx, item)
            if item.is_active:
                ctx.quiet(functools.partial(kinds.JOB.refresh, ctx, item))

    def settle(self, ctx: PassContext, step: StepState) -> bool:
        """Sum the items up into the step (see the module docstring); True when it ended."""
        items = step.items
        if items is None or step.is_terminal:
            return False
        step.retries = sum(i.retries for i in items)
        step.attempts = max([step.first_attempt, *(i.attempts for i in items)])
        declared = [
            n for n in (decoded.string(p.get("name")) for p in _declared_outputs(step.spec)) if n
        ]
        if declared:
            step.outputs = fanout.collect(
                declared, [i.outputs if i.phase == StepPhase.SUCCEEDED else None for i in items]
            )
        if not all(i.is_terminal for i in items):
            running = [i for i in items if i.is_active]
            held = not running and any(
                i.phase == StepPhase.PENDING and i.reason == phases.WAITING_FOR_CAPACITY
                for i in items
            )
            step.message = _progress(items)
            step.reason = None
            if held and not any(i.is_waiting_retry for i in items):
                # Nothing of it runs and its next items wait for --max-active-jobs: Queued, as
                # a step held by the controller's cap (the flow's phase and condition say so).
                step.phase = StepPhase.QUEUED
                step.reason = phases.WAITING_FOR_CAPACITY
                step.message = f"{step.message}; waiting for the controller's --max-active-jobs"
            elif running and all(i.phase == StepPhase.QUEUED for i in running):
                step.phase = StepPhase.QUEUED
            else:
                step.phase = StepPhase.RUNNING
            return False
        failed = [i for i in items if i.phase == StepPhase.FAILED]
        skipped = [i for i in items if i.phase == StepPhase.SKIPPED]
        if skipped and not failed:
            # Not started because the flow failed or ends: the step did not do its work.
            ctx.emit(
                step.skip(
                    phases.FLOW_FAILED,
                    f"{len(skipped)} of {len(items)} items not started: the flow failed or"
                    " is ending",
                    at=ctx.now_text,
                )
            )
            return True
        if not failed:
            ctx.emit(
                step.succeed(
                    at=ctx.now_text,
                    message=_progress(items),
                    event=Event(
                        "Normal",
                        "StepSucceeded",
                        f"step {step.name}: all {len(items)} items succeeded",
                    ),
                )
            )
            return True
        shown = "; ".join(f"{i.name} ({i.reason}: {i.message})" for i in failed[:MAX_NAMED_ITEMS])
        more = (
            f"; and {len(failed) - MAX_NAMED_ITEMS} more" if len(failed) > MAX_NAMED_ITEMS else ""
        )
        ctx.emit(
            step.fail(
                ITEM_FAILED,
                f"{len(failed)} of {len(items)} items failed: {shown}{more}",
                at=ctx.now_text,
            )
        )
        return True


def _declared_outputs(spec: StepSpec) -> list[Mapping[str, object]]:
    return decoded.items(decoded.path(spec.raw, "outputs", "parameters"))


def _progress(items: list[StepState]) -> str:
    counts: dict[str, int] = {str(phase): 0 for phase in _PROGRESS_ORDER}
    for item in items:
        counts[item.phase] = counts.get(item.phase, 0) + 1
    said = ", ".join(f"{n} {phase.lower()}" for phase, n in counts.items() if n)
    return f"{said} of {len(items)} items"


def end_pending(ctx: PassContext, step: StepState, *, reason: str, why: str) -> None:
    """Items not started (or waiting to retry) end: skipped, or their retry given up."""
    for item in step.items or []:
        if item.is_waiting_retry:
            ctx.emit(item.give_up_retry(why, reason=reason))
        elif item.phase == StepPhase.PENDING:
            item.skip(reason, f"not started: {why}", at=ctx.now_text)


def adopt(ctx: PassContext, step: StepState) -> None:
    """Jobs newer than the status knows (a lost status write): they are the truth."""
    observed = ctx.observed.get(step.name)
    if not observed or step.is_terminal:
        return
    top = max(observed)
    if top < step.attempts:
        return
    job = observed[top].job
    created = decoded.parse_time(decoded.path(job, "metadata", "creationTimestamp"))
    step.adopt(
        attempt=top,
        job_name=decoded.string(decoded.path(job, "metadata", "name"))
        or names.job_name(ctx.flow.name, ctx.flow.uid, step.name, top),
        created=decoded.format_time(created) if created else ctx.now_text,
    )


FANOUT: Final = FanOutKind()


def kind_of(spec: StepSpec) -> StepKind:
    """The kind a step runs as: a fan-out for a Job step with items, else its ``type``'s."""
    kind = kinds.of(spec.kind)
    if spec.is_fanout and kind is kinds.JOB:
        return FANOUT
    return kind
