"""Flow status helpers: conditions whose lastTransitionTime moves only on real transitions,
and the progress summary shown by ``kubectl get jf``.

A condition "transitions" when its ``status`` (True/False/Unknown) changes. A new reason or
message with the same status keeps the old ``lastTransitionTime`` (the meta/v1 convention of
``meta.SetStatusCondition``); the seed re-stamped it on every pass, which made every status
write differ and the controller chase its own tail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from jobflow import decoded
from jobflow.phases import StepPhase

ACCEPTED: Final = "Accepted"
PROGRESSING: Final = "Progressing"
COMPLETE: Final = "Complete"
FAILED: Final = "Failed"
AWAITING_APPROVAL: Final = "AwaitingApproval"
QUEUED: Final = "Queued"
# Set once the resourceTemplates objects were created (the runtime applies create_objects
# before anything else and writes status only after they exist); see jobflow.planning.
RESOURCES_CREATED: Final = "ResourcesCreated"

# The order conditions are listed in status: stable, so status dicts compare equal.
CONDITION_ORDER: Final = (
    ACCEPTED,
    PROGRESSING,
    COMPLETE,
    FAILED,
    AWAITING_APPROVAL,
    QUEUED,
    RESOURCES_CREATED,
)


@dataclass(frozen=True)
class Desired:
    """One condition as this pass wants it."""

    type: str
    status: bool
    reason: str
    message: str


def merge_conditions(
    previous: Sequence[Mapping[str, object]],
    desired: Sequence[Desired],
    *,
    now: datetime,
    generation: int | None,
) -> list[dict[str, object]]:
    """The new condition list: ``desired`` types in ``CONDITION_ORDER``, other types kept.

    ``lastTransitionTime`` is copied from the previous entry of the same type when the status
    value is unchanged, else set to ``now``.
    """
    before = {decoded.string(c.get("type")): c for c in previous}
    wanted = {d.type: d for d in desired}
    out: list[dict[str, object]] = []
    for kind in CONDITION_ORDER:
        d = wanted.get(kind)
        if d is None:
            continue
        status = "True" if d.status else "False"
        old = before.get(kind)
        last: str | None = None
        if old is not None and old.get("status") == status:
            last = decoded.string(old.get("lastTransitionTime"))
        if last is None:
            last = decoded.format_time(now)
        entry: dict[str, object] = {
            "type": kind,
            "status": status,
            "reason": d.reason,
            "message": d.message,
            "lastTransitionTime": last,
        }
        if generation is not None:
            entry["observedGeneration"] = generation
        out.append(entry)
    # Conditions someone else added (another tool, a future version) are kept as they are.
    for cond in previous:
        other = decoded.string(cond.get("type"))
        if other is not None and other not in wanted and other not in CONDITION_ORDER:
            out.append(dict(cond))
    return out


def condition_status(conditions: Sequence[Mapping[str, object]], kind: str) -> str | None:
    for cond in conditions:
        if cond.get("type") == kind:
            return decoded.string(cond.get("status"))
    return None


def progress(phases: Sequence[str]) -> dict[str, object]:
    """``completed`` counts steps that will not run again (Succeeded, Failed, Skipped)."""
    succeeded = sum(1 for p in phases if p == StepPhase.SUCCEEDED)
    failed = sum(1 for p in phases if p == StepPhase.FAILED)
    skipped = sum(1 for p in phases if p == StepPhase.SKIPPED)
    completed = succeeded + failed + skipped
    total = len(phases)
    return {
        "completed": completed,
        "total": total,
        "succeeded": succeeded,
        "failed": failed,
        "skipped": skipped,
        "display": f"{completed}/{total}",
    }
