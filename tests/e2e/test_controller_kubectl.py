"""The controller seen through real kubectl: `kubectl get jf` shows the phase and progress the
controller wrote, `kubectl describe jf` lists the controller's Events on the flow, and
`kubectl get jobs -l workflow.kube-zen.io/flow=<name>` finds the step Jobs by their labels."""

from __future__ import annotations

from tests.fixtures.controller import flow, job_step
from tests.fixtures.kubesim import kubectl
from tests.waiting import eventually


def test_kubectl_shows_status_events_and_jobs(cluster, start_controller, tmp_path) -> None:
    start_controller()
    cluster.create_flow(flow("shown", [job_step("build"), job_step("test", "build")]))
    cluster.wait_phase("shown", "Succeeded")

    got = kubectl(cluster.server, "get", "jf", "shown", cache_dir=tmp_path, namespace="default")
    assert got.returncode == 0, got.stderr
    assert "Succeeded" in got.stdout and "2/2" in got.stdout

    def described_events() -> str:
        out = kubectl(
            cluster.server, "describe", "jf", "shown", cache_dir=tmp_path, namespace="default"
        )
        assert out.returncode == 0, out.stderr
        events = out.stdout.split("Events:", 1)[1]
        return events if "StepSucceeded" in events and "FlowSucceeded" in events else ""

    # Events are written asynchronously (gathered for a moment), so they may trail the status.
    eventually(described_events, 10, message="kubectl describe lists the Events")

    jobs = kubectl(
        cluster.server,
        "get",
        "jobs",
        "-l",
        "workflow.kube-zen.io/flow=shown",
        "-o",
        "name",
        cache_dir=tmp_path,
        namespace="default",
    )
    assert jobs.returncode == 0, jobs.stderr
    assert len(jobs.stdout.split()) == 2
