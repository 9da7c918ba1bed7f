"""Checks of the governance fields: ``executionPolicy.parallelism`` and
``pendingTimeoutSeconds``, ``queueName`` and ``priorityClassName`` (flow and step, finally
steps included), and a step's ``pendingTimeoutSeconds`` (jobflow.planning.governance says what
they do).

A queue or priority class name becomes a Kueue label value on every Job of the step, and names
a Kueue object (LocalQueue, WorkloadPriorityClass): it must be both, i.e. a DNS-1123 subdomain
of at most 63 characters; a value the API server would refuse as a label is refused here, at
admission, rather than as a CreateRejected Job mid-flow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobflow import decoded, kinds, names
from jobflow.validation.context import MAX_INT32, MAX_STEP_TIMEOUT_SECONDS, Context

# The fields a Manual step cannot use: it runs no Job to queue or time out in a queue.
_JOB_ONLY_FIELDS: Final = ("pendingTimeoutSeconds", "queueName", "priorityClassName")
_NAME_FIELDS: Final = (
    ("queueName", "invalid-queue-name", "a Kueue LocalQueue"),
    ("priorityClassName", "invalid-priority-class-name", "a Kueue WorkloadPriorityClass"),
)


def check(ctx: Context) -> None:
    spec = decoded.mapping_or_none(ctx.obj.get("spec"))
    if spec is None:
        return
    policy = decoded.mapping_or_none(spec.get("executionPolicy"))
    if policy is not None:
        base = "spec.executionPolicy"
        parallelism = decoded.strict_integer(policy.get("parallelism"))
        if parallelism is not None and not 1 <= parallelism <= MAX_INT32:
            ctx.add(
                "invalid-parallelism",
                f"{base}.parallelism",
                f"must be at least 1 (omit it for no limit); got {parallelism}",
            )
        _check_pending_timeout(ctx, policy, base)
    _check_names(ctx, spec, "spec")
    if ctx.all_vouched:
        return  # no step or finally step has a governance field (check_steps vouched for each)
    for field in ("steps", "finally"):
        for index, step in enumerate(decoded.items(spec.get(field))):
            if not step.keys().isdisjoint(_JOB_ONLY_FIELDS):  # most steps: no path built
                _check_step(ctx, step, f"spec.{field}[{index}]")


def _check_step(ctx: Context, step: Mapping[str, object], base: str) -> None:
    if not kinds.of_step(step).runs_jobs:
        for field in _JOB_ONLY_FIELDS:
            if step.get(field) is not None:
                ctx.add(
                    "job-step-field",
                    f"{base}.{field}",
                    f"only a Job step can set {field}: a Manual step runs no Job; remove it",
                )
        return
    _check_pending_timeout(ctx, step, base)
    _check_names(ctx, step, base)


def _check_pending_timeout(ctx: Context, obj: Mapping[str, object], base: str) -> None:
    seconds = decoded.strict_integer(obj.get("pendingTimeoutSeconds"))
    if seconds is not None and not 0 < seconds <= MAX_STEP_TIMEOUT_SECONDS:
        ctx.add(
            "invalid-pending-timeout",
            f"{base}.pendingTimeoutSeconds",
            f"must be between 1 and {MAX_STEP_TIMEOUT_SECONDS} seconds (30 days); got {seconds}",
        )


def _check_names(ctx: Context, obj: Mapping[str, object], base: str) -> None:
    for field, code, what in _NAME_FIELDS:
        value = obj.get(field)
        if not isinstance(value, str):
            continue  # absent, or a wrong type that the shape check reports
        if not (len(value) <= names.MAX_LABEL_LENGTH and names.is_dns1123_subdomain(value)):
            ctx.add(
                code,
                f"{base}.{field}",
                f"{value!r} must name {what}: lower-case letters, digits, '-' and '.', starting"
                f" and ending with a letter or digit, at most {names.MAX_LABEL_LENGTH}"
                " characters (it becomes a label value on Jobs)",
            )
