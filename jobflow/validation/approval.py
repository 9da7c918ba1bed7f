"""Checks of a Manual step's ``approval`` policy (semantics in jobflow.approvals).

A policy that could never be met is refused at apply rather than left to wait forever: a quorum
larger than the users named (with no group to widen it), an ``onTimeout: Approve`` with an input
that has no default, a default outside its own ``enum``. Who decided, and with which inputs, is
checked at each decision by the webhook (``approvals.decision_problems``), not here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from jobflow import approvals, decoded
from jobflow.validation.context import Context
from jobflow.validation.data import check_name

MAX_APPROVAL_TIMEOUT_SECONDS: Final = 30 * 24 * 3600  # as a step's timeoutSeconds: 30 days
# A quorum is people: a hundred is already more than any review board.
MAX_REQUIRED: Final = 100


def declared_inputs(step: Mapping[str, object]) -> set[str]:
    """The output parameters an approval gives its step: the names of its inputs."""
    policy = approvals.Policy.read(step)
    return {i.name for i in policy.inputs} if policy is not None else set()


def check(ctx: Context, step: Mapping[str, object], base: str) -> None:
    raw = decoded.mapping_or_none(step.get("approval"))
    if raw is None:
        return
    path = f"{base}.approval"
    if step.get("type") != "Manual":
        ctx.add(
            "approval-not-manual",
            path,
            "only a Manual step (type: Manual) is approved; remove approval or set type: Manual",
        )
        return
    approvers = decoded.mapping(raw.get("approvers"))
    users = set(decoded.strings(approvers.get("users")))
    groups = decoded.strings(approvers.get("groups"))
    required = decoded.strict_integer(raw.get("required"))
    if required is not None and not 1 <= required <= MAX_REQUIRED:
        ctx.add(
            "invalid-approval-required",
            f"{path}.required",
            f"must be 1..{MAX_REQUIRED}; got {required}",
        )
    elif required is not None and users and not groups and required > len(users):
        ctx.add(
            "approval-unreachable",
            f"{path}.required",
            f"{required} distinct approvers are required but approvers.users names only"
            f" {len(users)}; name more users, add approvers.groups, or lower required",
        )
    timeout = decoded.strict_integer(raw.get("timeoutSeconds"))
    if timeout is not None and not 0 < timeout <= MAX_APPROVAL_TIMEOUT_SECONDS:
        ctx.add(
            "invalid-approval-timeout",
            f"{path}.timeoutSeconds",
            f"must be between 1 and {MAX_APPROVAL_TIMEOUT_SECONDS} seconds (30 days); got {timeout}",
        )
    if raw.get("onTimeout") is not None and timeout is None:
        ctx.add(
            "approval-on-timeout-without-timeout",
            f"{path}.onTimeout",
            "has no effect without approval.timeoutSeconds; set timeoutSeconds or remove it",
        )
    check_inputs(ctx, raw, path)


def check_inputs(ctx: Context, raw: Mapping[str, object], path: str) -> None:
    approve_on_timeout = raw.get("onTimeout") == approvals.APPROVE
    seen: set[str] = set()
    items = decoded.list_or_none(raw.get("inputs")) or []
    if len(items) > approvals.MAX_INPUTS:
        ctx.add(
            "too-many-approval-inputs",
            f"{path}.inputs",
            f"at most {approvals.MAX_INPUTS} inputs; got {len(items)}",
        )
    for i, item in enumerate(items):
        entry = decoded.mapping_or_none(item)
        if entry is None:
            continue
        at = f"{path}.inputs[{i}]"
        check_name(ctx, entry, at, seen, "approval-input")
        default = decoded.string(entry.get("default"))
        enum = decoded.strings(entry.get("enum"))
        if default is not None and enum and default not in enum:
            ctx.add(
                "approval-input-default-not-in-enum",
                f"{at}.default",
                f"{default!r} is not one of its enum values ({', '.join(enum)})",
            )
        if default is not None and len(default.encode()) > approvals.MAX_INPUT_BYTES:
            ctx.add(
                "approval-input-too-long",
                f"{at}.default",
                f"is over the limit of {approvals.MAX_INPUT_BYTES} bytes",
            )
        if approve_on_timeout and default is None:
            ctx.add(
                "approval-input-needs-default",
                f"{at}.default",
                f"onTimeout Approve gives input {decoded.string(entry.get('name'))!r} no value:"
                " give it a default, or use onTimeout Reject",
            )
