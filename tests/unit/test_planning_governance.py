"""Tables of the governance rules of jobflow.planning (jobflow/planning/governance.py, the Job
step's queue handling in jobflow/kinds.py), on the in-memory world of planning_world.py; every
pass also checks idempotence (planning again at the same instant is a no-op).

Covers: executionPolicy.parallelism (spec order, WaitingForParallelism, Queued steps count, a
due retry held without a hot requeue, a step whose input fails gives its slot back); the
controller's max_starts (WaitingForCapacity, held_for_capacity, Manual steps not counted, flow
phase Queued when nothing runs); Kueue labels from queueName/priorityClassName (flow default,
step override, Job only, ours kept); a suspended Job (step Queued, reason JobSuspended, flow
Queued, run timeout not ticking), pending timeout (PendingTimeout, Job deleted, retry
applies), resumption (Running, run timeout from the Job's startTime), re-suspension after
running (preemption: Queued again, pending clock from the suspension), pods pending on an
admitted Job, the flow's own suspend leaving queued Jobs alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobflow import names
from jobflow.planning import Plan
from tests.unit.planning_world import T0, World, flow, job_template, step, ts


def created_steps(result: Plan) -> list[str]:
    return [j["metadata"]["labels"][names.LABEL_STEP] for j in result.create_jobs]  # type: ignore[index]


def phases(world: World) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in world.status["steps"]}  # type: ignore[union-attr,index]


def reasons(world: World) -> dict[str, str | None]:
    return {s["name"]: s.get("reason") for s in world.status["steps"]}  # type: ignore[union-attr,index]


def active(world: World) -> list[str]:
    """Steps whose current Job exists and has not finished (what parallelism bounds)."""
    out = []
    for job in world.jobs.values():
        conditions = job.get("status", {}).get("conditions") or []  # type: ignore[attr-defined]
        if not any(c["type"] in ("Complete", "Failed") for c in conditions):
            out.append(job["metadata"]["labels"][names.LABEL_STEP])  # type: ignore[index]
    return sorted(out)


def fan_out(width: int, **fields: object) -> list[dict[str, object]]:
    return [step(f"s{i}", **fields) for i in range(width)]


def suspend(world: World, name: str, *, at: datetime | None = None) -> None:
    """Act as Kueue's webhook (or its preemption) and then the Job controller: spec.suspend,
    pods gone, Suspended=True, startTime cleared."""
    job = world.jobs[name]
    job["spec"]["suspend"] = True  # type: ignore[index]
    job["status"] = {
        "conditions": [
            {
                "type": "Suspended",
                "status": "True",
                "reason": "JobSuspended",
                "lastTransitionTime": ts(at or world.now),
            }
        ]
    }


def resume(world: World, name: str, *, ready: int = 1) -> None:
    """Kueue admits the Job: spec.suspend false; the Job controller starts it (startTime now)."""
    job = world.jobs[name]
    job["spec"]["suspend"] = False  # type: ignore[index]
    job["status"] = {
        "conditions": [
            {
                "type": "Suspended",
                "status": "False",
                "reason": "JobResumed",
                "lastTransitionTime": ts(world.now),
            }
        ],
        "startTime": ts(world.now),
        "active": 1,
        "ready": ready,
    }


# --- executionPolicy.parallelism --------------------------------------------------------------


def test_parallelism_starts_the_first_ready_steps_in_spec_order_and_holds_the_rest() -> None:
    world = World(flow=flow(*fan_out(6), policy={"parallelism": 2}))
    result = world.reconcile()
    assert created_steps(result) == ["s0", "s1"]
    assert phases(world) == {
        "s0": "Running",
        "s1": "Running",
        **{f"s{i}": "Pending" for i in range(2, 6)},
    }
    assert reasons(world)["s2"] == "WaitingForParallelism"
    message = world.step_status("s5")["message"]
    assert "executionPolicy.parallelism is 2" in str(message)
    assert world.phase == "Running"
    assert result.held_for_capacity == 0
    seen_max = len(active(world))
    for _ in range(6):
        world.advance(5)
        first = active(world)[0]
        world.finish(world.jobs_of(first)[-1]["metadata"]["name"], ok=True)  # type: ignore[index]
        world.reconcile()
        seen_max = max(seen_max, len(active(world)))
    assert seen_max == 2
    assert world.phase == "Succeeded"
    # spec order: each freed slot went to the first waiting step
    assert [world.created_jobs.index(world.job_of(f"s{i}")) for i in range(6)] == list(range(6))


def test_parallelism_counts_a_queued_step() -> None:
    world = World(flow=flow(*fan_out(3), policy={"parallelism": 2}))
    world.reconcile()
    suspend(world, world.job_of("s0"))
    result = world.reconcile()
    assert created_steps(result) == []
    assert phases(world) == {"s0": "Queued", "s1": "Running", "s2": "Pending"}
    assert reasons(world)["s2"] == "WaitingForParallelism"


def test_a_due_retry_without_a_slot_keeps_its_reason_and_sets_no_timer() -> None:
    retry = {"limit": 2, "backoff": {"type": "Fixed", "duration": "10s"}}
    world = World(flow=flow(step("a", retryPolicy=retry), step("b"), policy={"parallelism": 1}))
    world.reconcile()  # a runs, b waits
    world.advance(5)
    world.finish(world.job_of("a"), ok=False)
    result = world.reconcile()  # a waits to retry: b takes the slot
    assert created_steps(result) == ["b"]
    assert world.step_status("a")["reason"] == "RetryBackoff"
    world.advance(30)  # a's retry is due, b still holds the slot
    result = world.reconcile()
    assert created_steps(result) == []
    assert world.step_status("a")["reason"] == "RetryBackoff"
    assert result.requeue_after is None  # not a busy loop on a due retry: b's end wakes it
    world.finish(world.job_of("b"), ok=True)
    result = world.reconcile()
    assert created_steps(result) == ["a"]
    assert world.step_status("a")["attempts"] == 2


def test_a_step_whose_input_fails_gives_its_slot_back() -> None:
    template = job_template()
    template["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:{{ parameters.tag }}"  # type: ignore[index]
    source = {"configMapKeyRef": {"name": "cm", "key": "tag"}}
    bad = step(
        "bad",
        template=template,
        continueOnFailure=True,
        inputs={"parameters": [{"name": "tag", "valueFrom": source}]},
    )
    world = World(flow=flow(bad, step("ok"), policy={"parallelism": 1}))
    result = world.reconcile()
    assert (world.step_status("bad")["phase"], world.step_status("bad")["reason"]) == (
        "Failed",
        "InputError",
    )
    assert created_steps(result) == ["ok"]


# --- the controller's cap (max_starts) ---------------------------------------------------------


def test_max_starts_holds_ready_steps_for_capacity() -> None:
    world = World(flow=flow(*fan_out(3)), max_starts=1)
    # the budget is per pass (the controller hands out free slots): not idempotent by design
    result = world.reconcile(check_idempotent=False)
    assert created_steps(result) == ["s0"]
    assert result.held_for_capacity == 2
    assert reasons(world) == {"s0": None, "s1": "WaitingForCapacity", "s2": "WaitingForCapacity"}
    assert "--max-active-jobs" in str(world.step_status("s1")["message"])
    assert world.phase == "Running"
    world.max_starts = 0  # no slot free: the same world plans the same
    result = world.reconcile()
    assert result.held_for_capacity == 2
    world.max_starts = 2
    result = world.reconcile()
    assert created_steps(result) == ["s1", "s2"]
    assert result.held_for_capacity == 0


def test_a_flow_with_no_capacity_at_all_is_queued() -> None:
    world = World(flow=flow(*fan_out(2)), max_starts=0)
    result = world.reconcile()
    assert created_steps(result) == []
    assert result.held_for_capacity == 2
    assert world.phase == "Queued"
    assert "FlowQueued" in [e.reason for e in result.events]
    queued = world.condition("Queued")
    assert (queued["status"], queued["reason"]) == ("True", "WaitingForCapacity")
    assert "s0: waiting for the controller's --max-active-jobs" in str(queued["message"])
    assert world.condition("Progressing")["status"] == "True"
    world.max_starts = None
    result = world.reconcile()
    assert created_steps(result) == ["s0", "s1"]
    assert world.phase == "Running"


def test_max_starts_does_not_hold_a_manual_step() -> None:
    world = World(flow=flow(step("m", type="Manual"), step("a")), max_starts=0)
    world.reconcile()
    assert phases(world) == {"m": "PendingApproval", "a": "Pending"}
    assert reasons(world)["a"] == "WaitingForCapacity"


# --- Kueue labels ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fields", "expected"),
    [
        ({}, {}, {}),
        ({"queueName": "team"}, {}, {"kueue.x-k8s.io/queue-name": "team"}),
        (
            {"queueName": "team", "priorityClassName": "low"},
            {"queueName": "gpu", "priorityClassName": "high"},
            {"kueue.x-k8s.io/queue-name": "gpu", "kueue.x-k8s.io/priority-class": "high"},
        ),
        (
            {"priorityClassName": "low"},
            {"queueName": "gpu"},
            {"kueue.x-k8s.io/queue-name": "gpu", "kueue.x-k8s.io/priority-class": "low"},
        ),
    ],
    ids=["none", "flow-default", "step-overrides", "mixed"],
)
def test_kueue_labels_on_the_job(
    spec: dict[str, object], fields: dict[str, object], expected: dict[str, str]
) -> None:
    world = World(flow=flow(step("a", **fields), **spec))
    result = world.reconcile()
    (job,) = result.create_jobs
    labels = job["metadata"]["labels"]  # type: ignore[index]
    kueue = {k: v for k, v in labels.items() if k.startswith("kueue.x-k8s.io/")}
    assert kueue == expected
    assert labels[names.LABEL_MANAGED_BY] == names.MANAGED_BY
    pod_labels = job["spec"]["template"]["metadata"]["labels"]  # type: ignore[index]
    assert not any(k.startswith("kueue.x-k8s.io/") for k in pod_labels)
    assert "suspend" not in job["spec"]  # type: ignore[operator]  # Kueue's webhook sets it


# --- a suspended Job: Queued, pending timeout, resumption ------------------------------------


def test_a_suspended_job_is_queued_and_its_run_timeout_does_not_tick() -> None:
    world = World(flow=flow(step("a", timeoutSeconds=30, queueName="team")))
    world.reconcile()
    suspend(world, world.job_of("a"))
    result = world.reconcile()
    assert phases(world) == {"a": "Queued"}
    assert world.step_status("a")["reason"] == "JobSuspended"
    assert "in queue team" in str(world.step_status("a")["message"])
    assert world.phase == "Queued"
    queued = world.condition("Queued")
    assert (queued["status"], queued["reason"]) == ("True", "JobSuspended")
    assert "a: Job f-a-0-" in str(queued["message"]) and "in queue team" in str(queued["message"])
    assert [e.reason for e in result.events] == ["StepQueued", "FlowQueued"]
    assert result.requeue_after is None  # no pending timeout, and the run clock is stopped
    world.advance(3600)
    result = world.reconcile()
    assert result.delete_jobs == ()
    assert phases(world) == {"a": "Queued"}


def test_the_pending_timeout_fires_and_the_retry_policy_applies() -> None:
    retry = {"limit": 1, "backoff": {"type": "Fixed", "duration": "10s"}}
    world = World(
        flow=flow(
            step("a", timeoutSeconds=5, retryPolicy=retry),
            policy={"pendingTimeoutSeconds": 60},
        )
    )
    world.reconcile()
    suspend(world, world.job_of("a"))
    result = world.reconcile()
    assert result.requeue_after == 60.0
    world.advance(60)
    result = world.reconcile()
    assert result.delete_jobs == (world.job_of("a"),)
    entry = world.step_status("a")
    assert entry["phase"] == "Pending" and entry["reason"] == "RetryBackoff"
    assert "PendingTimeout" in str(entry["message"])
    assert "pendingTimeoutSeconds=60" in str(entry["message"])
    assert "StepPendingTimedOut" in [e.reason for e in result.events]
    assert entry["nextAttemptTime"] == ts(T0 + timedelta(seconds=70))
    world.advance(10)
    result = world.reconcile()
    assert created_steps(result) == ["a"]
    # the second attempt is suspended too and times out for good
    suspend(world, world.job_of("a", 1))
    world.reconcile()
    world.advance(60)
    world.reconcile()
    entry = world.step_status("a")
    assert entry["phase"] == "Failed" and entry["reason"] == "PendingTimeout"
    assert world.phase == "Failed"


def test_a_step_pending_timeout_overrides_the_flow_default() -> None:
    world = World(
        flow=flow(step("a", pendingTimeoutSeconds=10), policy={"pendingTimeoutSeconds": 600})
    )
    world.reconcile()
    suspend(world, world.job_of("a"))
    assert world.reconcile().requeue_after == 10.0


def test_a_resumed_job_runs_and_its_run_timeout_counts_from_its_start() -> None:
    world = World(flow=flow(step("a", timeoutSeconds=30, pendingTimeoutSeconds=600)))
    world.reconcile()
    suspend(world, world.job_of("a"))
    world.reconcile()
    world.advance(100)  # far past timeoutSeconds since the step's start: it was queued
    resume(world, world.job_of("a"))
    result = world.reconcile()
    assert phases(world) == {"a": "Running"}
    assert world.step_status("a").get("reason") is None
    assert [e.reason for e in result.events] == ["StepAdmitted", "FlowResumed"]
    assert world.condition("Queued")["status"] == "False"
    assert result.requeue_after == 30.0  # run clock from the Job's startTime; pods run
    world.advance(30)
    result = world.reconcile()
    assert result.delete_jobs == (world.job_of("a"),)
    assert world.step_status("a")["reason"] == "Timeout"


def test_a_preempted_job_is_queued_again_not_failed() -> None:
    world = World(flow=flow(step("a", pendingTimeoutSeconds=50)))
    world.reconcile()
    world.jobs[world.job_of("a")]["status"] = {"active": 1, "ready": 1, "startTime": ts(T0)}
    world.advance(200)
    result = world.reconcile()
    assert result.delete_jobs == ()  # it ran: the pending budget is spent no more
    suspend(world, world.job_of("a"))  # preempted
    result = world.reconcile()
    assert phases(world) == {"a": "Queued"}
    assert result.requeue_after == 50.0  # the pending clock restarts at the suspension
    world.advance(50)
    world.reconcile()
    assert world.step_status("a")["reason"] == "PendingTimeout"


def test_a_resumed_job_with_its_first_runs_start_time_is_not_timed_out() -> None:
    """Preempted after it ran, resumed long after: until the Job controller resets startTime,
    the Job still carries the one of its first run; the run clock counts from the resume."""
    world = World(flow=flow(step("a", timeoutSeconds=30)))
    world.reconcile()
    suspend(world, world.job_of("a"))
    world.reconcile()
    world.advance(600)
    resume(world, world.job_of("a"))
    world.jobs[world.job_of("a")]["status"]["startTime"] = ts(T0)  # type: ignore[index]
    result = world.reconcile()
    assert result.delete_jobs == ()
    assert phases(world) == {"a": "Running"}
    assert result.requeue_after == 30.0


def test_pods_pending_on_an_admitted_job_count_against_the_pending_timeout() -> None:
    world = World(flow=flow(step("a", pendingTimeoutSeconds=20)))
    world.reconcile()  # the world's Job: active 1, ready 0 (its pod never starts)
    assert phases(world) == {"a": "Running"}
    world.advance(20)
    result = world.reconcile()
    assert result.delete_jobs == (world.job_of("a"),)
    entry = world.step_status("a")
    assert entry["reason"] == "PendingTimeout"
    assert "its pods had not started" in str(entry["message"])


def test_the_flows_own_suspend_leaves_a_queued_job_alone() -> None:
    world = World(flow=flow(step("a"), step("b", "a")))
    world.reconcile()
    suspend(world, world.job_of("a"))
    world.reconcile()
    world.set_spec("suspend", True)
    result = world.reconcile()
    assert result.delete_jobs == () and result.create_jobs == ()
    assert world.jobs[world.job_of("a")]["spec"]["suspend"] is True  # type: ignore[index]
    assert phases(world) == {"a": "Queued", "b": "Pending"}
    assert world.phase == "Suspended"
    world.set_spec("suspend", False)
    resume(world, world.job_of("a"))
    world.reconcile()
    assert phases(world) == {"a": "Running", "b": "Pending"}
