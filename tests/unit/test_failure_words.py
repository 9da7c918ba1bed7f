"""A failed step's message quotes what its container said (issue 13, item 3).

Covers: ``pods.pick_pod_details`` leads a failed container's terminated.message with its own
reason when that says more than "Error" (StartError, OOMKilled alone), leaves "Error" and a
succeeded container's message (the step's outputs) untouched; the step's message after the Job's
condition and exit code quotes one line as is, the first and last of several, cuts a long text
in the middle to ``MAX_CONTAINER_WORDS``, adds nothing when the container said nothing, and a
FailJob rule's message quotes it too.
"""

from __future__ import annotations

import pytest

from jobflow import kinds, pods
from tests.unit.planning_world import World, flow, step

NOT_FOUND = 'exec: "nosuch": executable file not found in $PATH'


def pod(reason: str, exit_code: int, message: str | None = None) -> dict[str, object]:
    terminated: dict[str, object] = {"exitCode": exit_code, "reason": reason}
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "Failed" if exit_code else "Succeeded",
            "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}],
        },
    }


@pytest.mark.parametrize(
    ("reason", "exit_code", "message", "said"),
    [
        ("StartError", 128, NOT_FOUND, f"StartError: {NOT_FOUND}"),
        ("ContainerCannotRun", 127, NOT_FOUND, f"ContainerCannotRun: {NOT_FOUND}"),
        ("OOMKilled", 137, None, "OOMKilled"),
        ("Error", 3, "disk full", "disk full"),
        ("Error", 3, None, None),
        ("Completed", 0, "version=1.2", "version=1.2"),
    ],
)
def test_pod_details_lead_with_the_containers_own_reason(
    reason: str, exit_code: int, message: str | None, said: str | None
) -> None:
    details = pods.pick_pod_details([pod(reason, exit_code, message)], container="main")
    assert (details.exit_code, details.termination_message) == (exit_code, said)


def failed_with(message: str | None, *, exit_code: int = 128) -> str:
    world = World(flow=flow(step("a")))
    world.reconcile()
    world.advance(5)
    world.finish(world.job_of("a"), ok=False, exit_code=exit_code, message=message)
    world.reconcile()
    a = world.step_status("a")
    assert a["phase"] == "Failed"
    return str(a["message"])


def test_a_missing_binary_is_named_in_the_step_message() -> None:
    assert failed_with(f"StartError: {NOT_FOUND}") == (
        f"Job has reached the specified backoff limit (exit code 128): StartError: {NOT_FOUND}"
    )


def test_a_log_tail_is_quoted_by_its_first_and_last_lines() -> None:
    tail = "Traceback (most recent call last):\n  File 'x.py', line 1\n\nValueError: bad row 7\n"
    assert failed_with(tail, exit_code=1).endswith(
        "(exit code 1): Traceback (most recent call last): ... ValueError: bad row 7"
    )


def test_a_long_text_keeps_its_start_and_its_end() -> None:
    long = "start " + "x" * 5000 + " the cause"
    message = failed_with(long)
    quoted = message.split("(exit code 128): ", 1)[1]
    assert len(quoted) <= kinds.MAX_CONTAINER_WORDS
    assert quoted.startswith("start xx") and quoted.endswith("x the cause") and " ... " in quoted


def test_nothing_said_adds_nothing() -> None:
    assert failed_with(None, exit_code=2).endswith("backoff limit (exit code 2)")
    assert failed_with(" \n ", exit_code=2).endswith("backoff limit (exit code 2)")


def test_a_failjob_rule_quotes_the_container_too() -> None:
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [128]}}]
    world = World(flow=flow(step("a"), policy={"podFailurePolicy": {"rules": rules}}))
    world.reconcile()
    world.advance(5)
    world.finish(world.job_of("a"), ok=False, exit_code=128, message=f"StartError: {NOT_FOUND}")
    world.reconcile()
    assert world.step_status("a")["message"] == (
        f"exit code 128 matched a FailJob rule: not retried: StartError: {NOT_FOUND}"
    )
