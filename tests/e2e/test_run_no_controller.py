"""`zen-flow run --kubeconfig` on a cluster where the JobFlow CRD is installed but no controller
runs says so once, after NO_CONTROLLER_AFTER (10 s), and keeps waiting (issue 13, item 9).

Covers: against `zen-flow serve --embedded --webhook-only` (the CRD and the webhooks, no
controller) `run` prints exactly one line naming the flow and what to check, keeps following,
and ends at --timeout (exit 3, the timeout line); against a cluster whose controller runs, a
flow that takes longer than 10 s gets no such line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.fixtures.embedded import EXAMPLES, EmbeddedServer, cluster_line, zen_flow

NOTICE = (
    "zen-flow run: no controller has picked up JobFlow default/demo after 10 s: is zen-flow "
    "running (kubectl get pods -A -l app.kubernetes.io/name=zen-flow)? Still waiting."
)

LONG_FLOW = """
apiVersion: workflow.kube-zen.io/v1alpha1
kind: JobFlow
metadata:
  name: long
spec:
  steps:
    - name: wait
      template:
        apiVersion: batch/v1
        kind: Job
        spec:
          template:
            metadata:
              annotations:
                kubesim.io/duration: "12"
            spec:
              restartPolicy: Never
              containers: [{name: main, image: busybox:1.36}]
"""


def test_no_controller_is_said_once_and_run_keeps_waiting(
    start_embedded: Callable[..., EmbeddedServer],
) -> None:
    server = start_embedded("--webhook-only")

    result = zen_flow(
        "run",
        str(EXAMPLES / "demo.yaml"),
        "--kubeconfig",
        str(server.kubeconfig),
        "--timeout",
        "13",
    )

    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        cluster_line(server, "run").rstrip("\n"),
        NOTICE,
        "zen-flow run: --timeout 13s reached; JobFlow demo (Pending) did not finish (it keeps "
        "running in the cluster)",
    ]


def test_a_running_controller_gets_no_notice(
    embedded_server: EmbeddedServer, tmp_path: Path
) -> None:
    flow = tmp_path / "long.yaml"
    flow.write_text(LONG_FLOW)

    result = zen_flow("run", str(flow), "--kubeconfig", str(embedded_server.kubeconfig))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == cluster_line(embedded_server, "run")
    assert result.stdout.splitlines()[-1].startswith("JobFlow long Succeeded")
