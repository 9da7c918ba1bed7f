"""The exact text of `zen-flow list` and `zen-flow get` (app.views) with a fixed clock: kubectl's
ages, the REASON column (failed steps' reasons, Stopped, approval, queue), the header, the step
tree with a row per attempt read from the Jobs, long messages cut and history wrapped to fit
80 columns, a step waiting for its next attempt shown as Retrying."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from app import views

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600 + 20 * 60, "3h20m"),
        (15 * 3600, "15h"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (12 * 86400, "12d"),
        (800 * 86400, "2y70d"),
    ],
)
def test_ages_as_kubectl_shows_them(seconds: int, text: str) -> None:
    assert views.human_age(seconds) == text


def jobflow(name: str, phase: str, steps: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "creationTimestamp": "2026-01-01T11:58:55Z",
            "uid": "u",
        },
        "spec": {"steps": [{"name": s["name"]} for s in steps]},
        "status": {
            "phase": phase,
            "startTime": "2026-01-01T11:59:00Z",
            "steps": steps,
            "progress": {"display": f"{len(steps)}/{len(steps)}"},
            **status,
        },
    }


FAILED = jobflow(
    "build",
    "Failed",
    [
        {
            "name": "fetch",
            "phase": "Succeeded",
            "attempts": 1,
            "startTime": "2026-01-01T11:59:00Z",
            "completionTime": "2026-01-01T11:59:02Z",
        },
        {
            "name": "compile",
            "phase": "Failed",
            "attempts": 2,
            "startTime": "2026-01-01T11:59:10Z",
            "completionTime": "2026-01-01T11:59:13Z",
            "reason": "JobFailed",
            "message": "Job has reached the specified backoff limit (exit code 2): main.c:3: "
            "error: expected ';' before '}'",
        },
        {
            "name": "package",
            "phase": "Skipped",
            "attempts": 0,
            "reason": "UpstreamFailed",
            "message": "upstream step compile failed",
        },
    ],
    completionTime="2026-01-01T11:59:13Z",
    conditions=[{"type": "Failed", "status": "True", "reason": "StepFailed"}],
    parameters={"tag": "v1"},
    history=[
        {
            "type": "Run",
            "time": "2026-01-01T11:50:00Z",
            "message": "ended Failed (failed: compile)",
        },
        {
            "type": "Retry",
            "id": "r1",
            "requestedBy": "alice",
            "time": "2026-01-01T11:59:05Z",
            "message": "runs again: compile (attempt 2), package; parameters tag=v1",
        },
    ],
)


def job(step: str, attempt: int, outcome: str, start: str, end: str) -> dict[str, Any]:
    return {
        "metadata": {
            "labels": {
                "workflow.kube-zen.io/step": step,
                "workflow.kube-zen.io/attempt": str(attempt),
            }
        },
        "status": {
            "startTime": start,
            "conditions": [
                {
                    "type": outcome,
                    "status": "True",
                    "lastTransitionTime": end,
                    "reason": "BackoffLimitExceeded" if outcome == "Failed" else "Completed",
                }
            ],
        },
    }


def test_list_says_why_flows_failed_or_wait() -> None:
    paused = jobflow(
        "release",
        "Paused",
        [{"name": "gate", "phase": "PendingApproval"}],
    )
    stopped = jobflow(
        "nightly",
        "Failed",
        [{"name": "a", "phase": "Skipped", "reason": "Stopped"}],
        conditions=[{"type": "Failed", "status": "True", "reason": "Stopped"}],
    )
    assert views.list_lines([FAILED, paused, stopped], now=NOW) == [
        "NAME      PHASE    PROGRESS   AGE   REASON",
        "build     Failed   3/3        65s   compile: JobFailed",
        "release   Paused   1/1        65s   awaiting approval: gate",
        "nightly   Failed   1/1        65s   Stopped",
    ]
    assert views.list_lines([FAILED], now=NOW, all_namespaces=True) == [
        "NAMESPACE   NAME    PHASE    PROGRESS   AGE   REASON",
        "default     build   Failed   3/3        65s   compile: JobFailed",
    ]


def test_get_is_a_tree_with_attempts_that_fits_80_columns() -> None:
    jobs = [
        job("compile", 0, "Failed", "2026-01-01T11:50:10Z", "2026-01-01T11:50:12Z"),
        job("compile", 1, "Failed", "2026-01-01T11:59:10Z", "2026-01-01T11:59:13Z"),
        job("fetch", 0, "Complete", "2026-01-01T11:59:00Z", "2026-01-01T11:59:02Z"),
    ]
    lines = views.get_lines(FAILED, jobs, now=NOW)
    assert lines == [
        "Name:       build",
        "Namespace:  default",
        "Phase:      Failed",
        "Reason:     compile: JobFailed",
        "Started:    2026-01-01T11:59:00Z",
        "Finished:   2026-01-01T11:59:13Z",
        "Duration:   13s",
        "Progress:   3/3",
        "Parameters: tag=v1",
        "History:    Run at 2026-01-01T11:50:00Z: ended Failed (failed: compile)",
        "History:    Retry r1 by alice at 2026-01-01T11:59:05Z: runs again: compile",
        "            (attempt 2), package; parameters tag=v1",
        "",
        "STEP           PHASE       ATTEMPTS   DURATION   MESSAGE",
        "build          Failed                 13s",
        "├─ ✔ fetch     Succeeded   1          2s",
        "├─ ✖ compile   Failed      2          3s         JobFailed (exit code 2): main.…",
        "│  ├─ #1       Failed                 2s         BackoffLimitExceeded",
        "│  └─ #2       Failed                 3s         BackoffLimitExceeded",
        "└─ ○ package   Skipped     -                     upstream step compile failed",
    ]
    assert max(len(line) for line in lines) <= 80


def test_a_step_waiting_for_its_next_attempt_is_retrying() -> None:
    running = jobflow(
        "r",
        "Running",
        [
            {
                "name": "a",
                "phase": "Pending",
                "attempts": 1,
                "reason": "RetryBackoff",
                "message": "attempt 1 failed (JobFailed: x); next attempt at 2026-01-01T12:00:05Z",
            }
        ],
    )
    tree = views.get_lines(running, [], now=NOW)
    assert tree[-1].startswith("└─ ↻ a   Retrying   1")


def test_get_shows_finally_steps_and_fan_out_items_compactly() -> None:
    from tests.unit.planning_world import World, flow, step

    world = World(flow(step("each", withItems=list(range(8)), parallelism=3)))
    world.flow["spec"]["finally"] = [step("cleanup")]  # type: ignore[index]
    world.reconcile()
    first, second = world.jobs_of("each")[:2]
    world.finish(first["metadata"]["name"], ok=False)  # type: ignore[index]
    world.finish(second["metadata"]["name"], ok=True)  # type: ignore[index]
    world.advance(1)
    world.reconcile()
    lines = views.get_lines(world.flow, list(world.jobs.values()), now=world.now)
    text = "\n".join(lines)
    assert "each[0]" in text and "Failed" in text  # the failed item, by index
    assert "1/8 items" in text
    assert "cleanup (finally)" in text
    assert "each[1]" not in text  # a succeeded item says nothing more than its count
    assert all(len(line) <= 80 for line in lines)
