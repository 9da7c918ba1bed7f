"""Scheduling: settle every step that can move without a Job finishing, start the ready ones.

Sweeps repeat until nothing moves. A step is ready when every dependency is Succeeded,
Skipped, or Failed with continueOnFailure. A ready step evaluates ``when`` (false: Skipped,
reason ConditionFalse; an evaluation error fails it), then its kind starts it (jobflow.kinds).
Once a step failed without continueOnFailure nothing new starts: steps downstream of it are
Skipped (UpstreamFailed), the other unstarted ones Skipped (FlowFailed), waiting retries and
approvals end, and the flow fails when its running steps have finished. ``spec.suspend``
starts nothing (running Jobs finish, timeouts still apply).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from jobflow import conditions, decoded, fanout_kind, kinds, phases
from jobflow.phases import StepPhase
from jobflow.planning import finale
from jobflow.planning.governance import Slots
from jobflow.stepstate import Event, StepState


class Pass(kinds.PassContext, Protocol):
    """What scheduling uses of the pass (jobflow.planning.passes.Pass)."""

    @property
    def by_name(self) -> Mapping[str, StepState]: ...
    @property
    def parameters(self) -> Mapping[str, str]: ...
    @property
    def outcome(self) -> finale.Outcome | None: ...

    def is_failing(self) -> bool: ...


def schedule(p: Pass, slots: Slots | None = None) -> None:
    """Sweep until nothing moves; ``slots`` (parallelism, the controller's cap) limits starts."""
    if slots is None:
        slots = Slots(p.steps, parallelism=None, max_starts=None)
    changed = True
    while changed:
        changed = False
        failing = p.is_failing()  # once per sweep: O(steps), not O(steps^2)
        upstream: dict[str, str] | None = None  # step -> its failed ancestor, computed on need
        dag_done = finale.dag_done(p.steps)
        for step in p.steps:
            if step.spec.is_finally:
                if _advance_finally(p, step, dag_done=dag_done, slots=slots):
                    changed = True
                continue
            moved, upstream = _advance(p, step, failing=failing, upstream=upstream, slots=slots)
            if moved:
                changed = True
                if step.is_blocking_failure:
                    failing = True
                    upstream = None  # recomputed with this failure
    # Retry timers are read only now: a retry that an early sweep saw as due later may be
    # cancelled by a failure found further down the same pass, and its stale timer would
    # make this plan's requeue differ from the next pass's (not idempotent).
    # A retry held by a cap sets no timer: the Job whose end frees its slot triggers a pass.
    if not p.flow.suspend:
        for step in p.steps:
            if step.is_waiting_retry and step.name not in slots.held:
                p.wake_at(decoded.parse_time(step.next_attempt_time) or p.now)
            for item in step.items or ():
                # A fan-out item's retry likewise (a failure later in the pass may end it); one
                # already due and still waiting is held by a cap: a Job's end wakes the flow.
                due = decoded.parse_time(item.next_attempt_time)
                if item.is_waiting_retry and due is not None and due > p.now:
                    p.wake_at(due)


def _advance(
    p: Pass, step: StepState, *, failing: bool, upstream: dict[str, str] | None, slots: Slots
) -> tuple[bool, dict[str, str] | None]:
    """Move ``step`` if it can; (whether it moved, the failed-ancestor map if computed)."""
    kind = fanout_kind.kind_of(step.spec)
    if step.phase == StepPhase.PENDING_APPROVAL:
        if failing:
            p.emit(
                step.skip(phases.FLOW_FAILED, "not approved before the flow failed", at=p.now_text)
            )
            return True, upstream
        return kind.start(p, step), upstream
    if step.is_active and kind.takes_own_slots:
        return kind.start(p, step), upstream  # a fan-out: its next items (fanout_kind)
    if step.phase != StepPhase.PENDING:
        return False, upstream
    if step.is_waiting_retry:
        if failing:
            p.emit(step.give_up_retry("the flow is failing", event_why="flow failing"))
            return True, upstream
        due = decoded.parse_time(step.next_attempt_time) or p.now
        if p.flow.suspend or p.now < due:
            return False, upstream  # its timer is set once the sweeps settle (see schedule)
        return _start(p, step, kind, slots), upstream
    if failing:
        if upstream is None:
            upstream = failed_upstream(p.steps)
        ancestor = upstream.get(step.name)
        if ancestor is not None:
            event = step.skip(
                phases.UPSTREAM_FAILED, f"upstream step {ancestor} failed", at=p.now_text
            )
        else:
            event = step.skip(phases.FLOW_FAILED, "not started: another step failed", at=p.now_text)
        p.emit(event)
        return True, upstream
    deps = [p.by_name.get(d) for d in step.spec.dependencies]
    if not all(d is not None and d.satisfies_dependants for d in deps):
        return False, upstream
    if p.flow.suspend:
        return False, upstream
    return _when_then_start(p, step, kind, slots), upstream


def _advance_finally(p: Pass, step: StepState, *, dag_done: bool, slots: Slots) -> bool:
    """Move finally ``step`` if it can (planning.finale): it waits for the whole DAG, and only
    a failed dependency of its own (never the flow failing) keeps it from running."""
    kind = fanout_kind.kind_of(step.spec)
    if step.phase == StepPhase.PENDING_APPROVAL:
        return kind.start(p, step)
    if step.phase != StepPhase.PENDING or not dag_done or p.flow.suspend:
        return False
    if step.is_waiting_retry:
        due = decoded.parse_time(step.next_attempt_time) or p.now
        return p.now >= due and _start(p, step, kind, slots)
    failed = finale.blocked_by(step, p.by_name)
    if failed is not None:
        p.emit(step.skip(phases.UPSTREAM_FAILED, f"upstream step {failed} failed", at=p.now_text))
        return True
    deps = [p.by_name.get(d) for d in step.spec.dependencies]
    if not all(d is not None and d.satisfies_dependants for d in deps):
        return False
    return _when_then_start(p, step, kind, slots)


def _when_then_start(p: Pass, step: StepState, kind: kinds.StepKind, slots: Slots) -> bool:
    """A ready step: skip it (``when`` false), fail it (``when`` broken) or start it."""
    verdict = evaluate_when(p, step)
    if verdict is False:
        p.emit(step.skip(phases.CONDITION_FALSE, "when condition is false", at=p.now_text))
        return True
    if isinstance(verdict, str):
        message = f"step {step.name}: when failed: {verdict}"
        p.emit(
            step.fail(
                phases.CONDITION_ERROR,
                verdict,
                at=p.now_text,
                event=Event("Warning", "StepFailed", message),
            )
        )
        return True
    return _start(p, step, kind, slots)


def _start(p: Pass, step: StepState, kind: kinds.StepKind, slots: Slots) -> bool:
    """Start ``step`` if a Job of it fits the caps (a kind that runs no Job always does)."""
    if not kind.runs_jobs or kind.takes_own_slots:
        return kind.start(p, step)
    if not slots.take(step):
        return False
    moved = kind.start(p, step)
    if not step.is_active:
        slots.give_back()  # no Job after all (an input could not be resolved)
    return moved


def evaluate_when(p: Pass, step: StepState) -> bool | str:
    """The step's ``when``: True/False, or an error message."""
    expression = step.spec.when
    if expression is None:
        return True
    literal = conditions.literal_value(expression)
    if literal is not None:
        return literal
    # Only the referenced steps go into the context: converting every step of a large flow
    # for each evaluation made a 2,000-step fan-out quadratic (minutes per pass).
    try:
        refs = conditions.referenced_steps(expression)
        wanted = (
            p.steps if refs.is_dynamic else [p.by_name[n] for n in refs.steps if n in p.by_name]
        )
        context = conditions.build_context(
            p.flow.name,
            [s.to_status(p.flow.namespace) for s in wanted],
            p.parameters,
            outcome=p.outcome.to_status() if p.outcome is not None else None,
        )
        return conditions.evaluate(expression, context)
    except conditions.ConditionError as exc:
        return str(exc)


def failed_upstream(steps: Sequence[StepState]) -> dict[str, str]:
    """Step -> a failed (blocking) ancestor, for every step downstream of one. O(V + E)."""
    dependants: dict[str, list[str]] = {}
    for step in steps:
        for dep in step.spec.dependencies:
            dependants.setdefault(dep, []).append(step.name)
    found: dict[str, str] = {}
    for failed in steps:
        if not failed.is_blocking_failure:
            continue
        stack = list(dependants.get(failed.name, ()))
        while stack:
            name = stack.pop()
            if name in found:
                continue
            found[name] = failed.name
            stack.extend(dependants.get(name, ()))
    return found
