"""Retries are charged exactly for the attempts that failed, also after lost status writes
(issue 13, item 10), with ``plan()`` calls only.

Covers:
- the chaos finding: retry limit 2, attempt 0 fails, the retry's Job is created and that pass's
  status write is lost; re-planning adopts attempt 1 charging no second retry, so when attempt 1
  fails the step still retries (2/2) and attempt 2 runs;
- with a limit of 1 the same loss does not end the step "retry limit 1 reached" before its one
  retry ran: attempt 1 runs, and its failure ends the step with retries 1;
- a lost write before the retry was recorded (the failure, its retry and the next Job all in
  passes whose writes were lost) still charges that retry once;
- a retry the pod failure policy ignored is not charged when its Job is adopted;
- a step whose status still says Running on an older attempt, with newer Jobs, is charged one
  retry per newer attempt (the status never heard of those retries);
- hypothesis: chains of steps with tight retry limits and any status writes lost end with
  exactly the retries their failed attempts used, in the right phase.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobflow.planning import Plan
from tests.unit.planning_world import World, flow, step
from tests.unit.test_planning_props import Outcome, check_invariants, run


def retried(limit: int, **fields: object) -> dict[str, object]:
    return step(
        "a", retryPolicy={"limit": limit, "backoff": {"type": "Fixed", "duration": "10s"}}, **fields
    )


def lose_write(world: World) -> Plan:
    """One pass whose creates and deletes happen but whose status write is lost (the
    controller was killed, or the PUT failed, after the Jobs were created)."""
    saved = copy.deepcopy(world.flow.get("status"))
    result = world.plan()
    world.apply(result)
    world.flow["status"] = saved
    return result


def fail_attempt_then_wait(world: World, attempt: int) -> None:
    world.finish(world.job_of("a", attempt), ok=False)
    world.reconcile()
    assert world.step_status("a")["reason"] == "RetryBackoff"
    world.advance(10)


def test_a_lost_write_after_the_retry_job_is_created_charges_no_second_retry() -> None:
    world = World(flow=flow(retried(2)))
    world.reconcile()
    fail_attempt_then_wait(world, 0)
    assert world.step_status("a")["retries"] == 1

    created = lose_write(world)  # attempt 1's Job exists; the status still waits for it
    assert [j["metadata"]["name"] for j in created.create_jobs] == [world.job_of("a", 1)]  # type: ignore[index]
    assert world.step_status("a")["phase"] == "Pending"

    world.reconcile()  # adopts attempt 1
    entry = world.step_status("a")
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Running", 2, 1)

    world.finish(world.job_of("a", 1), ok=False)
    world.reconcile()
    entry = world.step_status("a")
    assert (entry["phase"], entry["reason"], entry["retries"]) == ("Pending", "RetryBackoff", 2)
    world.advance(10)
    world.reconcile()
    world.finish(world.job_of("a", 2), ok=True)
    world.reconcile()
    entry = world.step_status("a")
    assert world.phase == "Succeeded"
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Succeeded", 3, 2)
    assert sorted(world.jobs) == sorted(world.job_of("a", n) for n in range(3))


def test_with_a_tight_limit_the_lost_write_does_not_end_the_step_with_its_retry_unused() -> None:
    world = World(flow=flow(retried(1)))
    world.reconcile()
    fail_attempt_then_wait(world, 0)
    lose_write(world)
    world.reconcile()
    world.finish(world.job_of("a", 1), ok=False)
    world.reconcile()
    entry = world.step_status("a")
    assert world.phase == "Failed"
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Failed", 2, 1)
    assert entry["message"].endswith("; retry limit 1 reached")
    # one retry ran and failed: the limit was reached by a retry that actually happened
    assert sum(1 for e in world.events if e.reason == "StepRetrying") == 1


def test_a_retry_the_status_never_recorded_is_charged_once() -> None:
    world = World(flow=flow(retried(2)))
    world.reconcile()
    running = copy.deepcopy(world.flow["status"])  # Running attempt 0: the last write kept
    world.finish(world.job_of("a", 0), ok=False)
    world.reconcile()  # RetryBackoff, retry 1 ...
    world.advance(10)
    world.reconcile()  # ... and attempt 1's Job
    world.flow["status"] = running  # both writes lost: the status says attempt 0 is running
    world.reconcile()
    entry = world.step_status("a")
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Running", 2, 1)


def test_an_ignored_retry_is_not_charged_when_its_job_is_adopted() -> None:
    spec = flow(
        retried(1),
        policy={
            "podFailurePolicy": {
                "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]
            }
        },
    )
    world = World(flow=spec)
    world.reconcile()
    world.finish(world.job_of("a", 0), ok=False, exit_code=3)
    world.reconcile()
    entry = world.step_status("a")
    assert (entry["reason"], entry.get("retries", 0)) == ("RetryBackoff", 0)
    world.advance(10)
    lose_write(world)
    world.reconcile()
    entry = world.step_status("a")
    assert (entry["phase"], entry["attempts"], entry.get("retries", 0)) == ("Running", 2, 0)


def test_newer_jobs_than_a_running_status_are_charged_one_retry_each() -> None:
    world = World(flow=flow(retried(3)))
    world.reconcile()
    running = copy.deepcopy(world.flow["status"])
    for attempt in (0, 1):
        world.finish(world.job_of("a", attempt), ok=False)
        world.reconcile()
        world.advance(10)
        world.reconcile()
    assert world.step_status("a")["retries"] == 2
    world.flow["status"] = running
    world.reconcile()
    entry = world.step_status("a")
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Running", 3, 2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=4)),
        min_size=1,
        max_size=3,
    ),
    st.sets(st.integers(min_value=1, max_value=24), max_size=8),
)
def test_lost_writes_charge_exactly_the_failed_attempts(
    chain: list[tuple[int, int]], lose: set[int]
) -> None:
    """A chain of steps, step i with retry limit L failing its first k attempts; any status
    writes lost: each step that ran is charged min(k, L) retries over min(k, L) + 1 attempts,
    and the flow succeeds exactly when every k <= L."""
    steps = []
    outcomes: dict[tuple[str, int], Outcome] = {}
    for i, (limit, failing) in enumerate(chain):
        policy = {"limit": limit, "backoff": {"type": "Fixed", "duration": "5s"}}
        steps.append(step(f"s{i}", *([f"s{i - 1}"] if i else []), retryPolicy=policy))
        for attempt in range(limit + 2):
            outcomes[(f"s{i}", attempt)] = (
                3.0,
                attempt >= failing,
                0 if attempt >= failing else 1,
                None,
            )
    world = run(flow(*steps, policy={"backoffLimit": 100}), outcomes, lose=lose)
    check_invariants(world, lost_writes=bool(lose))
    for i, (limit, failing) in enumerate(chain):
        entry = world.step_status(f"s{i}")
        if entry["phase"] == "Skipped":
            continue
        used = min(failing, limit)
        assert (entry["attempts"], entry.get("retries", 0)) == (used + 1, used), (i, entry)
        assert entry["phase"] == ("Succeeded" if failing <= limit else "Failed"), (i, entry)
    assert world.phase == ("Succeeded" if all(k <= n for n, k in chain) else "Failed")
