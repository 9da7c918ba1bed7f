"""Table-driven tests of jobflow.planning.plan, one row per semantic of DESIGN section 3.

Each row prepares an in-memory world (flow + Jobs + clock, tests/unit/planning_world.py) by
running earlier passes and finishing Jobs, then plans once and checks creates/deletes/status/
events/requeue_after. Every row also checks idempotence: applying the plan and planning again
at the same instant gives no creates/deletes/events and an identical status.

Covers: spec-order starts (linear, diamond), dependency readiness, failure stop + Skipped
(UpstreamFailed) + flow Failed after running steps finish, continueOnFailure, retries as new
Jobs with Fixed/Linear/Exponential delays, retry limit, flow backoffLimit, Job outcome from
conditions (not counters), step timeout (Background delete, reason Timeout, then retry),
activeDeadlineSeconds, frozen finished flows, TTL, `when` (literals, CEL, outputs),
Manual approval/rejection/pre-approval and Paused, suspend/resume, Forbid/Replace/Allow,
pod failure policy (FailJob/Ignore/Count, needs_pod_details), resourceTemplates (created once,
references rewritten), Job manifest shape, adoption after a lost status write, a missing Job
re-created, invalid spec (Accepted=False once), observedGeneration, conditions'
lastTransitionTime, progress, events, requeue_after as the earliest deadline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from jobflow import names, planning
from jobflow.errors import Problem
from jobflow.model import JobFlowStatus
from jobflow.planning import Plan
from tests.unit.planning_world import (
    T0,
    PodResult,
    World,
    assert_noop,
    flow,
    job_template,
    step,
    ts,
)


def reasons(result: Plan) -> list[str]:
    return [e.reason for e in result.events]


def created(result: Plan) -> list[str]:
    return [str(j["metadata"]["name"]) for j in result.create_jobs]  # type: ignore[index]


def created_steps(result: Plan) -> list[str]:
    return [
        j["metadata"]["labels"][names.LABEL_STEP]  # type: ignore[index]
        for j in result.create_jobs
    ]


def phases(world: World) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in world.status["steps"]}  # type: ignore[union-attr,index]


def start(world: World) -> Plan:
    return world.reconcile()


def run_ok(world: World, *steps_: str, seconds: float = 5) -> None:
    """Finish the current attempt of each step successfully, then reconcile."""
    world.advance(seconds)
    for name in steps_:
        world.finish(world.jobs_of(name)[-1]["metadata"]["name"], ok=True)  # type: ignore[index]
    world.reconcile()


def fail(
    world: World,
    name: str,
    *,
    exit_code: int | None = None,
    seconds: float = 5,
    pods_readable: bool = True,
) -> None:
    world.advance(seconds)
    world.finish(
        world.jobs_of(name)[-1]["metadata"]["name"],  # type: ignore[index]
        ok=False,
        exit_code=exit_code,
        pods_readable=pods_readable,
    )


@dataclass(frozen=True)
class Row:
    id: str
    flow: Callable[[], dict[str, object]]
    prepare: Callable[[World], None]
    check: Callable[[Plan, World], None]


def nothing(_world: World) -> None:
    return None


# --- scheduling ------------------------------------------------------------------------------


def check_linear_first(result: Plan, world: World) -> None:
    assert created_steps(result) == ["a"]
    assert reasons(result) == ["FlowStarted", "StepStarted"]
    assert world.phase == "Running"
    assert phases(world) == {"a": "Running", "b": "Pending", "c": "Pending"}
    a = world.step_status("a")
    assert a["attempts"] == 1
    assert a["jobRef"] == {"name": world.job_of("a"), "namespace": "ns"}
    assert a["startTime"] == ts(T0)
    assert world.status["startTime"] == ts(T0)
    assert world.status["observedGeneration"] == 1
    assert world.status["progress"] == {
        "completed": 0,
        "total": 3,
        "succeeded": 0,
        "failed": 0,
        "skipped": 0,
        "display": "0/3",
    }
    assert result.requeue_after is None


def prep_linear_second(world: World) -> None:
    start(world)
    world.advance(5)
    world.finish(world.job_of("a"), ok=True)


def check_linear_second(result: Plan, world: World) -> None:
    assert created_steps(result) == ["b"]
    assert reasons(result) == ["StepSucceeded", "StepStarted"]
    assert world.step_status("a")["completionTime"] == ts(T0 + timedelta(seconds=5))
    assert world.status["progress"]["display"] == "1/3"  # type: ignore[index]
    # Still Running: the condition did not transition, its time did not move.
    assert world.condition("Progressing")["lastTransitionTime"] == ts(T0)


def diamond() -> dict[str, object]:
    # c is declared before b: ready steps start in spec order, not name or DAG order.
    return flow(step("a"), step("c", "a"), step("b", "a"), step("d", "b", "c"))


def check_diamond(result: Plan, world: World) -> None:
    assert created_steps(result) == ["c", "b"]


def prep_diamond_join(world: World) -> None:
    start(world)
    run_ok(world, "a")
    run_ok(world, "b")  # c still running: d waits
    assert phases(world)["d"] == "Pending"
    world.advance(1)
    world.finish(world.job_of("c"), ok=True)


def check_diamond_join(result: Plan, world: World) -> None:
    assert created_steps(result) == ["d"]


def prep_all_done(world: World) -> None:
    start(world)
    run_ok(world, "a")
    run_ok(world, "b")
    world.advance(5)
    world.finish(world.job_of("c"), ok=True)


def check_succeeded(result: Plan, world: World) -> None:
    assert world.phase == "Succeeded"
    assert world.status["completionTime"] == ts(world.now)
    assert reasons(result) == ["StepSucceeded", "FlowSucceeded"]
    assert world.condition("Complete")["status"] == "True"
    assert world.condition("Progressing")["status"] == "False"
    assert world.condition("Failed")["status"] == "False"
    assert result.requeue_after == 86400  # the default TTL


# --- failure ---------------------------------------------------------------------------------


def prep_fail_a(world: World) -> None:
    start(world)
    fail(world, "a")


def check_failure_skips(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.phase == "Failed"
    assert phases(world) == {"a": "Failed", "b": "Skipped", "c": "Skipped"}
    assert world.step_status("b")["reason"] == "UpstreamFailed"
    assert world.step_status("a")["reason"] == "JobFailed"
    assert world.condition("Failed")["status"] == "True"
    assert world.condition("Failed")["reason"] == "StepFailed"
    assert reasons(result) == ["StepFailed", "StepSkipped", "StepSkipped", "FlowFailed"]
    assert world.jobs_of("a"), "the failed Job is kept for its logs"


def fork() -> dict[str, object]:
    # a and x run in parallel; b depends on a; y depends on x.
    return flow(step("a"), step("x"), step("b", "a"), step("y", "x"))


def check_failure_waits_for_running(result: Plan, world: World) -> None:
    # x is still running: it finishes; y can no longer start (failure stops new starts).
    assert world.phase == "Running"
    assert phases(world) == {"a": "Failed", "x": "Running", "b": "Skipped", "y": "Skipped"}
    assert world.step_status("b")["reason"] == "UpstreamFailed"
    assert world.step_status("y")["reason"] == "FlowFailed"
    assert result.create_jobs == ()
    assert result.delete_jobs == ()


def prep_fail_then_other_finishes(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    world.advance(3)
    world.finish(world.job_of("x"), ok=True)


def check_failed_after_running_finished(result: Plan, world: World) -> None:
    assert world.phase == "Failed"
    assert phases(world)["x"] == "Succeeded"
    assert reasons(result) == ["StepSucceeded", "FlowFailed"]


def check_continue_on_failure(result: Plan, world: World) -> None:
    assert phases(world)["a"] == "Failed"
    assert created_steps(result) == ["b"]
    assert world.phase == "Running"


def prep_cof_to_end(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    run_ok(world, "b")
    world.advance(1)
    world.finish(world.job_of("c"), ok=True)


def check_cof_flow_succeeds(result: Plan, world: World) -> None:
    assert world.phase == "Succeeded"
    assert world.condition("Failed")["status"] == "False"
    assert world.status["progress"]["failed"] == 1  # type: ignore[index]


def check_not_from_counters(result: Plan, world: World) -> None:
    assert phases(world)["a"] == "Running"
    assert result.create_jobs == ()


def prep_counters_only(world: World) -> None:
    start(world)
    job = world.jobs[world.job_of("a")]
    job["status"] = {"failed": 1, "succeeded": 1, "active": 1}


# --- retries ---------------------------------------------------------------------------------


def retry_flow(kind: str = "Fixed", limit: int = 2, **extra: object) -> Callable[[], dict]:
    def build() -> dict[str, object]:
        policy = {"limit": limit, "backoff": {"type": kind, "duration": "10s"}}
        return flow(step("a", retryPolicy=policy), step("b", "a"), **extra)

    return build


def check_retry_scheduled(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert a["phase"] == "Pending"
    assert a["reason"] == "RetryBackoff"
    assert a["retries"] == 1
    assert a["attempts"] == 1
    failed_at = T0 + timedelta(seconds=5)
    assert a["nextAttemptTime"] == ts(failed_at + timedelta(seconds=10))
    assert result.requeue_after == 10
    assert result.create_jobs == ()
    assert reasons(result) == ["StepRetrying"]
    assert world.phase == "Running"


def prep_retry_due(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    world.advance(10)


def check_retry_new_job(result: Plan, world: World) -> None:
    assert created(result) == [world.job_of("a", 1)]
    job = result.create_jobs[0]
    assert job["metadata"]["labels"][names.LABEL_ATTEMPT] == "1"  # type: ignore[index]
    assert world.job_of("a", 0) in world.jobs, "the failed attempt's Job is kept"
    a = world.step_status("a")
    assert (a["phase"], a["attempts"], a["retries"]) == ("Running", 2, 1)


def prep_retry_early(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    world.advance(9)


def check_retry_not_yet(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert result.requeue_after == 1


def prep_retries_exhausted(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    for _ in range(2):  # limit 2: attempts 1 and 2 are the retries
        world.advance(40)
        world.reconcile()
        fail(world, "a")
        world.reconcile()


def check_retries_exhausted(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert (a["phase"], a["attempts"], a["retries"]) == ("Failed", 3, 2)
    assert "retry limit 2" in a["message"]  # type: ignore[operator]
    assert world.phase == "Failed"
    assert len(world.jobs_of("a")) == 3


def two_retrying() -> dict[str, object]:
    policy = {"limit": 5, "backoff": {"type": "Fixed", "duration": "1s"}}
    return flow(
        step("a", retryPolicy=policy),
        step("x", retryPolicy=policy),
        policy={"backoffLimit": 1},
    )


def prep_backoff_limit(world: World) -> None:
    start(world)
    fail(world, "a")
    world.reconcile()  # a: retry 1 of the flow's 1
    world.advance(1)
    world.finish(world.job_of("x"), ok=False)


def check_backoff_limit(result: Plan, world: World) -> None:
    x = world.step_status("x")
    assert x["phase"] == "Failed"
    assert "backoffLimit 1 reached" in x["message"]  # type: ignore[operator]
    # a's retry is cancelled too: the flow is failing.
    assert world.step_status("a")["phase"] == "Failed"
    assert world.phase == "Failed"


# --- pod failure policy ----------------------------------------------------------------------


def pfp_flow(action: str) -> Callable[[], dict[str, object]]:
    def build() -> dict[str, object]:
        rules = [{"action": action, "onExitCodes": {"operator": "In", "values": [42]}}]
        return flow(
            step("a", retryPolicy={"limit": 3, "backoff": {"type": "Fixed", "duration": "1s"}}),
            policy={"podFailurePolicy": {"rules": rules}},
        )

    return build


def prep_exit_42(world: World) -> None:
    start(world)
    fail(world, "a", exit_code=42)


def check_failjob(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert (a["phase"], a["reason"], a["exitCode"]) == ("Failed", "PodFailurePolicy", 42)
    assert world.phase == "Failed"


def check_ignore(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Pending", "RetryBackoff")
    assert "retries" not in a  # not charged to the limits
    assert "not counted" in result.events[0].message


def check_count(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert (a["phase"], a["retries"]) == ("Pending", 1)


def prep_exit_unknown(world: World) -> None:
    start(world)
    fail(world, "a", pods_readable=False)  # the runtime has not read the pod yet


def check_needs_pod_details(result: Plan, world: World) -> None:
    assert result.needs_pod_details == (world.job_of("a"),)
    assert world.step_status("a")["phase"] == "Running"
    assert result.create_jobs == ()


def prep_exit_other(world: World) -> None:
    start(world)
    fail(world, "a", exit_code=1)


# --- timeouts and deadlines ------------------------------------------------------------------


def timeout_flow(retry: bool) -> Callable[[], dict[str, object]]:
    def build() -> dict[str, object]:
        extra: dict[str, object] = {"timeoutSeconds": 30}
        if retry:
            extra["retryPolicy"] = {"limit": 1, "backoff": {"type": "Fixed", "duration": "5s"}}
        return flow(step("a", **extra), step("b", "a"))

    return build


def check_timeout_wake(result: Plan, world: World) -> None:
    assert result.requeue_after == 30


def prep_timeout(world: World) -> None:
    start(world)
    world.advance(30)


def check_timeout_fails(result: Plan, world: World) -> None:
    assert result.delete_jobs == (world.job_of("a"),)
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Failed", "Timeout")
    assert a["completionTime"] == ts(T0 + timedelta(seconds=30))
    assert reasons(result)[0] == "StepTimedOut"
    assert world.phase == "Failed"


def check_timeout_retries(result: Plan, world: World) -> None:
    assert result.delete_jobs == (world.job_of("a"),)
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Pending", "RetryBackoff")
    assert a["nextAttemptTime"] == ts(T0 + timedelta(seconds=35))
    assert result.requeue_after == 5


def deadline_flow() -> dict[str, object]:
    return flow(step("a"), step("x"), step("b", "a"), policy={"activeDeadlineSeconds": 60})


def check_deadline_wake(result: Plan, world: World) -> None:
    assert result.requeue_after == 60


def prep_deadline(world: World) -> None:
    start(world)
    run_ok(world, "x")
    world.advance(60)


def check_deadline(result: Plan, world: World) -> None:
    assert result.delete_jobs == (world.job_of("a"),)
    assert world.phase == "Failed"
    assert world.condition("Failed")["reason"] == "DeadlineExceeded"
    assert phases(world) == {"a": "Failed", "x": "Succeeded", "b": "Skipped"}
    assert world.step_status("a")["reason"] == "DeadlineExceeded"


# --- finished flows and TTL ------------------------------------------------------------------


def prep_finished_then_later(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    assert world.phase == "Failed"
    world.advance(3600)
    world.jobs.clear()  # even if its Jobs disappear, nothing about the flow changes


def check_frozen(result: Plan, world: World) -> None:
    assert world.phase == "Failed"
    assert world.status["completionTime"] == ts(T0 + timedelta(seconds=5))
    assert result.events == ()
    assert result.create_jobs == ()
    assert result.requeue_after == 86400 - 3600  # the default TTL, counted from completion


def ttl_flow() -> dict[str, object]:
    return flow(step("a"), policy={"ttlSecondsAfterFinished": 100})


def prep_ttl_before(world: World) -> None:
    start(world)
    run_ok(world, "a")
    world.advance(99)


def check_ttl_before(result: Plan, world: World) -> None:
    assert not result.delete_flow
    assert result.requeue_after == 1


def prep_ttl_after(world: World) -> None:
    prep_ttl_before(world)
    world.advance(1)


def check_ttl_after(result: Plan, world: World) -> None:
    assert result.delete_flow


# --- when ------------------------------------------------------------------------------------


def when_flow() -> dict[str, object]:
    return flow(
        step("a"),
        step("never", "a", when="never"),
        step("after-skip", "never"),
        step("cel-yes", "a", when="steps['a'].phase == 'Succeeded'"),
        step("cel-no", "a", when="steps['a'].phase == 'Failed'"),
    )


def prep_a_ok(world: World) -> None:
    start(world)
    world.advance(5)
    world.finish(world.job_of("a"), ok=True)


def check_when(result: Plan, world: World) -> None:
    got = phases(world)
    assert got["never"] == "Skipped"
    assert world.step_status("never")["reason"] == "ConditionFalse"
    assert got["cel-no"] == "Skipped"
    # A skipped step satisfies its dependants.
    assert created_steps(result) == ["after-skip", "cel-yes"]


def outputs_flow() -> dict[str, object]:
    return flow(
        step("a", outputs={"parameters": [{"name": "version"}]}),
        step("b", "a", when="steps['a'].outputs.parameters['version'] == '2'"),
    )


def prep_outputs(world: World) -> None:
    start(world)
    world.advance(5)
    world.finish(world.job_of("a"), ok=True, exit_code=0, message="version=2\nother=x\n")


def check_outputs(result: Plan, world: World) -> None:
    assert world.step_status("a")["outputs"] == {"parameters": {"version": "2"}}
    assert created_steps(result) == ["b"]


def prep_outputs_unread(world: World) -> None:
    start(world)
    world.advance(5)
    world.finish(world.job_of("a"), ok=True)


def check_outputs_wait(result: Plan, world: World) -> None:
    assert result.needs_pod_details == (world.job_of("a"),)
    assert world.step_status("a")["phase"] == "Running"


# --- manual approval -------------------------------------------------------------------------


def manual_flow() -> dict[str, object]:
    return flow(
        step("a"),
        step("gate", "a", type="Manual", message="ship it?"),
        step("deploy", "gate"),
    )


def check_paused(result: Plan, world: World) -> None:
    assert world.step_status("gate")["phase"] == "PendingApproval"
    assert world.phase == "Paused"
    assert world.condition("AwaitingApproval")["status"] == "True"
    assert reasons(result) == ["StepSucceeded", "AwaitingApproval", "FlowPaused"]


def prep_approve(world: World) -> None:
    prep_a_ok(world)
    world.reconcile()
    world.advance(30)
    world.annotate(names.approve_annotation("gate"), "true")


def check_approved(result: Plan, world: World) -> None:
    assert world.step_status("gate")["phase"] == "Succeeded"
    assert created_steps(result) == ["deploy"]
    assert world.phase == "Running"
    assert world.condition("AwaitingApproval")["status"] == "False"
    assert reasons(result) == ["StepApproved", "StepStarted", "FlowResumed"]


def prep_reject(world: World) -> None:
    prep_a_ok(world)
    world.reconcile()
    world.annotate(names.approve_annotation("gate"), "false")


def check_rejected(result: Plan, world: World) -> None:
    gate = world.step_status("gate")
    assert (gate["phase"], gate["reason"]) == ("Failed", "Rejected")
    assert world.step_status("deploy")["phase"] == "Skipped"
    assert world.phase == "Failed"


def prep_preapproved(world: World) -> None:
    world.annotate(names.approve_annotation("gate"), "true")
    prep_a_ok(world)


def check_preapproved(result: Plan, world: World) -> None:
    assert world.step_status("gate")["phase"] == "Succeeded"
    assert created_steps(result) == ["deploy"]


def manual_parallel() -> dict[str, object]:
    return flow(step("gate", type="Manual"), step("a"))


def check_not_paused_while_running(result: Plan, world: World) -> None:
    assert world.step_status("gate")["phase"] == "PendingApproval"
    assert world.phase == "Running"


# --- suspend ---------------------------------------------------------------------------------


def check_suspended_start(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.phase == "Suspended"
    assert reasons(result) == ["FlowSuspended"]
    assert "startTime" not in world.status  # not started: no deadline runs


def prep_resume_never_started(world: World) -> None:
    world.reconcile()
    world.advance(100)
    world.set_spec("suspend", False)


def check_first_start_on_resume(result: Plan, world: World) -> None:
    assert created_steps(result) == ["a"]
    assert world.status["startTime"] == ts(T0 + timedelta(seconds=100))
    assert reasons(result) == ["FlowStarted", "StepStarted", "FlowResumed"]
    assert result.requeue_after == 60  # the deadline counts from the real start


def prep_suspend_running(world: World) -> None:
    start(world)
    world.set_spec("suspend", True)
    world.reconcile()
    world.advance(5)
    world.finish(world.job_of("a"), ok=True)


def check_suspend_running_finishes(result: Plan, world: World) -> None:
    assert world.step_status("a")["phase"] == "Succeeded"
    assert result.create_jobs == ()
    assert world.phase == "Suspended"


def prep_resume(world: World) -> None:
    prep_suspend_running(world)
    world.reconcile()
    world.set_spec("suspend", False)


def check_resumed(result: Plan, world: World) -> None:
    assert created_steps(result) == ["b"]
    assert world.phase == "Running"
    assert "FlowResumed" in reasons(result)
    assert world.status["observedGeneration"] == 3


# --- concurrency -----------------------------------------------------------------------------


def keyed(policy: str, *, name: str = "f", minutes: int = 0) -> Callable[[], dict]:
    def build() -> dict[str, object]:
        return flow(
            step("a"),
            name=name,
            uid=f"uid-{name}",
            created=T0 + timedelta(minutes=minutes),
            policy={"concurrencyKey": "nightly", "concurrencyPolicy": policy},
        )

    return build


def peer(policy: str, *, phase: str | None, minutes: int, name: str = "other") -> dict:
    obj = keyed(policy, name=name, minutes=minutes)()
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


def with_peers(*peers: dict[str, object]) -> Callable[[World], None]:
    def prepare(world: World) -> None:
        world.peers = list(peers)

    return prepare


def check_queued(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.phase == "Pending"
    assert world.condition("Queued")["status"] == "True"
    assert "other" in str(world.condition("Queued")["message"])
    assert reasons(result) == ["FlowQueued"]
    assert "startTime" not in world.status


def check_started(result: Plan, world: World) -> None:
    assert created_steps(result) == ["a"]
    assert world.condition("Queued")["status"] == "False"


def prep_replaced(world: World) -> None:
    start(world)
    world.peers = [peer("Replace", phase=None, minutes=5)]


def check_replaced(result: Plan, world: World) -> None:
    assert result.delete_jobs == (world.job_of("a"),)
    assert world.phase == "Failed"
    assert world.condition("Failed")["reason"] == "Replaced"


# --- resourceTemplates and the Job manifest --------------------------------------------------


def resources_flow() -> dict[str, object]:
    pod = {
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "cfg", "configMap": {"name": "settings"}},
            {"name": "mine", "configMap": {"name": "not-a-template"}},
        ],
    }
    template = job_template(**pod)
    containers = template["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    containers[0]["envFrom"] = [{"configMapRef": {"name": "settings"}}]
    containers[0]["env"] = [
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x"}}}
    ]
    return flow(
        step("a", template=template),
        resourceTemplates={
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "namespace": "elsewhere"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
            "configMapTemplates": [{"metadata": {"name": "settings"}, "data": {"x": "1"}}],
        },
    )


def check_resources(result: Plan, world: World) -> None:
    kinds = [(o["kind"], o["metadata"]["name"]) for o in result.create_objects]  # type: ignore[index]
    assert kinds == [("PersistentVolumeClaim", "f-data"), ("ConfigMap", "f-settings")]
    for obj in result.create_objects:
        meta = obj["metadata"]
        assert meta["namespace"] == "ns"  # type: ignore[index]
        assert meta["ownerReferences"][0]["uid"] == "uid-1"  # type: ignore[index]
        assert meta["labels"][names.LABEL_FLOW] == "f"  # type: ignore[index]
    pod = result.create_jobs[0]["spec"]["template"]["spec"]  # type: ignore[index]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "f-data"
    assert pod["volumes"][1]["configMap"]["name"] == "f-settings"
    assert pod["volumes"][2]["configMap"]["name"] == "not-a-template"
    container = pod["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == "f-settings"
    assert container["env"][0]["valueFrom"]["configMapKeyRef"]["name"] == "f-settings"
    assert world.condition("ResourcesCreated")["status"] == "True"


def manifest_flow() -> dict[str, object]:
    template = job_template(backoff_limit=4)
    template["spec"]["ttlSecondsAfterFinished"] = 0  # type: ignore[index]
    template["metadata"] = {
        "name": "ignored",
        "namespace": "kube-system",
        "labels": {names.LABEL_FLOW: "spoof", "team": "a"},
        "ownerReferences": [{"kind": "Other"}],
    }
    template["spec"]["template"]["metadata"] = {  # type: ignore[index]
        "labels": {names.LABEL_STEP: "spoof", "pod": "yes"},
        "namespace": "kube-system",
    }
    return flow(
        step(
            "a",
            template=template,
            metadata={"labels": {"tier": "x"}, "annotations": {"n": "1"}},
        ),
        step("b"),
    )


def check_manifest(result: Plan, world: World) -> None:
    a, b = result.create_jobs
    meta = a["metadata"]
    assert meta["name"] == world.job_of("a")  # type: ignore[index]
    assert meta["namespace"] == "ns"  # type: ignore[index]
    ours = {
        names.LABEL_FLOW: "f",
        names.LABEL_STEP: "a",
        names.LABEL_ATTEMPT: "0",
        names.LABEL_MANAGED_BY: "zen-flow",
    }
    assert meta["labels"] == {**ours, "team": "a", "tier": "x"}  # type: ignore[index]
    assert meta["annotations"] == {"n": "1"}  # type: ignore[index]
    assert meta["ownerReferences"] == [  # type: ignore[index]
        {
            "apiVersion": names.API_VERSION,
            "kind": "JobFlow",
            "name": "f",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    pod_meta = a["spec"]["template"]["metadata"]  # type: ignore[index]
    assert pod_meta["labels"] == {**ours, "pod": "yes"}
    assert "namespace" not in pod_meta
    assert a["spec"]["backoffLimit"] == 4  # type: ignore[index]
    assert "ttlSecondsAfterFinished" not in a["spec"]  # type: ignore[operator]
    assert b["spec"]["backoffLimit"] == 0  # type: ignore[index]
    assert b["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # type: ignore[index]
    assert a["apiVersion"] == "batch/v1"
    assert a["kind"] == "Job"


# --- restart safety --------------------------------------------------------------------------


def prep_lost_status(world: World) -> None:
    start(world)
    world.flow.pop("status")  # the status write after the create never happened


def check_adopted(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    a = world.step_status("a")
    assert (a["phase"], a["attempts"]) == ("Running", 1)


def prep_lost_retry_status(world: World) -> None:
    prep_retry_due(world)
    saved = dict(world.status)
    world.reconcile()  # creates attempt 1
    world.flow["status"] = saved  # ...but its status write was lost


def check_retry_adopted(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    a = world.step_status("a")
    assert (a["phase"], a["attempts"]) == ("Running", 2)


def prep_missing_job(world: World) -> None:
    start(world)
    world.jobs.clear()


def check_recreated(result: Plan, world: World) -> None:
    assert created(result) == [world.job_of("a")]
    assert reasons(result) == []


def prep_lost_timeout_status(world: World) -> None:
    start(world)
    world.advance(30)
    saved = dict(world.status)
    world.reconcile()  # deletes the timed-out Job
    world.flow["status"] = saved
    world.advance(2)


def check_timeout_recomputed(result: Plan, world: World) -> None:
    assert result.create_jobs == ()  # the deleted Job is not re-created
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Failed", "Timeout")
    assert a["completionTime"] == ts(T0 + timedelta(seconds=30))


# --- invalid spec ----------------------------------------------------------------------------


def invalid_flow() -> dict[str, object]:
    return flow(step("a", "b"), step("b", "a"))


def check_invalid(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.phase == "Pending"
    accepted = world.condition("Accepted")
    assert accepted["status"] == "False"
    assert accepted["reason"] == "InvalidSpec"
    assert "a -> b -> a" in str(accepted["message"]) or "cycle" in str(accepted["message"])
    assert result.requeue_after is None
    assert reasons(result) == ["InvalidSpec"]


def three() -> dict[str, object]:
    return flow(step("a"), step("b", "a"), step("c", "b"))


ROWS = [
    Row("linear-first-pass", three, nothing, check_linear_first),
    Row("linear-next-step", three, prep_linear_second, check_linear_second),
    Row("diamond-spec-order", diamond, lambda w: run_ok_after_start(w, "a"), check_diamond),
    Row("diamond-join", diamond, prep_diamond_join, check_diamond_join),
    Row(
        "flow-succeeds",
        lambda: flow(step("a"), step("b", "a"), step("c")),
        prep_all_done,
        check_succeeded,
    ),
    Row("failure-skips-dependants", three, prep_fail_a, check_failure_skips),
    Row("failure-waits-running", fork, prep_fail_a, check_failure_waits_for_running),
    Row(
        "failure-ends-after-running",
        fork,
        prep_fail_then_other_finishes,
        check_failed_after_running_finished,
    ),
    Row(
        "continue-on-failure",
        lambda: flow(step("a", continueOnFailure=True), step("b", "a"), step("c")),
        prep_fail_a,
        check_continue_on_failure,
    ),
    Row(
        "continue-on-failure-succeeds",
        lambda: flow(step("a", continueOnFailure=True), step("b", "a"), step("c")),
        prep_cof_to_end,
        check_cof_flow_succeeds,
    ),
    Row("outcome-from-conditions", three, prep_counters_only, check_not_from_counters),
    Row("retry-scheduled", retry_flow(), prep_fail_a, check_retry_scheduled),
    Row("retry-not-yet", retry_flow(), prep_retry_early, check_retry_not_yet),
    Row("retry-new-job", retry_flow(), prep_retry_due, check_retry_new_job),
    Row("retries-exhausted", retry_flow(limit=2), prep_retries_exhausted, check_retries_exhausted),
    Row("flow-backoff-limit", two_retrying, prep_backoff_limit, check_backoff_limit),
    Row("pfp-failjob", pfp_flow("FailJob"), prep_exit_42, check_failjob),
    Row("pfp-ignore", pfp_flow("Ignore"), prep_exit_42, check_ignore),
    Row("pfp-count", pfp_flow("Count"), prep_exit_42, check_count),
    Row("pfp-no-match-counts", pfp_flow("FailJob"), prep_exit_other, check_count),
    Row("pfp-needs-exit-code", pfp_flow("FailJob"), prep_exit_unknown, check_needs_pod_details),
    Row("timeout-wakeup", timeout_flow(False), nothing, check_timeout_wake),
    Row("timeout-fails", timeout_flow(False), prep_timeout, check_timeout_fails),
    Row("timeout-retries", timeout_flow(True), prep_timeout, check_timeout_retries),
    Row("deadline-wakeup", deadline_flow, nothing, check_deadline_wake),
    Row("deadline-exceeded", deadline_flow, prep_deadline, check_deadline),
    Row("finished-is-frozen", three, prep_finished_then_later, check_frozen),
    Row("ttl-pending", ttl_flow, prep_ttl_before, check_ttl_before),
    Row("ttl-expired", ttl_flow, prep_ttl_after, check_ttl_after),
    Row("when", when_flow, prep_a_ok, check_when),
    Row("outputs-and-when", outputs_flow, prep_outputs, check_outputs),
    Row("outputs-need-message", outputs_flow, prep_outputs_unread, check_outputs_wait),
    Row("manual-paused", manual_flow, prep_a_ok, check_paused),
    Row("manual-approved", manual_flow, prep_approve, check_approved),
    Row("manual-rejected", manual_flow, prep_reject, check_rejected),
    Row("manual-preapproved", manual_flow, prep_preapproved, check_preapproved),
    Row(
        "manual-not-paused-while-running", manual_parallel, nothing, check_not_paused_while_running
    ),
    Row("suspend-at-start", lambda: flow(step("a"), suspend=True), nothing, check_suspended_start),
    Row(
        "resume-first-start",
        lambda: flow(step("a"), suspend=True, policy={"activeDeadlineSeconds": 60}),
        prep_resume_never_started,
        check_first_start_on_resume,
    ),
    Row(
        "suspend-running-finishes",
        lambda: flow(step("a"), step("b", "a")),
        prep_suspend_running,
        check_suspend_running_finishes,
    ),
    Row("resume", lambda: flow(step("a"), step("b", "a")), prep_resume, check_resumed),
    Row(
        "forbid-queued",
        keyed("Forbid", minutes=1),
        with_peers(peer("Forbid", phase="Running", minutes=0)),
        check_queued,
    ),
    Row(
        "forbid-older-done",
        keyed("Forbid", minutes=1),
        with_peers(peer("Forbid", phase="Succeeded", minutes=0)),
        check_started,
    ),
    Row(
        "forbid-newer-peer",
        keyed("Forbid", minutes=1),
        with_peers(peer("Forbid", phase="Running", minutes=2)),
        check_started,
    ),
    Row(
        "allow-runs-together",
        keyed("Allow", minutes=1),
        with_peers(peer("Allow", phase="Running", minutes=0)),
        check_started,
    ),
    Row(
        "replace-newer-starts",
        keyed("Replace", minutes=1),
        with_peers(peer("Replace", phase="Running", minutes=0)),
        check_started,
    ),
    Row("replace-older-stops", keyed("Replace"), prep_replaced, check_replaced),
    Row("resource-templates", resources_flow, nothing, check_resources),
    Row("job-manifest", manifest_flow, nothing, check_manifest),
    Row("adopt-after-lost-status", three, prep_lost_status, check_adopted),
    Row("adopt-retry-after-lost-status", retry_flow(), prep_lost_retry_status, check_retry_adopted),
    Row("recreate-missing-job", three, prep_missing_job, check_recreated),
    Row(
        "timeout-after-lost-status",
        timeout_flow(False),
        prep_lost_timeout_status,
        check_timeout_recomputed,
    ),
    Row("invalid-spec", invalid_flow, nothing, check_invalid),
]


# --- more edges ------------------------------------------------------------------------------


def earliest_flow() -> dict[str, object]:
    return flow(step("a", timeoutSeconds=30), policy={"activeDeadlineSeconds": 20})


def check_earliest(result: Plan, world: World) -> None:
    assert result.requeue_after == 20


def retry_and_timeout() -> dict[str, object]:
    policy = {"limit": 1, "backoff": {"type": "Fixed", "duration": "10s"}}
    return flow(step("a", retryPolicy=policy), step("x", timeoutSeconds=300))


def check_retry_before_timeout(result: Plan, world: World) -> None:
    assert world.step_status("a")["reason"] == "RetryBackoff"
    assert result.requeue_after == 10


def prep_add_step(world: World) -> None:
    start(world)
    steps = list(world.flow["spec"]["steps"])  # type: ignore[index]
    world.set_spec("steps", [*steps, step("z")])


def check_added_step(result: Plan, world: World) -> None:
    assert created_steps(result) == ["z"]
    assert world.status["observedGeneration"] == 2
    assert world.status["progress"]["total"] == 4  # type: ignore[index]


def when_error_flow() -> dict[str, object]:
    # Valid at admission (type-checked), fails when evaluated: division by zero.
    return flow(step("a"), step("b", "a", when="1 / (size(flow.name) - size(flow.name)) == 0"))


def check_when_error(result: Plan, world: World) -> None:
    b = world.step_status("b")
    assert (b["phase"], b["reason"]) == ("Failed", "ConditionError")
    assert world.phase == "Failed"


def prep_retry_due_suspended(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    world.set_spec("suspend", True)
    world.advance(60)


def check_suspended_retry_waits(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.phase == "Suspended"
    assert world.step_status("a")["reason"] == "RetryBackoff"
    assert result.requeue_after is None


def manual_cof_flow() -> dict[str, object]:
    return flow(step("gate", type="Manual", continueOnFailure=True), step("after", "gate"))


def prep_reject_now(world: World) -> None:
    world.annotate(names.approve_annotation("gate"), "false")


def check_rejected_continue(result: Plan, world: World) -> None:
    assert world.step_status("gate")["reason"] == "Rejected"
    assert created_steps(result) == ["after"]


def prep_pods_gone(world: World) -> None:
    start(world)
    fail(world, "a")
    world.pods[world.job_of("a")] = PodResult()  # read, but nothing found


def check_pods_gone_counts(result: Plan, world: World) -> None:
    assert result.needs_pod_details == ()
    assert world.step_status("a")["retries"] == 1


def prep_deadline_during_retry(world: World) -> None:
    prep_fail_a(world)
    world.reconcile()
    world.advance(7)


def check_deadline_cancels_retry(result: Plan, world: World) -> None:
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Failed", "DeadlineExceeded")
    assert world.condition("Failed")["reason"] == "DeadlineExceeded"
    assert result.delete_jobs == ()


def invalid_peer() -> dict[str, object]:
    obj = peer("Forbid", phase="Pending", minutes=0)
    obj["status"]["conditions"] = [{"type": "Accepted", "status": "False"}]  # type: ignore[index]
    return obj


def roots() -> dict[str, object]:
    return flow(*(step(n) for n in ["m", "c", "x", "a"]))


def check_roots_order(result: Plan, world: World) -> None:
    assert created_steps(result) == ["m", "c", "x", "a"]


MORE_ROWS = [
    Row("requeue-earliest-deadline", earliest_flow, nothing, check_earliest),
    Row("requeue-retry-before-timeout", retry_and_timeout, prep_fail_a, check_retry_before_timeout),
    Row("spec-step-added", three, prep_add_step, check_added_step),
    Row("when-error-fails-step", when_error_flow, prep_a_ok, check_when_error),
    Row("suspend-holds-retry", retry_flow(), prep_retry_due_suspended, check_suspended_retry_waits),
    Row("rejected-continue-on-failure", manual_cof_flow, prep_reject_now, check_rejected_continue),
    Row("pfp-pods-gone-counts", pfp_flow("FailJob"), prep_pods_gone, check_pods_gone_counts),
    Row(
        "deadline-cancels-retry",
        retry_flow(policy={"activeDeadlineSeconds": 12}),
        prep_deadline_during_retry,
        check_deadline_cancels_retry,
    ),
    Row(
        "forbid-ignores-invalid-peer",
        keyed("Forbid", minutes=1),
        with_peers(invalid_peer()),
        check_started,
    ),
    Row("roots-in-spec-order", roots, nothing, check_roots_order),
]
ROWS.extend(MORE_ROWS)


# --- input parameters ------------------------------------------------------------------------


def params_flow() -> dict[str, object]:
    consumer = job_template()
    container = consumer["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    container["args"] = [
        "--lit={{ parameters.greeting }}",
        "--from-output={{parameters.version}}",
        "--from-job={{ parameters.done }}",
        "--from-cm={{ parameters.region }}",
    ]
    container["env"] = [{"name": "GREETING", "value": "user-defined wins"}]
    return flow(
        step("a", outputs={"parameters": [{"name": "version"}]}),
        step(
            "b",
            "a",
            template=consumer,
            inputs={
                "parameters": [
                    {"name": "greeting", "value": "hello"},
                    {
                        "name": "version",
                        "valueFrom": {"stepOutputRef": {"step": "a", "parameter": "version"}},
                    },
                    {"name": "done", "valueFrom": {"jsonPath": "a:$.status.succeeded"}},
                    {
                        "name": "region",
                        "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "region"}},
                    },
                ]
            },
        ),
        resourceTemplates={"configMapTemplates": [{"metadata": {"name": "settings"}}]},
    )


def check_params(result: Plan, world: World) -> None:
    (job,) = result.create_jobs
    container = job["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
    assert container["args"] == [
        "--lit=hello",
        "--from-output=2",
        "--from-job=1",
        "--from-cm=$(REGION)",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["GREETING"] == {"name": "GREETING", "value": "user-defined wins"}
    assert env["VERSION"] == {"name": "VERSION", "value": "2"}
    assert env["REGION"]["valueFrom"] == {
        "configMapKeyRef": {"name": "f-settings", "key": "region"}
    }


def bad_param_flow(where: str) -> Callable[[], dict[str, object]]:
    def build() -> dict[str, object]:
        template = job_template()
        container = template["spec"]["template"]["spec"]["containers"][0]  # type: ignore[index]
        if where == "image":
            container["image"] = "busybox:{{ parameters.tag }}"
        else:
            container["args"] = ["{{ parameters.nope }}"]
        return flow(
            step(
                "a",
                template=template,
                inputs={
                    "parameters": [
                        {
                            "name": "tag",
                            "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "tag"}},
                        }
                    ]
                },
            ),
            step("b", "a"),
        )

    return build


def check_param_error(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    a = world.step_status("a")
    assert (a["phase"], a["reason"]) == ("Failed", "InputError")
    assert "parameters." in str(a["message"])
    assert world.phase == "Failed"


def check_invalid_reference(result: Plan, world: World) -> None:
    assert result.create_jobs == ()
    assert world.condition("Accepted")["status"] == "False"
    assert "nope" in str(world.condition("Accepted")["message"])


def missing_output_flow() -> dict[str, object]:
    source = {"stepOutputRef": {"step": "a", "parameter": "missing"}}
    return flow(
        # optional: a missing non-optional output would fail step a itself (jobflow.outputs)
        step(
            "a",
            outputs={"parameters": [{"name": "version"}, {"name": "missing", "optional": True}]},
        ),
        step("b", "a", inputs={"parameters": [{"name": "m", "valueFrom": source}]}),
    )


def check_missing_output(result: Plan, world: World) -> None:
    # a's termination message had no "missing=" line: b cannot get its input.
    b = world.step_status("b")
    assert (b["phase"], b["reason"]) == ("Failed", "InputError")
    assert "missing" in str(b["message"])
    assert result.create_jobs == ()


def prep_adopted_past_timeout(world: World) -> None:
    start(world)
    world.flow.pop("status")  # the write recording attempt 0 was lost
    world.advance(31)


def check_adopted_timeout(result: Plan, world: World) -> None:
    # First record the adopted attempt; the timeout delete comes in the next pass.
    assert result.delete_jobs == ()
    assert world.step_status("a")["phase"] == "Running"
    assert result.requeue_after == 0
    following = world.plan()
    assert following.delete_jobs == (world.job_of("a"),)


PARAM_ROWS = [
    Row("input-parameters", params_flow, prep_outputs, check_params),
    Row("input-configmap-outside-command", bad_param_flow("image"), nothing, check_param_error),
    Row("input-unresolved-is-invalid", bad_param_flow("args"), nothing, check_invalid_reference),
    Row("input-missing-output", missing_output_flow, prep_outputs, check_missing_output),
    Row(
        "adopted-past-timeout",
        timeout_flow(False),
        prep_adopted_past_timeout,
        check_adopted_timeout,
    ),
]
ROWS.extend(PARAM_ROWS)


def prep_deadline_with_finished_jobs(world: World) -> None:
    start(world)  # a and x run
    world.advance(60)
    world.finish(world.job_of("a"), ok=False, at=T0 + timedelta(seconds=50))
    world.finish(world.job_of("x"), ok=True, at=T0 + timedelta(seconds=55))


def check_deadline_credits_finished(result: Plan, world: World) -> None:
    assert result.delete_jobs == ()  # nothing was running; the failed Job is kept for its logs
    assert phases(world) == {"a": "Failed", "x": "Succeeded", "b": "Skipped"}
    assert world.step_status("a")["reason"] == "JobFailed"
    assert world.condition("Failed")["reason"] == "DeadlineExceeded"


def prep_replaced_after_success(world: World) -> None:
    start(world)
    world.advance(5)
    world.finish(world.job_of("a"), ok=True)
    world.peers = [peer("Replace", phase=None, minutes=5)]


def check_replaced_keeps_success(result: Plan, world: World) -> None:
    # Every step finished before the newer flow was seen: the result stands.
    assert result.delete_jobs == ()
    assert world.step_status("a")["phase"] == "Succeeded"
    assert world.phase == "Succeeded"


STOP_ROWS = [
    Row(
        "deadline-credits-finished-jobs",
        deadline_flow,
        prep_deadline_with_finished_jobs,
        check_deadline_credits_finished,
    ),
    Row(
        "replaced-keeps-finished-step",
        keyed("Replace"),
        prep_replaced_after_success,
        check_replaced_keeps_success,
    ),
]
ROWS.extend(STOP_ROWS)


def run_ok_after_start(world: World, *steps_: str) -> None:
    start(world)
    world.advance(5)
    for name in steps_:
        world.finish(world.job_of(name), ok=True)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_plan(row: Row) -> None:
    world = World(flow=row.flow())
    row.prepare(world)
    result = world.plan()
    world.apply(result)
    row.check(result, world)
    JobFlowStatus.model_validate(result.status)  # the status fits the API (CRD) model
    # Idempotence, except for a plan that asks to run again at once (requeue_after 0): it is
    # mid-way through a two-step change on purpose (see adopted-past-timeout).
    if not result.delete_flow and result.requeue_after != 0:
        assert_noop(world.plan(), result)
    # The controller passes the spec's problems it keeps per generation: the same plan.
    known = planning.spec_problems(world.flow)
    again = planning.plan(world.flow, world.observed(), world.now, peers=world.peers)
    assert (
        planning.plan(world.flow, world.observed(), world.now, peers=world.peers, problems=known)
        == again
    )


def test_problems_given_by_the_caller_are_used_instead_of_validating() -> None:
    world = World(flow=three())
    assert planning.spec_problems(world.flow) == []
    given = [Problem("dependency-cycle", "spec.steps", "kept from an earlier generation")]
    result = planning.plan(world.flow, [], world.now, problems=given)
    assert reasons(result) == ["InvalidSpec"] and result.create_jobs == ()
    cyclic = World(flow=invalid_flow())
    assert [p.code for p in planning.spec_problems(cyclic.flow)] == ["dependency-cycle"]


def test_a_failed_attempt_has_its_pod_read_once_for_the_exit_code() -> None:
    """No pod failure policy asks, yet the status reports the exit code (read once)."""
    world = World(flow=three())
    start(world)
    fail(world, "a", pods_readable=False)
    first = world.plan()
    assert first.needs_pod_details == (world.job_of("a"),)
    assert world.step_status("a")["phase"] == "Running"
    world.finish(world.job_of("a"), ok=False, exit_code=3)  # what the runtime read
    world.reconcile()
    a = world.step_status("a")
    assert (a["phase"], a["exitCode"]) == ("Failed", 3)
    assert str(a["message"]).endswith("(exit code 3)")
