"""jobflow.model: camelCase round trip (by_alias, exclude_none), populate_by_name, unknown fields
rejected in spec structures with their location, templates kept whole, status keeps unknown
fields, enums contain every phase, strict types."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from jobflow import model

FLOW: dict[str, Any] = {
    "apiVersion": "workflow.kube-zen.io/v1alpha1",
    "kind": "JobFlow",
    "metadata": {"name": "x", "labels": {"a": "b"}},
    "spec": {
        "executionPolicy": {
            "concurrencyPolicy": "Replace",
            "concurrencyKey": "k",
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onExitCodes": {"containerName": "main", "operator": "In", "values": [137]},
                    }
                ]
            },
        },
        "suspend": False,
        "resourceTemplates": {
            "configMapTemplates": [{"metadata": {"name": "c"}, "data": {"k": "v"}, "x": {"y": 1}}]
        },
        "steps": [
            {
                "name": "a",
                "template": {
                    "kind": "Job",
                    "spec": {"anything": [1, {"deep": True}]},
                    "unknownTop": 1,
                },
                "retryPolicy": {
                    "limit": 2,
                    "backoff": {"type": "Linear", "factor": 1.5, "duration": "1m"},
                },
                "outputs": {
                    "parameters": [{"name": "v", "valueFrom": {"terminationMessageKey": "v"}}],
                    "artifacts": [
                        {"name": "r", "path": "/r", "s3": {"accessKeyIDSecretRef": {"name": "s"}}}
                    ],
                },
            },
            {
                "name": "b",
                "type": "Manual",
                "dependencies": ["a"],
                "inputs": {
                    "parameters": [
                        {
                            "name": "p",
                            "valueFrom": {"stepOutputRef": {"step": "a", "parameter": "v"}},
                        }
                    ],
                    "artifacts": [{"name": "r", "from": "a/r"}],
                },
            },
        ],
    },
    "status": {
        "phase": "Paused",
        "steps": [{"name": "b", "phase": "PendingApproval", "attempts": 0, "futureField": 1}],
        "progress": {"completed": 1, "total": 2, "display": "1/2"},
        "conditions": [
            {
                "type": "AwaitingApproval",
                "status": "True",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
            }
        ],
        "newerControllerField": {"x": 1},
    },
}


def test_round_trip_is_lossless() -> None:
    parsed = model.JobFlow.model_validate(FLOW)
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == FLOW
    assert parsed.spec.steps[1].inputs is not None
    assert parsed.spec.steps[1].inputs.artifacts is not None
    assert parsed.spec.steps[1].inputs.artifacts[0].from_ == "a/r"
    assert parsed.status is not None and parsed.status.phase is model.FlowPhase.PAUSED


def test_populate_by_name() -> None:
    step = model.Step(name="a", continue_on_failure=True, timeout_seconds=5)
    assert step.model_dump(by_alias=True, exclude_none=True) == {
        "name": "a",
        "continueOnFailure": True,
        "timeoutSeconds": 5,
    }


def test_unknown_spec_field_has_location() -> None:
    with pytest.raises(pydantic.ValidationError) as err:
        model.JobFlow.model_validate(
            {"spec": {"steps": [{"name": "a", "retryPolicy": {"limits": 1}}]}}
        )
    (error,) = err.value.errors()
    assert error["type"] == "extra_forbidden"
    assert error["loc"] == ("spec", "steps", 0, "retryPolicy", "limits")


def test_strict_types() -> None:
    with pytest.raises(pydantic.ValidationError):
        model.Step.model_validate({"name": "a", "timeoutSeconds": "5"})
    with pytest.raises(pydantic.ValidationError):
        model.Step.model_validate({"name": "a", "continueOnFailure": 1})


def test_phases() -> None:
    assert [p.value for p in model.FlowPhase] == [
        "Pending",
        "Running",
        "Paused",
        "Queued",
        "Suspended",
        "Succeeded",
        "Failed",
    ]
    assert {p.value for p in model.StepPhase} == {
        "Pending",
        "Running",
        "Queued",
        "Succeeded",
        "Failed",
        "Skipped",
        "PendingApproval",
    }
    assert model.FlowPhase.RUNNING == "Running"
