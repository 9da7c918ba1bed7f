"""The controller seen through real kubectl: `kubectl get jf` shows the phase and progress the
controller wrote, `kubectl describe jf` lists the controller's Events on the flow, and
`kubectl get jobs -l workflow.kube-zen.io/flow=<name>` finds the step Jobs by their labels."""

from __future__ import annotations

from tests.fixtures.controller import flow, job_step
from tests.fixtures.kubesim import kubectl


def test_kubectl_shows_status_events_and_jobs(cluster, start_controller, tmp_path) -> None:
    start_controller()
    cluster.create_flow(flow("shown", [job_step("build"), job_step("test", "build")]))
    cluster.wait_phase("shown", "Succeeded")

    got = kubectl(cluster.server, "get", "jf", "shown", cache_dir=tmp_path, namespace="default")
    assert got.returncode == 0, got.stderr
    assert "Succeeded" in got.stdout and "2/2" in got.stdout

    described = kubectl(
        cluster.server, "describe", "jf", "shown", cache_dir=tmp_path, namespace="default"
    )
    assert described.returncode == 0, described.stderr
    events = described.stdout.split("Events:", 1)[1]
    assert "StepSucceeded" in events and "FlowSucceeded" in events

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
