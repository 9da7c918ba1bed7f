"""`zen-flow approve` from a second process while `zen-flow run --kubeconfig` waits, and `run`
against a cluster it does not own.

Three processes share one cluster: `zen-flow serve --embedded` (the cluster, webhook and
controller), `zen-flow run --kubeconfig K` (follows the flow) and `zen-flow approve ...`.

Covers:
- approve: run shows the waiting step and the exact approve command, exits 0 once approved, and
  shows the step after the gate ran (its log);
- approve --reject: the gate fails (reason Rejected) and run exits 1;
- a flow name that already exists: run exits 2 and says so; nothing else is applied;
- approve mistakes: unknown flow, unknown step, a Job step (exit 2); a finished step (exit 1);
- a cluster without zen-flow (bare kubesim, no CRD): run and approve say zen-flow is not
  installed there (exit 1), one line each.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import kubesim
from tests.fixtures.embedded import EXAMPLES, REPO, ZEN_FLOW, EmbeddedServer, cli_env, zen_flow
from tests.fixtures.kubesim import kubectl
from tests.waiting import eventually


def _flow_file(tmp_path: Path, name: str) -> Path:
    """examples/approval.yaml under another name (the module's tests share one cluster)."""
    text = (EXAMPLES / "approval.yaml").read_text().replace("name: release\n", f"name: {name}\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def _phase(server: EmbeddedServer, name: str, cache: Path) -> str:
    result = kubectl(server, "get", "jobflow", name, "-o", "json", cache_dir=cache)
    if result.returncode != 0:
        return ""
    return str(json.loads(result.stdout).get("status", {}).get("phase", ""))


class _Run:
    """`zen-flow run --kubeconfig` in the background."""

    def __init__(self, server: EmbeddedServer, flow: Path, tmp_path: Path) -> None:
        self.out = tmp_path / f"{flow.stem}.out"
        self._out = self.out.open("w")
        self.proc = subprocess.Popen(
            [ZEN_FLOW, "run", str(flow), "--kubeconfig", str(server.kubeconfig), "--timeout", "90"],
            stdout=self._out,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=cli_env(),
        )

    def finish(self) -> tuple[int, str, str]:
        try:
            _, err = self.proc.communicate(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()
        return self.proc.returncode, self.out.read_text(), err


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "kube-cache"


def test_approval_from_a_second_process(
    embedded_server: EmbeddedServer, tmp_path: Path, cache: Path
) -> None:
    flow = _flow_file(tmp_path, "ship")
    run = _Run(embedded_server, flow, tmp_path)
    eventually(
        lambda: "waits for approval" in run.out.read_text(), 60, message="run shows the gate"
    )
    assert _phase(embedded_server, "ship", cache) == "Paused"

    approved = zen_flow(
        "approve", "ship", "release-gate", "--kubeconfig", str(embedded_server.kubeconfig)
    )

    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "approved step release-gate of JobFlow default/ship"
    code, out, err = run.finish()
    assert code == 0, out + err
    assert (
        "ship/release-gate waits for approval; approve with: zen-flow approve ship release-gate "
        f"--kubeconfig {embedded_server.kubeconfig}"
    ) in out
    assert "ship/release-gate: Succeeded" in out
    assert "deploy       | deployed rc1" in out
    assert out.splitlines()[-1].startswith("JobFlow ship Succeeded")

    # the same name again: rejected before anything runs
    again = zen_flow("run", str(flow), "--kubeconfig", str(embedded_server.kubeconfig))
    assert again.returncode == 2
    assert "JobFlow default/ship already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 2  # the cluster, then the refusal

    # the gate is decided now: approving again is refused
    late = zen_flow(
        "approve", "ship", "release-gate", "--kubeconfig", str(embedded_server.kubeconfig)
    )
    assert late.returncode == 1
    assert "already finished (Succeeded)" in late.stderr


def test_rejection_fails_the_flow(
    embedded_server: EmbeddedServer, tmp_path: Path, cache: Path
) -> None:
    flow = _flow_file(tmp_path, "halt")
    run = _Run(embedded_server, flow, tmp_path)
    eventually(lambda: _phase(embedded_server, "halt", cache) == "Paused", 60, message="paused")

    rejected = zen_flow(
        "approve",
        "halt",
        "release-gate",
        "--reject",
        "--kubeconfig",
        str(embedded_server.kubeconfig),
    )

    assert rejected.returncode == 0, rejected.stderr
    assert "rejected step release-gate of JobFlow default/halt" in rejected.stdout
    code, out, err = run.finish()
    assert code == 1, out + err
    assert "halt/release-gate: Failed" in out
    assert "halt/deploy: Skipped" in out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["no-such-flow", "x"], 2, "JobFlow default/no-such-flow not found"),
        (["gated", "nope"], 2, "has no step 'nope'; its Manual steps: release-gate"),
        (["gated", "build"], 2, "step 'build' of JobFlow default/gated is a Job step"),
    ],
)
def test_approve_mistakes_are_one_line(
    embedded_server: EmbeddedServer,
    tmp_path: Path,
    cache: Path,
    args: list[str],
    code: int,
    message: str,
) -> None:
    if _phase(embedded_server, "gated", cache) == "":
        kubectl(
            embedded_server,
            "apply",
            "-f",
            str(_flow_file(tmp_path, "gated")),
            cache_dir=cache,
        )

    result = zen_flow("approve", *args, "--kubeconfig", str(embedded_server.kubeconfig))

    assert result.returncode == code
    assert message in result.stderr
    # the cluster it used, then the mistake
    assert result.stderr.splitlines()[0].startswith("zen-flow approve: cluster: context ")
    assert len(result.stderr.strip().splitlines()) == 2, result.stderr


@pytest.fixture
def bare_cluster() -> Iterator[Any]:
    handle = kubesim.start()  # a Kubernetes API without zen-flow's CRD
    try:
        yield handle
    finally:
        handle.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["run", str(EXAMPLES / "demo.yaml")],
        ["approve", "demo", "gate"],
    ],
)
def test_cluster_without_zen_flow(bare_cluster: Any, args: list[str]) -> None:
    result = zen_flow(*args, "--kubeconfig", str(bare_cluster.kubeconfig))

    assert result.returncode == 1
    assert "zen-flow is not installed in the cluster at https://127.0.0.1:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
