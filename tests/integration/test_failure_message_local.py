"""A step whose container cannot start says why, with the real controller and kubesim ``local``.

Covers (issue 13, item 3): a step whose command is a missing binary, and one whose container
has no command, fail with the container's own reason and words in ``status.steps[].message``
(``StartError`` and the runtime's ``exec: "...": executable file not found in $PATH``), after
the Job's condition and exit code 128, instead of only "reached the specified backoff limit".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import kubesim
from tests.fixtures.controller import flow


@pytest.fixture
def kubesim_server() -> Iterator[Any]:
    """This module's cluster runs Job containers as local processes."""
    handle = kubesim.start(exec_mode="local")
    try:
        yield handle
    finally:
        handle.stop()


def local_step(name: str, container: dict[str, Any]) -> dict[str, Any]:
    pod = {"restartPolicy": "Never", "containers": [{"name": "main", "image": "x", **container}]}
    return {
        "name": name,
        "continueOnFailure": True,
        "template": {"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": pod}}},
    }


def test_a_container_that_cannot_start_says_why(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(
        flow(
            "cannot-start",
            [
                local_step("missing", {"command": ["zen-flow-no-such-binary", "--help"]}),
                local_step("no-command", {}),
            ],
        )
    )
    status = cluster.wait_phase("cannot-start", "Succeeded", timeout=30)
    steps = {s["name"]: s for s in status["steps"]}
    missing, no_command = steps["missing"], steps["no-command"]
    assert (missing["phase"], missing["exitCode"]) == ("Failed", 128)
    assert missing["message"] == (
        "Job has reached the specified backoff limit (exit code 128): StartError: unable to"
        ' start container process: exec: "zen-flow-no-such-binary": executable file not found'
        " in $PATH"
    )
    assert (no_command["phase"], no_command["exitCode"]) == ("Failed", 128)
    assert no_command["message"].startswith(
        "Job has reached the specified backoff limit (exit code 128): StartError: kubesim local"
        " mode runs the container's command and args and no image entrypoint"
    )
