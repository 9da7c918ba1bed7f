"""Leader election between two controllers on one Lease (short durations): only the holder
reconciles (the follower makes no Job or status writes and is still ready), a graceful stop
releases the Lease and the other takes over at once; a leader that dies without releasing
(SIGKILL of a controller process) is replaced once its Lease expires, and every flow finishes."""

from __future__ import annotations

import signal

from controller.kube import LEASES
from tests.fixtures.controller import FAST_TIMINGS, flow, job_step, lease_args
from tests.waiting import eventually

LEASE = "zen-flow-test-leader"


def holder(cluster) -> str:
    return cluster.kube.get(LEASES, "default", LEASE)["spec"].get("holderIdentity") or ""


def test_only_the_leader_reconciles_and_the_other_takes_over(cluster, start_controller) -> None:
    common = {"leader_elect": True, "lease_name": LEASE, "lease_namespace": "default"}
    first = start_controller(identity="first", **common)
    eventually(lambda: first.is_leader, 10, message="first leads")
    second = start_controller(identity="second", **common)
    eventually(lambda: second.ready, 5)

    cluster.create_flow(flow("lead-1", [job_step("a"), job_step("b", "a")]))
    cluster.wait_phase("lead-1", "Succeeded")
    assert holder(cluster) == "first"
    assert not second.is_leader
    assert second.reconciler is None
    created = second.metrics.registry.get_sample_value(
        "zenflow_api_requests_total", {"verb": "create", "code": "201"}
    )
    assert not created, "the follower created nothing"
    assert first.reconciler is not None and first.reconciler.writes >= 4

    first.stop(timeout=5)
    eventually(lambda: second.is_leader, 5, message="second takes over after the release")
    assert holder(cluster) == "second"
    cluster.create_flow(flow("lead-2", [job_step("a"), job_step("b", "a")]))
    cluster.wait_phase("lead-2", "Succeeded")
    assert second.reconciler is not None and second.reconciler.writes >= 4


def test_a_killed_leader_is_replaced_after_its_lease_expires(
    cluster, start_controller, spawn_controller
) -> None:
    t = FAST_TIMINGS
    proc = spawn_controller(*lease_args("doomed", LEASE)).proc
    try:
        eventually(lambda: holder(cluster) == "doomed", 15, message="process leads")
        cluster.create_flow(
            flow("failover", [job_step("a", duration=0.5), job_step("b", "a", duration=0.5)])
        )
        eventually(lambda: cluster.jobs("failover"), 10)
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        survivor = start_controller(
            identity="survivor", leader_elect=True, lease_name=LEASE, lease_namespace="default"
        )
        eventually(lambda: survivor.is_leader, t.lease_duration + 5, message="survivor leads")
        cluster.wait_phase("failover", "Succeeded")
        assert holder(cluster) == "survivor"
        steps = [
            j["metadata"]["labels"]["workflow.kube-zen.io/step"] for j in cluster.jobs("failover")
        ]
        assert sorted(steps) == ["a", "b"]
    finally:
        if proc.poll() is None:
            proc.kill()
