"""`zen-flow run --kubeconfig` against an API server that fails a share of its reads.

Covers: with 30% of GETs and LISTs answered 500 InternalError (kubesim fault injection on an
embedded cluster started in the test process), `run` still checks, applies and follows the flow
to Succeeded and exits 0: one-shot requests are retried on 5xx and the follow loop keeps polling
through errors. The controller (in the same cluster) rides out the same faults.
"""

from __future__ import annotations

from app import embedded
from tests.fixtures.embedded import EXAMPLES, zen_flow


def test_run_rides_out_api_errors() -> None:
    with embedded.start() as cluster:
        # a third of the reads fail with 500 InternalError while `run` follows the flow
        cluster.kubesim.faults.configure(error_rate={"get": 0.3, "list": 0.3}, seed=7)

        result = zen_flow(
            "run", str(EXAMPLES / "demo.yaml"), "--kubeconfig", str(cluster.kubeconfig)
        )
        injected = dict(cluster.kubesim.faults.injected)
        cluster.kubesim.faults.reset()

    assert result.returncode == 0, result.stdout + result.stderr
    assert injected.get("get", 0) + injected.get("list", 0) > 0
    assert result.stdout.splitlines()[-1].startswith("JobFlow demo Succeeded")
