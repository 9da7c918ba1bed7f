"""Approval decisions at admission (jobflow.approvals has the rules and why they hold).

- mutate: the writer's request annotation ``approve.workflow.kube-zen.io/<step>`` becomes an
  entry of the step's record, stamped with the admission request's user and this webhook's
  clock; the writer's own values of the records and of ``workflow.kube-zen.io/created-by`` are
  replaced with the stored ones (the creator is stamped at CREATE).
- validate: a decision by a user the step's policy does not allow (or its creator, with
  ``allowCreator: false``), with unknown or missing inputs, or on a finished step is refused:
  403 Forbidden, the message names the step and who may decide.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jobflow import approvals, decoded, phases
from webhook import review


def stamp_ops(
    request: review.AdmissionRequest,
    old: Mapping[str, Any] | None,
    obj: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> list[dict[str, object]]:
    if not approvals.may_record(old, obj):
        return []  # nothing to stamp (no Manual step, no stamped annotation): no clock read
    moment = decoded.format_time(now or datetime.now(UTC))
    return approvals.record_patch(old, obj, username=request.user_info.username, now=moment)


def refusal(
    request: review.AdmissionRequest, old: Mapping[str, Any] | None, obj: Mapping[str, Any]
) -> review.AdmissionResponse | None:
    """The denial of this write's decisions, or None when they stand."""
    found = approvals.decision_problems(
        old,
        obj,
        username=request.user_info.username,
        groups=request.user_info.groups,
        finished_phases=frozenset(phases.TERMINAL_STEP_PHASES),
    )
    if not found:
        return None
    name = request.name or decoded.string(decoded.path(obj, "metadata", "name")) or ""
    causes = [
        review.StatusCause(reason="approval-refused", message=r.message, field=r.path)
        for r in found
    ]
    return review.deny(
        request.uid,
        f'JobFlow "{name}": ' + "; ".join(r.message for r in found[:10]),
        code=403,
        reason="Forbidden",
        causes=causes[:10],
        details_name=name or None,
    )
