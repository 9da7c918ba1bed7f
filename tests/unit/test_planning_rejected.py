"""A Job the API server refuses for good fails its step (issue 13, item 1), with ``plan()``
calls only: the world below refuses chosen Job names as a real server would (the create is
answered, nothing is stored) and feeds the refusals back as ``plan(..., rejected=...)``, as the
controller does.

Covers:
- no retryPolicy: the step fails (reason CreateRejected, the server's message), a Warning Event
  CreateRejected carries the message, dependants are Skipped and the flow ends Failed;
- a retryPolicy: each refused attempt is a failed attempt charged to the limit, StepRetrying
  says so, and the step ends "retry limit 1 reached" with attempts 2, retries 1;
- a refusal that goes away (a quota freed): the retry's Job is created and the flow succeeds;
- continueOnFailure: the flow goes on and succeeds;
- planning again after the refusal is recorded is a no-op (same status, no events, no Job), and
  a refusal recorded for a Job that exists is ignored (the Job wins);
- a restarted controller (refusals forgotten) creates the Job again and, refused again, ends
  the same way.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field

from jobflow.planning import Plan, plan
from tests.unit.planning_world import World, assert_noop, flow, step

REFUSAL = (
    'Job.batch "f-a-0-x" is invalid: spec.template.spec.containers[1].name: Duplicate value: "main"'
)


def job_name(manifest: object) -> str:
    return str(manifest["metadata"]["name"])  # type: ignore[index]


@dataclass
class RefusingWorld(World):
    refuse: dict[str, str] = field(default_factory=dict)  # Job name -> the server's answer
    rejected: dict[str, str] = field(default_factory=dict)  # what the controller remembers

    def plan(self) -> Plan:
        return plan(
            copy.deepcopy(self.flow),
            self.observed(),
            self.now,
            peers=self.peers,
            rejected=dict(self.rejected),
        )

    def apply(self, result: Plan) -> None:
        accepted = []
        for manifest in result.create_jobs:
            name = job_name(manifest)
            if name in self.refuse:
                self.rejected[name] = self.refuse[name]
            else:
                accepted.append(manifest)
        super().apply(dataclasses.replace(result, create_jobs=tuple(accepted)))

    def refusing_pass(self) -> Plan:
        """A pass whose create is refused: its status is written (the attempt started); the
        next pass learns of the refusal, so this one is not expected to be a fixed point."""
        return self.reconcile(check_idempotent=False)


def test_a_refused_job_fails_the_step_and_the_flow_with_the_servers_message() -> None:
    world = RefusingWorld(flow=flow(step("a"), step("b", "a")))
    world.refuse[world.job_of("a", 0)] = REFUSAL
    world.refusing_pass()
    assert world.step_status("a")["phase"] == "Running"
    world.reconcile()
    a, b = world.step_status("a"), world.step_status("b")
    assert world.phase == "Failed"
    assert (a["phase"], a["reason"], a["message"], a["attempts"]) == (
        "Failed",
        "CreateRejected",
        REFUSAL,
        1,
    )
    assert (b["phase"], b["reason"]) == ("Skipped", "UpstreamFailed")
    assert world.jobs == {}
    warnings = [(e.reason, e.message) for e in world.events if e.type == "Warning"]
    assert (
        "CreateRejected",
        f"step a: the API server refused Job {world.job_of('a', 0)}: {REFUSAL}",
    ) in warnings
    assert ("StepFailed", f"step a failed (CreateRejected): {REFUSAL}") in warnings
    assert world.condition("Failed")["message"] == "step(s) failed: a"


def test_refused_attempts_go_through_the_retry_policy() -> None:
    policy = {"limit": 1, "backoff": {"type": "Fixed", "duration": "30s"}}
    world = RefusingWorld(flow=flow(step("a", retryPolicy=policy)))
    world.refuse = {world.job_of("a", n): f"{REFUSAL} ({n})" for n in (0, 1)}
    world.refusing_pass()
    world.reconcile()
    a = world.step_status("a")
    assert (a["phase"], a["reason"], a["retries"]) == ("Pending", "RetryBackoff", 1)
    assert a["message"].startswith(f"attempt 1 failed (CreateRejected: {REFUSAL} (0));")
    assert a["nextAttemptTime"] == "2026-01-01T00:00:30Z"  # the attempt's start + 30 s
    assert world.events[-1].reason == "StepRetrying"
    world.advance(30)
    world.refusing_pass()
    world.reconcile()
    a = world.step_status("a")
    assert world.phase == "Failed"
    assert (a["phase"], a["reason"], a["attempts"], a["retries"]) == (
        "Failed",
        "CreateRejected",
        2,
        1,
    )
    assert a["message"] == f"{REFUSAL} (1); retry limit 1 reached"
    assert world.jobs == {}


def test_a_refusal_that_goes_away_lets_the_retry_run() -> None:
    policy = {"limit": 2, "backoff": {"type": "Fixed", "duration": "5s"}}
    world = RefusingWorld(flow=flow(step("a", retryPolicy=policy)))
    world.refuse[world.job_of("a", 0)] = "exceeded quota: jobs, requested: count/jobs.batch=1"
    world.refusing_pass()
    world.reconcile()
    world.advance(5)
    world.reconcile()  # attempt 1 is accepted
    world.finish(world.job_of("a", 1), ok=True)
    world.reconcile()
    a = world.step_status("a")
    assert world.phase == "Succeeded"
    assert (a["phase"], a["attempts"], a["retries"]) == ("Succeeded", 2, 1)
    assert list(world.jobs) == [world.job_of("a", 1)]


def test_continue_on_failure_lets_the_flow_go_on() -> None:
    world = RefusingWorld(flow=flow(step("a", continueOnFailure=True), step("b", "a")))
    world.refuse[world.job_of("a", 0)] = REFUSAL
    world.refusing_pass()
    world.reconcile()
    world.finish(world.job_of("b", 0), ok=True)
    world.reconcile()
    assert world.phase == "Succeeded"
    assert world.step_status("a")["reason"] == "CreateRejected"


def test_planning_again_is_a_noop_and_a_job_that_exists_wins() -> None:
    world = RefusingWorld(flow=flow(step("a"), step("b")))
    world.refuse[world.job_of("a", 0)] = REFUSAL
    world.rejected[world.job_of("b", 0)] = "refused once, created since"
    first = world.refusing_pass()
    assert [job_name(m) for m in first.create_jobs] == [world.job_of("a", 0), world.job_of("b", 0)]
    assert list(world.jobs) == [world.job_of("b", 0)]
    result = world.reconcile()  # checks that a second pass does nothing
    assert_noop(world.plan(), result)
    assert world.step_status("a")["phase"] == "Failed"
    assert world.step_status("b")["phase"] == "Running"


def test_a_restarted_controller_is_refused_again_and_ends_the_same_way() -> None:
    world = RefusingWorld(flow=flow(step("a")))
    world.refuse[world.job_of("a", 0)] = REFUSAL
    world.refusing_pass()
    world.rejected.clear()  # restarted: the status says Running, the refusal is forgotten
    again = world.refusing_pass()
    assert [job_name(m) for m in again.create_jobs] == [world.job_of("a", 0)]
    world.reconcile()
    assert world.phase == "Failed"
    assert world.step_status("a")["reason"] == "CreateRejected"
