"""Simulations: the planner driven in a loop against an in-memory world until the flow ends.

Every pass is checked for idempotence (a second pass at the same instant does nothing) and
for never creating two Jobs for one attempt. Covers linear, diamond, retry (with the backoff
delays observed between attempts), failure with skip propagation, approval, a flow that is
deleted by its TTL with no wake-up lost, and concurrency groups (Forbid runs one flow at a time
in creation order; Replace stops the older flow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from jobflow import names
from jobflow.planning import MAX_IGNORED_RETRIES
from tests.unit.planning_world import T0, World, flow, simulate, step


def start_times(world: World, step_name: str) -> list[datetime]:
    out = []
    for job in world.jobs_of(step_name):
        stamp = job["metadata"]["creationTimestamp"]  # type: ignore[index]
        out.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    return out


def test_linear_flow_runs_each_step_after_the_previous() -> None:
    world = World(flow=flow(step("a"), step("b", "a"), step("c", "b")))
    simulate(world)
    assert world.phase == "Succeeded"
    assert [start_times(world, s)[0] for s in "abc"] == [
        T0,
        T0 + timedelta(seconds=5),
        T0 + timedelta(seconds=10),
    ]
    assert world.status["progress"]["display"] == "3/3"  # type: ignore[index]
    flow_events = [e.reason for e in world.events if e.reason.startswith("Flow")]
    assert flow_events == ["FlowStarted", "FlowSucceeded"]


def test_diamond_runs_branches_in_parallel() -> None:
    world = World(flow=flow(step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")))
    simulate(world)
    assert world.phase == "Succeeded"
    assert start_times(world, "b") == start_times(world, "c")
    assert start_times(world, "d")[0] == T0 + timedelta(seconds=10)
    assert len(world.created_jobs) == 4


def test_retry_waits_the_backoff_delays_then_succeeds() -> None:
    policy = {"limit": 3, "backoff": {"type": "Exponential", "duration": "10s", "factor": 3}}
    world = World(flow=flow(step("a", retryPolicy=policy), step("b", "a")))

    def script(name: str, attempt: int) -> tuple[float, bool, int | None, str | None]:
        if name == "a" and attempt < 2:
            return 2.0, False, 1, None
        return 2.0, True, 0, None

    simulate(world, script)
    assert world.phase == "Succeeded"
    starts = start_times(world, "a")
    # attempt 0 fails at +2, waits 10*3^0; attempt 1 fails at +14, waits 10*3^1.
    assert starts == [T0, T0 + timedelta(seconds=12), T0 + timedelta(seconds=44)]
    a = world.step_status("a")
    assert (a["attempts"], a["retries"]) == (3, 2)
    assert len(world.jobs_of("a")) == 3, "failed attempts keep their Jobs"


def test_failure_skips_dependants_and_ends_the_flow() -> None:
    world = World(flow=flow(step("a"), step("slow"), step("b", "a"), step("c", "b")))

    def script(name: str, _attempt: int) -> tuple[float, bool, int | None, str | None]:
        if name == "a":
            return 1.0, False, 2, None
        return 30.0, True, 0, None

    simulate(world, script)
    assert world.phase == "Failed"
    steps = {s["name"]: (s["phase"], s.get("reason")) for s in world.status["steps"]}  # type: ignore[union-attr,index]
    assert steps == {
        "a": ("Failed", "JobFailed"),
        "slow": ("Succeeded", None),
        "b": ("Skipped", "UpstreamFailed"),
        "c": ("Skipped", "UpstreamFailed"),
    }
    assert world.status["completionTime"] == "2026-01-01T00:00:30Z"


def test_approval_flow_pauses_then_continues() -> None:
    world = World(
        flow=flow(step("build"), step("gate", "build", type="Manual"), step("ship", "gate"))
    )
    simulate(world)
    assert world.phase == "Paused"
    assert world.step_status("gate")["phase"] == "PendingApproval"
    world.advance(60)
    world.annotate(names.approve_annotation("gate"), "true")
    simulate(world)
    assert world.phase == "Succeeded"
    reasons = [e.reason for e in world.events]
    assert reasons.count("AwaitingApproval") == 1
    assert (
        reasons.index("FlowPaused") < reasons.index("StepApproved") < reasons.index("FlowResumed")
    )


def test_ttl_deletes_the_finished_flow() -> None:
    world = World(
        flow=flow(step("a"), policy={"ttlSecondsAfterFinished": 300, "activeDeadlineSeconds": 50})
    )
    simulate(world, until_deleted=True)
    assert world.flow_deleted
    # completed at +5, deleted at +305: the deadline (at +50) did not touch a finished flow.
    assert world.now == T0 + timedelta(seconds=305)
    assert world.phase == "Succeeded"


def grouped(name: str, minute: int, policy: str) -> World:
    return World(
        flow=flow(
            step("a"),
            step("b", "a"),
            name=name,
            uid=f"uid-{name}",
            created=T0 + timedelta(minutes=minute),
            policy={"concurrencyKey": "nightly", "concurrencyPolicy": policy},
        )
    )


def run_group(worlds: list[World], *, rounds: int = 60) -> list[set[str]]:
    """Reconcile every flow of a group in turn, finishing each Job 5 s after it starts; return
    which flows were active (Running with a started step) after each round."""
    active_history: list[set[str]] = []
    for _ in range(rounds):
        for world in worlds:
            world.now = max(w.now for w in worlds)
            world.peers = [w.flow for w in worlds if w is not world]
            world.reconcile()
        active_history.append(
            {str(w.flow["metadata"]["name"]) for w in worlds if w.phase == "Running"}  # type: ignore[index]
        )
        if all(w.phase in ("Succeeded", "Failed") for w in worlds):
            break
        for world in worlds:
            world.advance(5)
            for name, job in world.jobs.items():
                if not job["status"].get("conditions"):  # type: ignore[union-attr]
                    world.finish(name, ok=True)
    return active_history


def test_forbid_runs_a_group_one_flow_at_a_time_in_creation_order() -> None:
    worlds = [grouped("c", 2, "Forbid"), grouped("a", 0, "Forbid"), grouped("b", 1, "Forbid")]
    history = run_group(worlds)
    assert all(len(active) <= 1 for active in history), history
    assert all(w.phase == "Succeeded" for w in worlds)
    order = sorted(worlds, key=lambda w: str(w.status["startTime"]))
    assert [w.flow["metadata"]["name"] for w in order] == ["a", "b", "c"]  # type: ignore[index]
    assert all(w.condition("Queued")["status"] == "False" for w in worlds)


def test_replace_stops_the_older_flow_and_runs_the_newer() -> None:
    older = grouped("old", 0, "Replace")
    older.reconcile()
    assert older.phase == "Running"
    newer = grouped("new", 1, "Replace")
    run_group([older, newer])
    assert older.phase == "Failed"
    assert older.condition("Failed")["reason"] == "Replaced"
    assert newer.phase == "Succeeded"
    assert older.deleted_jobs == [older.job_of("a")]


def test_ignored_failures_retry_uncounted_but_not_forever() -> None:
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [42]}}]
    world = World(
        flow=flow(
            step("a", retryPolicy={"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}}),
            policy={"podFailurePolicy": {"rules": rules}, "backoffLimit": 0},
        )
    )

    def script(_name: str, _attempt: int) -> tuple[float, bool, int | None, str | None]:
        return 1.0, False, 42, None

    simulate(world, script, max_passes=200)
    a = world.step_status("a")
    assert world.phase == "Failed"
    # Ignored failures charge neither the step limit (1) nor the flow backoffLimit (0).
    assert a["attempts"] == MAX_IGNORED_RETRIES + 1
    assert "retries" not in a
    assert "ignored failures" in str(a["message"])
