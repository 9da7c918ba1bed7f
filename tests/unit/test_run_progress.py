"""What `zen-flow run` renders, from plain JobFlow dicts (no cluster, no terminal).

Covers: duration formatting; a row per spec step in spec order with attempts out of
retryPolicy.limit + 1 and status fields; the plain display's one line per transition (and none
when nothing changed), log prefixes aligned to the longest step (retries included); the final
table and verdict; the error brief kept from a urllib3-style message.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from app import cluster, progress


def _flow(phase: str | None, steps: list[dict[str, Any]]) -> dict[str, Any]:
    status: dict[str, Any] = {"steps": steps}
    if phase:
        status.update(
            phase=phase, startTime="2026-01-01T00:00:00Z", completionTime="2026-01-01T00:01:05Z"
        )
    return {
        "metadata": {"name": "demo"},
        "spec": {
            "steps": [
                {"name": "build", "retryPolicy": {"limit": 2}},
                {"name": "gate", "type": "Manual"},
                {"name": "ship", "retryPolicy": {}},
            ]
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "<1s"), (0.9, "<1s"), (1, "1s"), (59, "59s"), (65, "1m05s"), (3725, "1h02m")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert progress.format_duration(seconds) == text


def test_rows_follow_the_spec_with_status_details() -> None:
    flow = _flow(
        "Running",
        [
            {
                "name": "build",
                "phase": "Running",
                "attempts": 2,
                "startTime": "2026-01-01T00:00:00Z",
            },
            {"name": "gate", "phase": "PendingApproval", "message": "ship it?"},
        ],
    )

    rows = progress.step_rows(flow)

    assert [(r.step, r.phase, r.attempt_text, r.note) for r in rows] == [
        ("build", "Running", "2/3", ""),
        ("gate", "PendingApproval", "-", "ship it?"),
        ("ship", "Pending", "-", ""),  # no status yet; retryPolicy {} means the default limit
    ]
    assert rows[2].max_attempts == 4


def test_plain_display_prints_transitions_once() -> None:
    out = io.StringIO()
    display = progress.PlainDisplay(out)
    running = _flow("Running", [{"name": "build", "phase": "Running", "attempts": 1}])

    display.update([running])
    display.update([running])  # nothing changed: nothing printed
    display.log("build#2", "hello")
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()[:2]]

    assert lines == ["JobFlow demo: Running", "demo/build: Running (attempt 1/3)"]
    # the prefix is padded to the longest step label including a retry suffix ("build#3")
    assert out.getvalue().splitlines()[-1] == "build#2 | hello"
    assert len(out.getvalue().splitlines()) == 3


def test_plain_display_tells_the_end_of_a_flow_after_the_steps_that_ended_it() -> None:
    out = io.StringIO()
    display = progress.PlainDisplay(out)
    display.update([_flow("Running", [{"name": "build", "phase": "Running", "attempts": 1}])])
    display.update([_flow("Succeeded", [{"name": "build", "phase": "Succeeded", "attempts": 1}])])
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]

    assert lines[-2:] == ["demo/build: Succeeded (attempt 1/3)", "JobFlow demo: Succeeded"]


def test_summary_table_and_verdict() -> None:
    out = io.StringIO()
    done = _flow(
        "Failed",
        [
            {
                "name": "build",
                "phase": "Failed",
                "attempts": 3,
                "startTime": "2026-01-01T00:00:00Z",
                "completionTime": "2026-01-01T00:00:42Z",
                "message": "exit code 2",
            },
            {"name": "gate", "phase": "Skipped", "message": "upstream step build failed"},
            {"name": "ship", "phase": "Skipped", "message": "upstream step build failed"},
        ],
    )

    progress.PlainDisplay(out).summary([done])

    lines = out.getvalue().splitlines()
    assert lines[1].split() == ["STEP", "PHASE", "ATTEMPT", "DURATION", "NOTE"]
    assert lines[2].split(maxsplit=4) == ["build", "Failed", "3/3", "42s", "exit code 2"]
    assert lines[-1] == "JobFlow demo Failed in 1m05s: 1 failed, 2 skipped"


def test_summary_table_fits_80_columns() -> None:
    out = io.StringIO()
    long = "Job has reached the specified backoff limit (exit code 2): " + "x" * 200
    done = _flow(
        "Failed",
        [
            {"name": "build", "phase": "Failed", "attempts": 1, "message": long},
            {"name": "ship", "phase": "Pending", "attempts": 1, "reason": "RetryBackoff"},
        ],
    )
    progress.PlainDisplay(out).summary([done])
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines[:-1]) == 80
    assert lines[2] == (
        "build  Failed    1/3      -         Job has reached the specified backoff limit…"
    )
    assert lines[4].split()[:2] == ["ship", "Retrying"]


def test_brief_keeps_the_cause_of_a_connection_error() -> None:
    message = (
        "GET /apis/x: HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded "
        "(Caused by NewConnectionError(\"HTTPSConnection(host='127.0.0.1', port=1): Failed to "
        'establish a new connection: [Errno 111] Connection refused"))'
    )

    assert cluster.brief(RuntimeError(message)) == "[Errno 111] Connection refused"
    assert cluster.brief(RuntimeError("a\n  b")) == "a b"
