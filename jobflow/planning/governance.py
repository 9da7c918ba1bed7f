"""Governance: how many steps of a flow may hold a Job at once, and what a step's Job carries
for a queueing system (Kueue).

- ``executionPolicy.parallelism``: at most N steps of the flow are active (Running or Queued: a
  Job that exists and has not finished, suspended ones included). Ready steps beyond it stay
  Pending with reason WaitingForParallelism, in spec order (the sweep's order): the first
  ready steps in the spec get the slots that free up.
- ``max_starts`` (the controller's ``--max-active-jobs`` share for this pass): at most that
  many new Jobs this pass; ready steps beyond it stay Pending with reason WaitingForCapacity,
  and ``held_for_capacity`` tells the controller this flow wants more (it is woken, in turn,
  when a slot frees).
- A step whose retry is due and finds no slot keeps its RetryBackoff reason (its retry is
  already charged) and sets no timer: a Job finishing frees the slot and triggers a pass.
- ``kueue_labels``: ``queueName`` (step, else flow) is the Job's ``kueue.x-k8s.io/queue-name``
  label and ``priorityClassName`` its ``kueue.x-k8s.io/priority-class``; Kueue's webhook then
  suspends the Job until its LocalQueue admits it (the step is Queued meanwhile, see
  jobflow.kinds).
"""

from __future__ import annotations

from collections.abc import Sequence

from jobflow import kinds, names, phases
from jobflow.spec import StepSpec
from jobflow.stepstate import StepState


def kueue_labels(step: StepSpec) -> dict[str, str]:
    """The Kueue labels of ``step``'s Jobs (none when it names no queue and no priority)."""
    labels: dict[str, str] = {}
    if step.queue_name:
        labels[names.LABEL_KUEUE_QUEUE] = step.queue_name
    if step.priority_class_name:
        labels[names.LABEL_KUEUE_PRIORITY] = step.priority_class_name
    return labels


class Slots:
    """The room a pass has for new Jobs: the flow's parallelism and the controller's share."""

    def __init__(
        self, steps: Sequence[StepState], *, parallelism: int | None, max_starts: int | None
    ) -> None:
        self.parallelism = parallelism
        self.max_starts = max_starts
        # Active Jobs: a fan-out step counts its active items (jobflow.fanout_kind).
        self.active = sum(
            sum(1 for i in s.items if i.is_active)
            if s.items is not None
            else int(s.is_active and kinds.of(s.spec.kind).runs_jobs)
            for s in steps
        )
        self.started = 0
        self.held: set[str] = set()  # names of the steps held (by either cap) in this pass
        self._held_for_capacity: set[str] = set()

    @property
    def held_for_capacity(self) -> int:
        """Ready steps the controller's cap held back in this pass."""
        return len(self._held_for_capacity)

    def take(self, step: StepState) -> bool:
        """Room for one more Job for ``step``; False (and the step says why) when there is none."""
        if self.parallelism is not None and self.active >= self.parallelism:
            step.hold(
                phases.WAITING_FOR_PARALLELISM,
                f"waiting for a free slot: executionPolicy.parallelism is {self.parallelism}",
            )
            self.held.add(step.name)
            return False
        if self.max_starts is not None and self.started >= self.max_starts:
            step.hold(
                phases.WAITING_FOR_CAPACITY,
                "waiting for the controller's --max-active-jobs: the cluster-wide cap on active"
                " Jobs is reached; it starts when a slot frees (in turn with other flows)",
            )
            self._held_for_capacity.add(step.name)
            self.held.add(step.name)
            return False
        self.active += 1
        self.started += 1
        return True

    def give_back(self) -> None:
        """The step took a slot but started no Job (its inputs could not be resolved)."""
        self.active -= 1
        self.started -= 1
