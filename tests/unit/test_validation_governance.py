"""Validation of the governance fields (jobflow/validation/governance.py): parallelism and
pendingTimeoutSeconds in executionPolicy, queueName/priorityClassName on the flow and the
step, a step's pendingTimeoutSeconds, and the Job-only fields on a Manual step; each refused
with its code and field path, each accepted at its bounds; wrong JSON types go to the shape
check (its own codes). The same call serves the webhook and `zen-flow validate`."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from jobflow import validation
from tests.unit.test_validation import codes_and_paths, flow, step

THIRTY_DAYS = 30 * 24 * 3600


def problems_of(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return codes_and_paths(validation.validate(obj))


def manual(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "type": "Manual", **fields}


def with_policy(**policy: Any) -> dict[str, Any]:
    obj = flow(step("a"))
    obj["spec"]["executionPolicy"] = policy
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (with_policy(parallelism=0), {("invalid-parallelism", "spec.executionPolicy.parallelism")}),
        (
            with_policy(parallelism=-2),
            {("invalid-parallelism", "spec.executionPolicy.parallelism")},
        ),
        (
            with_policy(pendingTimeoutSeconds=0),
            {("invalid-pending-timeout", "spec.executionPolicy.pendingTimeoutSeconds")},
        ),
        (
            with_policy(pendingTimeoutSeconds=THIRTY_DAYS + 1),
            {("invalid-pending-timeout", "spec.executionPolicy.pendingTimeoutSeconds")},
        ),
        (
            flow(step("a", pendingTimeoutSeconds=-1)),
            {("invalid-pending-timeout", "spec.steps[0].pendingTimeoutSeconds")},
        ),
        (flow(step("a"), queueName="Team_A"), {("invalid-queue-name", "spec.queueName")}),
        (flow(step("a"), queueName="q" * 64), {("invalid-queue-name", "spec.queueName")}),
        (flow(step("a"), queueName=""), {("invalid-queue-name", "spec.queueName")}),
        (
            flow(step("a", queueName="-gpu")),
            {("invalid-queue-name", "spec.steps[0].queueName")},
        ),
        (
            flow(step("a"), priorityClassName="High"),
            {("invalid-priority-class-name", "spec.priorityClassName")},
        ),
        (
            flow(step("a", priorityClassName="a b")),
            {("invalid-priority-class-name", "spec.steps[0].priorityClassName")},
        ),
        (
            flow(manual("m", queueName="q", pendingTimeoutSeconds=5)),
            {
                ("job-step-field", "spec.steps[0].queueName"),
                ("job-step-field", "spec.steps[0].pendingTimeoutSeconds"),
            },
        ),
        (
            with_policy(parallelism="2"),
            {("invalid-type", "spec.executionPolicy.parallelism")},
        ),
    ],
    ids=[
        "parallelism-zero",
        "parallelism-negative",
        "flow-pending-zero",
        "flow-pending-over-30-days",
        "step-pending-negative",
        "queue-upper-case",
        "queue-too-long",
        "queue-empty",
        "step-queue-leading-dash",
        "priority-upper-case",
        "step-priority-space",
        "manual-step-job-fields",
        "parallelism-string",
    ],
)
def test_refused(obj: dict[str, Any], expected: set[tuple[str, str]]) -> None:
    assert problems_of(obj) == expected


@pytest.mark.parametrize(
    "obj",
    [
        with_policy(parallelism=1, pendingTimeoutSeconds=THIRTY_DAYS),
        flow(step("a", pendingTimeoutSeconds=1, queueName="gpu.queue", priorityClassName="p1")),
        flow(step("a"), queueName="q" * 63, priorityClassName="high-priority"),
        flow(manual("m"), queueName="team"),  # a flow default skips Manual steps
    ],
    ids=["bounds", "step-fields", "flow-fields", "flow-default-with-manual"],
)
def test_accepted(obj: dict[str, Any]) -> None:
    assert problems_of(obj) == set()


def with_finally(*finals: dict[str, Any]) -> dict[str, Any]:
    obj = flow(step("a"))
    obj["spec"]["finally"] = list(finals)
    return obj


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (
            with_finally(step("f", pendingTimeoutSeconds=-5)),
            {("invalid-pending-timeout", "spec.finally[0].pendingTimeoutSeconds")},
        ),
        (
            with_finally(step("f"), step("g", queueName="Bad Queue!")),
            {("invalid-queue-name", "spec.finally[1].queueName")},
        ),
        (
            with_finally(step("f", priorityClassName="x" * 64)),
            {("invalid-priority-class-name", "spec.finally[0].priorityClassName")},
        ),
        (
            with_finally(manual("ack", queueName="q")),
            {("job-step-field", "spec.finally[0].queueName")},
        ),
        (with_finally(step("f", queueName="team-a", pendingTimeoutSeconds=60)), set()),
    ],
)
def test_finally_steps_are_governed_like_steps(
    obj: dict[str, Any], expected: set[tuple[str, str]]
) -> None:
    assert problems_of(obj) == expected
    assert codes_and_paths(validation.validate(obj, fast=False)) == expected


def test_warnings_of_finally_steps_name_their_own_path() -> None:
    # the helpers' template runs "busybox" (no tag): pin the DAG step's image
    obj = copy.deepcopy(with_finally(step("f", timeoutSeconds=5)))
    obj["spec"]["steps"][0]["template"]["spec"]["template"]["spec"]["containers"][0]["image"] = (
        "busybox:1.36"
    )
    for fast in (True, False):
        found: list[str] = []
        assert validation.validate(obj, warnings=found, fast=fast) == []
        assert found == validation.risks.risk_warnings(obj)
        assert [w.split(" ", 1)[0].split(".", 2)[:2] for w in found] == [
            ["spec", "finally[0]"],
            ["spec", "finally[0]"],
        ], found
