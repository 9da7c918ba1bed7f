"""Output and input parameters with the real controller against kubesim (simulated Jobs).

Covers: a value from one step's termination message (``key=value`` lines and a JSON object with
a newline, quotes and braces) is stored in ``status.steps[].outputs.parameters`` and reaches
the next step's Job command (``{{ parameters.<name> }}``, hyphenated name) and env; ``when``
on an output parameter runs one branch and skips the other; a missing non-optional output
fails the step (reason OutputError) and skips its dependants; a ``jsonPath`` output reads any
field of the step's Job, its spec included (the controller's cache keeps a Job's spec packed).
"""

from __future__ import annotations

import json
from typing import Any

from tests.fixtures.controller import flow, job_step

REF = {"stepOutputRef": {"step": "compute", "parameter": "image-tag"}}


def consumer(name: str, *deps: str, **fields: Any) -> dict[str, Any]:
    step = job_step(name, *deps, **fields)
    step["inputs"] = {"parameters": [{"name": "image-tag", "valueFrom": REF}]}
    container = step["template"]["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["sh", "-c", "deploy {{ parameters.image-tag }} now"]
    return step


def compute(message: str, **fields: Any) -> dict[str, Any]:
    step = job_step("compute", termination_message=message, **fields)
    step["outputs"] = {
        "parameters": [
            {"name": "image-tag"},
            {"name": "rows", "valueFrom": {"terminationMessageKey": "row-count"}, "optional": True},
        ]
    }
    return step


def main_container(job: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return container


def test_termination_message_value_reaches_status_command_and_env(
    cluster, start_controller
) -> None:
    start_controller()
    cluster.create_flow(
        flow("params", [compute("image-tag=v1.4.2\nrow-count=42\n"), consumer("deploy", "compute")])
    )
    status = cluster.wait_phase("params", "Succeeded")
    compute_status = next(s for s in status["steps"] if s["name"] == "compute")
    assert compute_status["outputs"] == {"parameters": {"image-tag": "v1.4.2", "rows": "42"}}
    (deploy,) = cluster.step_jobs("params", "deploy")
    container = main_container(deploy)
    assert container["command"] == ["sh", "-c", "deploy v1.4.2 now"]
    assert {"name": "IMAGE_TAG", "value": "v1.4.2"} in container["env"]


def test_json_path_outputs_read_the_jobs_spec_status_and_metadata(
    cluster, start_controller
) -> None:
    start_controller()
    step = job_step("count")
    step["template"]["spec"]["backoffLimit"] = 2
    step["outputs"] = {
        "parameters": [
            {"name": "limit", "valueFrom": {"jsonPath": "$.spec.backoffLimit"}},
            {"name": "done", "valueFrom": {"jsonPath": "$.status.succeeded"}},
            {"name": "where", "valueFrom": {"jsonPath": "$.metadata.namespace"}},
        ]
    }
    cluster.create_flow(flow("paths", [step]))
    status = cluster.wait_phase("paths", "Succeeded")
    assert status["steps"][0]["outputs"] == {
        "parameters": {"limit": "2", "done": "1", "where": "default"}
    }


def test_json_message_with_awkward_characters(cluster, start_controller) -> None:
    start_controller()
    # (no "{{ parameters." text: in sim mode the message is an annotation of the template, which
    # validation checks for placeholders)
    value = 'v2 "rc"\n{braces} $(HOME) {{ x }}'
    cluster.create_flow(
        flow("json", [compute(json.dumps({"image-tag": value})), consumer("deploy", "compute")])
    )
    status = cluster.wait_phase("json", "Succeeded")
    outputs = next(s for s in status["steps"] if s["name"] == "compute")["outputs"]
    assert outputs == {"parameters": {"image-tag": value}}
    container = main_container(cluster.step_jobs("json", "deploy")[0])
    # "$" is written "$$" where the kubelet expands $(VAR): the process sees the value itself.
    escaped = value.replace("$", "$$")
    assert container["command"][2] == f"deploy {escaped} now"
    assert {"name": "IMAGE_TAG", "value": escaped} in container["env"]


def test_when_on_an_output_parameter(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(
        flow(
            "branch",
            [
                compute("image-tag=v1\nrow-count=42"),
                job_step(
                    "big", "compute", when="int(steps['compute'].outputs.parameters['rows']) > 10"
                ),
                job_step(
                    "small", "compute", when="steps['compute'].outputs.parameters['rows'] == '3'"
                ),
            ],
        )
    )
    status = cluster.wait_phase("branch", "Succeeded")
    phases = {s["name"]: s["phase"] for s in status["steps"]}
    assert phases == {"compute": "Succeeded", "big": "Succeeded", "small": "Skipped"}
    assert cluster.step_jobs("branch", "small") == []


def test_missing_output_fails_the_step(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("missing", [compute("row-count=1"), consumer("deploy", "compute")]))
    status = cluster.wait_phase("missing", "Failed")
    steps = {s["name"]: s for s in status["steps"]}
    assert (steps["compute"]["phase"], steps["compute"]["reason"]) == ("Failed", "OutputError")
    assert "image-tag" in steps["compute"]["message"]
    assert steps["deploy"]["phase"] == "Skipped"
    assert cluster.step_jobs("missing", "deploy") == []
