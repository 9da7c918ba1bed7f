"""What `zen-flow retry` checks and writes before the cluster sees it (app.retry_cmd): the
steps that run again, the refusals (unknown step or parameter, a running flow, nothing to
retry) and the merge patch, which clears an older request's fields and the approval of a
Manual step that runs again."""

from __future__ import annotations

from typing import Any

import pytest

from app.cli import CommandError
from app.retry_cmd import check_retry, retry_patch
from jobflow import requests


def failed_flow(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "f",
            "annotations": {
                "approve.workflow.kube-zen.io/gate": "false",
                "approve.workflow.kube-zen.io/other": "true",
            },
        },
        "spec": {
            "parameters": [{"name": "tag", "value": "v1"}],
            "steps": [
                {"name": "build"},
                {"name": "gate", "type": "Manual", "dependencies": ["build"]},
                {"name": "ship", "dependencies": ["gate"]},
                {"name": "other", "type": "Manual"},
            ],
        },
        "status": {
            "phase": "Failed",
            "steps": [
                {"name": "build", "phase": "Succeeded", "attempts": 1},
                {"name": "gate", "phase": "Failed", "reason": "Rejected"},
                {"name": "ship", "phase": "Skipped"},
                {"name": "other", "phase": "Succeeded"},
            ],
            **status,
        },
    }


def retry(*steps: str, **parameters: str) -> requests.Retry:
    return requests.Retry(id="r1", steps=steps, parameters=parameters, requested_by=None)


def test_failed_and_skipped_run_again_and_a_rejected_gate_waits_again() -> None:
    flow = failed_flow()
    chosen = check_retry(flow, retry(tag="v2"), ref="default/f")
    assert chosen == ["gate", "ship"]
    assert retry_patch(flow, retry(tag="v2"), chosen) == {
        "spec": {
            "retry": {"id": "r1", "steps": None, "parameters": {"tag": "v2"}, "requestedBy": None}
        },
        "metadata": {"annotations": {"approve.workflow.kube-zen.io/gate": None}},
    }


def test_a_named_step_runs_again_with_its_dependants() -> None:
    assert check_retry(failed_flow(), retry("build"), ref="default/f") == ["build", "gate", "ship"]


@pytest.mark.parametrize(
    ("flow", "request_", "message", "code"),
    [
        (
            failed_flow(),
            retry("nope"),
            "JobFlow default/f has no step 'nope'; its steps: build, gate, ship, other",
            2,
        ),
        (
            failed_flow(),
            retry(tga="x"),
            "JobFlow default/f has no parameter 'tga' (spec.parameters: tag)",
            2,
        ),
        (
            failed_flow(phase="Running"),
            retry(),
            "JobFlow default/f is Running; a retry runs a finished flow again: stop it first "
            "(zen-flow stop f), or wait for it to end",
            1,
        ),
        (
            failed_flow(
                phase="Succeeded",
                steps=[
                    {"name": n, "phase": "Succeeded"} for n in ("build", "gate", "ship", "other")
                ],
            ),
            retry(),
            "JobFlow default/f succeeded with no Failed or Skipped step: nothing to retry; name "
            "the steps to run again with --step",
            1,
        ),
    ],
)
def test_refusals(flow: dict[str, Any], request_: requests.Retry, message: str, code: int) -> None:
    with pytest.raises(CommandError) as caught:
        check_retry(flow, request_, ref="default/f")
    assert (str(caught.value), caught.value.exit_code) == (message, code)


def test_a_stopping_flow_may_be_retried_ahead() -> None:
    stopping = failed_flow(phase="Running", stop={"type": "Stop", "id": "s1"})
    assert check_retry(stopping, retry(), ref="default/f") == ["gate", "ship"]
