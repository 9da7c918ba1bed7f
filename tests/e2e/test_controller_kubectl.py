"""The controller seen through real kubectl: `kubectl get jf` shows the phase and progress the
controller wrote (Queued for a Job suspended as Kueue does, by `kubectl patch`), `kubectl
describe jf` lists the controller's Events on the flow, `kubectl get jobs -l
workflow.kube-zen.io/flow=<name>` finds the step Jobs by their labels, and `kubectl explain`
documents the queue fields."""

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


def test_kubectl_shows_a_flow_queued_by_kueue(cluster, start_controller, tmp_path) -> None:
    """A Job suspended as Kueue does (here by `kubectl patch`) shows as Queued in
    `kubectl get jf`; resumed, the flow runs to Succeeded. `kubectl explain` documents the
    fields."""
    start_controller()
    cluster.create_flow(flow("waits", [job_step("train", duration=1.0)], queueName="team"))

    def job_name() -> str:
        jobs = cluster.step_jobs("waits", "train")
        return jobs[0]["metadata"]["name"] if jobs else ""

    name = eventually(job_name, 10)
    run = {"cache_dir": tmp_path, "namespace": "default"}
    patched = kubectl(
        cluster.server,
        "patch",
        "job",
        name,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":true}}',
        **run,
    )
    assert patched.returncode == 0, patched.stderr

    def shown_queued() -> str:
        got = kubectl(cluster.server, "get", "jf", "waits", **run)
        assert got.returncode == 0, got.stderr
        return got.stdout if "Queued" in got.stdout else ""

    eventually(shown_queued, 10, message="kubectl get jf says Queued")
    resumed = kubectl(
        cluster.server,
        "patch",
        "job",
        name,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
        **run,
    )
    assert resumed.returncode == 0, resumed.stderr
    cluster.wait_phase("waits", "Succeeded")

    explained = kubectl(cluster.server, "explain", "jobflow.spec.queueName", **run)
    assert explained.returncode == 0, explained.stderr
    assert "kueue.x-k8s.io/queue-name" in explained.stdout
    explained = kubectl(
        cluster.server, "explain", "jobflow.spec.steps.pendingTimeoutSeconds", **run
    )
    assert explained.returncode == 0, explained.stderr
    assert "PendingTimeout" in explained.stdout
