"""`zen-flow run` of the data-passing examples: the real CLI in a subprocess, embedded cluster.

Covers: examples/parameters.yaml succeeds in sim and local modes, and in local mode the deploy
step's log shows the value computed by the step before it (placeholder and env var) and the
`when` on an output runs big-batch; examples/artifacts.yaml succeeds in local mode and the
consumer's log shows the file the producer wrote; -o json shows the outputs in status.
"""

from __future__ import annotations

import json

import pytest

from tests.fixtures.embedded import EXAMPLES, zen_flow


@pytest.mark.parametrize("mode", ["sim", "local"])
def test_parameters_example(mode: str) -> None:
    result = zen_flow("run", str(EXAMPLES / "parameters.yaml"), "--exec", mode)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "JobFlow parameters-demo Succeeded" in result.stdout
    if mode == "local":
        assert "deploy    | deploying version 1.4.2" in result.stdout
        assert "deploy    | env VERSION=1.4.2" in result.stdout
        assert "big-batch | more than 10 rows" in result.stdout


def test_artifacts_example_passes_a_file() -> None:
    result = zen_flow("run", str(EXAMPLES / "artifacts.yaml"), "--exec", "local")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "consume | read: rows: 42" in result.stdout


def test_outputs_in_the_final_status() -> None:
    result = zen_flow(
        "run", str(EXAMPLES / "parameters.yaml"), str(EXAMPLES / "artifacts.yaml"), "-o", "json"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    flows = {f["metadata"]["name"]: f for f in json.loads(result.stdout)["items"]}
    steps = {s["name"]: s for s in flows["parameters-demo"]["status"]["steps"]}
    assert steps["compute"]["outputs"]["parameters"] == {"version": "1.4.2", "rows": "42"}
    produced = flows["artifacts-demo"]["status"]["steps"][0]
    assert produced["outputs"]["artifacts"] == [
        {"name": "report", "path": "artifacts-demo/produce/report"}
    ]
