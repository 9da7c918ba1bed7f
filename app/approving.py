"""Deciding a Manual step: the one function `zen-flow approve`/`reject` (and a UI) call.

``decide(kube, namespace, flow, step, approve=..., inputs=...)`` checks that STEP is a Manual
step of FLOW that has not finished, writes the request annotation
``approve.workflow.kube-zen.io/<step>`` with a JSON merge patch (``true``/``false``, or the
decision object with its inputs: jobflow.approvals), and reads what the admission webhook
recorded on the same write: who has approved so far and what is still needed. A denial by the
webhook (a user the step does not allow, unknown inputs) is a ``DecisionError`` carrying the
API server's message, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller import kube as kube_mod
from jobflow import approvals, decoded, kinds, names, phases


class DecisionError(Exception):
    """A decision that cannot be made. ``rejected``: the flow or step named is wrong, or the
    admission webhook denied the decision (the CLI's exit 2, as for any webhook denial); else
    the step already finished or the cluster refused the write otherwise (exit 1)."""

    def __init__(self, message: str, *, rejected: bool = False) -> None:
        super().__init__(message)
        self.rejected = rejected


@dataclass(frozen=True)
class Outcome:
    """What a decision left: the step's phase before it, the users whose approvals count, how
    many are required, the user recorded for this write (None for a plain step written while
    no webhook recorded it), and the policy (None: a plain Manual step)."""

    phase: str
    approvers: tuple[str, ...]
    required: int
    recorded_as: str | None
    policy: approvals.Policy | None

    def summary(self, *, approve: bool) -> str:
        """``1 of 2 approvals (alice); 1 more needed (approvers: users alice, bob)``."""
        if self.policy is None:
            return ""
        if not approve:
            return "the step is rejected"
        have = f"{len(self.approvers)} of {self.required} approvals"
        if self.approvers:
            have += f" ({', '.join(self.approvers)})"
        missing = self.required - len(self.approvers)
        if missing <= 0:
            return f"{have}: the step is approved"
        return f"{have}; {missing} more needed (approvers: {self.policy.who()})"


def step_status(flow: Mapping[str, Any], step: str) -> Mapping[str, object]:
    for entry in decoded.items(decoded.path(flow, "status", "steps")):
        if entry.get("name") == step:
            return entry
    return {}


def check_step(flow: Mapping[str, Any], step: str, *, ref: str) -> tuple[str, Mapping[str, object]]:
    """(the step's phase, its spec); DecisionError unless it is a Manual step that may be
    decided."""
    spec = decoded.path(flow, "spec")
    spec_steps = {
        decoded.string(s.get("name")): s
        for s in decoded.items(decoded.path(spec, "steps"))
        + decoded.items(decoded.path(spec, "finally"))
    }
    if step not in spec_steps:
        manual = [n for n, s in spec_steps.items() if n and kinds.of_step(s).awaits_approval]
        hint = f"its Manual steps: {', '.join(manual)}" if manual else "it has no Manual steps"
        raise DecisionError(f"JobFlow {ref} has no step {step!r}; {hint}", rejected=True)
    kind = kinds.of_step(spec_steps[step])
    if not kind.awaits_approval:
        raise DecisionError(
            f"step {step!r} of JobFlow {ref} is a {kind.name} step; only Manual steps are approved",
            rejected=True,
        )
    phase = decoded.string(step_status(flow, step).get("phase")) or "Pending"
    if phase in phases.TERMINAL_STEP_PHASES:
        raise DecisionError(
            f"step {step!r} of JobFlow {ref} already finished ({phase}); nothing to decide"
        )
    return phase, spec_steps[step]


def decide(
    kube: kube_mod.Kube,
    namespace: str,
    flow_name: str,
    step: str,
    *,
    approve: bool,
    inputs: Mapping[str, str] | None = None,
) -> Outcome:
    """Approve (or reject) ``step`` of JobFlow ``namespace/flow_name`` as the user ``kube``
    authenticates as. Raises DecisionError (what went wrong, in one line); kube_mod.ApiError
    only when the cluster could not be reached."""
    ref = f"{namespace}/{flow_name}"
    try:
        flow = kube.get(kube_mod.JOBFLOWS, namespace, flow_name)
    except kube_mod.NotFound:
        raise DecisionError(
            f"JobFlow {ref} not found; list them with: zen-flow list -n {namespace}",
            rejected=True,
        ) from None
    phase, raw_step = check_step(flow, step, ref=ref)
    policy = approvals.Policy.read(raw_step)
    if inputs and policy is None:
        raise DecisionError(
            f"step {step!r} of JobFlow {ref} declares no approval inputs; remove -p", rejected=True
        )
    value = approvals.request_value(approve=approve, inputs=inputs or {})
    patch = {"metadata": {"annotations": {names.approve_annotation(step): value}}}
    try:
        stored = kube.patch(kube_mod.JOBFLOWS, namespace, flow_name, patch)
    except kube_mod.ApiError as exc:
        if exc.retryable or exc.code == 0:
            raise
        denied = "admission webhook" in str(exc)  # the API server's words for a denial
        raise DecisionError(
            f"cannot decide step {step!r} of JobFlow {ref}: {exc}", rejected=denied
        ) from None
    return _outcome(stored, step, phase, policy)


def _outcome(
    stored: Mapping[str, Any], step: str, phase: str, policy: approvals.Policy | None
) -> Outcome:
    annotations = decoded.string_map(decoded.path(stored, "metadata", "annotations"))
    entries = approvals.read_records(annotations, step)
    last = entries[-1].user if entries else None
    if policy is None:
        return Outcome(phase, (), 1, last, None)
    count = approvals.tally(
        policy,
        entries,
        since=approvals.retried_at(decoded.items(decoded.path(stored, "status", "history"))),
        creator=annotations.get(approvals.CREATED_BY_ANNOTATION),
    )
    return Outcome(phase, tuple(e.user for e in count.approvals), policy.required, last, policy)
