"""What a pass decides (``Plan``); what goes in besides the flow is ``jobs.ObservedJob``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from jobflow.stepstate import Event


@dataclass(frozen=True)
class Plan:
    """What one pass decided. The runtime applies it in this order: ``create_objects``
    (AlreadyExists owned by the flow is fine), ``create_jobs`` (AlreadyExists owned by the flow
    is adoption), ``delete_jobs`` (propagation Background; NotFound is fine), then ``status``
    (only if it differs from the stored one; skipped if anything before failed), ``events``,
    and ``delete_flow``. ``requeue_after`` is the earliest pending deadline in seconds (retry,
    step timeout, flow deadline, TTL) or None.
    ``held_for_capacity`` counts the ready steps that ``max_starts`` held back. ``needs_pod_details`` names failed/succeeded
    Jobs whose pod exit code or termination message is needed: read them and plan again.
    """

    create_objects: tuple[Mapping[str, object], ...]
    create_jobs: tuple[Mapping[str, object], ...]
    delete_jobs: tuple[str, ...]
    status: Mapping[str, object]
    events: tuple[Event, ...]
    requeue_after: float | None
    delete_flow: bool
    needs_pod_details: tuple[str, ...]
    # Ready steps that the caller's ``max_starts`` held back: the flow wants that many more
    # Jobs and waits for the controller's --max-active-jobs to free a slot.
    held_for_capacity: int = 0

    @property
    def is_noop(self) -> bool:
        """Nothing to create or delete and nothing to say (the status may still differ)."""
        return not (
            self.create_objects
            or self.create_jobs
            or self.delete_jobs
            or self.events
            or self.delete_flow
            or self.needs_pod_details
        )


def make_plan(
    *,
    status: Mapping[str, object],
    create_objects: Sequence[Mapping[str, object]] = (),
    create_jobs: Sequence[Mapping[str, object]] = (),
    delete_jobs: Sequence[str] = (),
    events: Sequence[Event] = (),
    requeue_after: float | None = None,
    delete_flow: bool = False,
    needs_pod_details: Sequence[str] = (),
    held_for_capacity: int = 0,
) -> Plan:
    return Plan(
        create_objects=tuple(create_objects),
        create_jobs=tuple(create_jobs),
        delete_jobs=tuple(dict.fromkeys(delete_jobs)),
        status=status,
        events=tuple(events),
        requeue_after=requeue_after,
        delete_flow=delete_flow,
        needs_pod_details=tuple(dict.fromkeys(needs_pod_details)),
        held_for_capacity=held_for_capacity,
    )
