"""Unit tables for the planner's building blocks: retry delays and Go durations
(jobflow.spec, jobflow.quantities), a Job's outcome from its conditions (jobflow.jobs), condition transitions and
progress (jobflow.status), termination-message and JSONPath outputs (jobflow.planning)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jobflow import defaults, jobs, quantities, spec, status
from jobflow.parameters import json_path as _json_path
from jobflow.planning import _parse_termination_message, with_defaults
from tests.unit.planning_world import flow, step


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("1.5s", 1.5),
        ("7", None),  # Go says "missing unit"; validation refuses it too (one grammar)
        ("", None),
        ("ten", None),
        ("10x", None),
        ("s10", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert quantities.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("policy", "delays"),
    [
        ({"backoff": {"type": "Fixed", "duration": "10s"}}, [10, 10, 10]),
        ({"backoff": {"type": "Linear", "duration": "10s"}}, [10, 20, 30]),
        ({"backoff": {"type": "Exponential", "duration": "10s"}}, [10, 20, 40]),
        ({"backoff": {"type": "Exponential", "duration": "1s", "factor": 3.0}}, [1, 3, 9]),
        ({}, [1, 2, 4]),  # no backoff block: 1s doubling, as the seed
        ({"backoff": {"type": "Fixed", "duration": "bogus"}}, [1, 1, 1]),
        (
            {"backoff": {"type": "Exponential", "duration": "1h", "factor": 1000}},
            [3600, 86400, 86400],
        ),
    ],
)
def test_retry_delay(policy: dict[str, object], delays: list[float]) -> None:
    assert [spec.RetryPolicy.read(policy).delay(n) for n in range(3)] == delays


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def job_with(*conditions: dict[str, object], **counters: int) -> dict[str, object]:
    return {"status": {"conditions": list(conditions), **counters}}


@pytest.mark.parametrize(
    ("job", "state"),
    [
        (job_with(), "running"),
        (job_with(succeeded=1), "running"),  # counters never decide
        (job_with(failed=3), "running"),
        (job_with({"type": "Complete", "status": "True"}), "succeeded"),
        (job_with({"type": "Failed", "status": "True"}), "failed"),
        (job_with({"type": "Failed", "status": "False"}), "running"),
        (job_with({"type": "Suspended", "status": "True"}), "running"),
        (job_with({"type": "FailureTarget", "status": "True"}), "running"),
        ({}, "running"),
    ],
)
def test_job_outcome_from_conditions(job: dict[str, object], state: str) -> None:
    assert jobs.job_outcome(job).state == state


def test_job_outcome_time_is_the_condition_time() -> None:
    job = job_with(
        {"type": "Failed", "status": "True", "lastTransitionTime": "2026-01-01T00:00:07Z"}
    )
    assert jobs.job_outcome(job).finished_at == NOW + timedelta(seconds=7)


def test_condition_time_moves_only_when_status_changes() -> None:
    first = status.merge_conditions(
        [], [status.Desired("Progressing", True, "Running", "0/2")], now=NOW, generation=1
    )
    later = NOW + timedelta(minutes=1)
    same = status.merge_conditions(
        first, [status.Desired("Progressing", True, "Running", "1/2")], now=later, generation=1
    )
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["message"] == "1/2"
    flipped = status.merge_conditions(
        same, [status.Desired("Progressing", False, "Succeeded", "2/2")], now=later, generation=1
    )
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:01:00Z"


def test_foreign_conditions_are_kept() -> None:
    theirs = [{"type": "Custom", "status": "True", "lastTransitionTime": "x"}]
    merged = status.merge_conditions(
        theirs, [status.Desired("Accepted", True, "Valid", "")], now=NOW, generation=None
    )
    assert [c["type"] for c in merged] == ["Accepted", "Custom"]


def test_progress() -> None:
    got = status.progress(["Succeeded", "Failed", "Skipped", "Running", "Pending"])
    assert got == {
        "completed": 3,
        "total": 5,
        "succeeded": 1,
        "failed": 1,
        "skipped": 1,
        "display": "3/5",
    }


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("a=1\nb = two words \n", {"a": "1", "b": "two words"}),
        ('{"a": "x", "n": 3, "l": [1]}', {"a": "x", "n": "3", "l": "[1]"}),
        ("no pairs here", {}),
        ("", {}),
        ("{broken json\nk=v", {"k": "v"}),
    ],
)
def test_termination_message(text: str, parsed: dict[str, str]) -> None:
    assert _parse_termination_message(text) == parsed


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("$.status.succeeded", "1"),
        ("{.status.succeeded}", "1"),
        ("$.status.conditions[0].type", "Complete"),
        ("$.status.conditions[-1].type", "Complete"),
        ("$.status.conditions[5].type", None),
        ("$.metadata.missing", None),
        ("$.status.ready", "true"),
    ],
)
def test_json_path(expression: str, value: str | None) -> None:
    job = {"status": {"succeeded": 1, "ready": True, "conditions": [{"type": "Complete"}]}}
    assert _json_path(job, expression) == value


def test_with_defaults_equals_apply_defaults() -> None:
    """The planner's copy-on-write defaulting gives exactly jobflow.defaults.apply_defaults."""
    cases = [
        flow(step("a"), step("b", "a", retryPolicy={"backoff": {"type": "Fixed"}})),
        flow(step("a", type="Job"), policy={"backoffLimit": 1}),
        flow(step("x", retryPolicy={"limit": 0}), policy={}),
    ]
    for case in cases:
        original = repr(case)
        assert with_defaults(case) == defaults.apply_defaults(case)
        assert repr(case) == original, "the input is not modified"
