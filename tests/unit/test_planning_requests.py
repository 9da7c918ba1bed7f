"""Operator requests in the pure planner (jobflow.requests, jobflow.planning.operate).

Covers: retry of a failed flow runs only the failed and skipped steps as new attempts (Jobs
of succeeded steps are not recreated, their outputs kept); retry of named steps reruns them
and everything downstream; retry parameters change the value a step receives and what `when`
reads; a pass killed before its status write (lost write) redoes the same work and adopts the
Job it created; a retry with nothing to rerun and a stop of a finished flow are recorded once;
a retry waits while the flow runs; Stop lets running steps finish and ends Failed (Stopped);
Terminate deletes running Jobs at once (Terminated); TTL does not delete a flow being retried;
the history and the handled ids; every pass is idempotent.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.planning_world import World, flow, simulate, step


def chain(**spec: Any) -> dict[str, object]:
    return flow(
        step("s1"),
        step("s2", "s1"),
        step("s3", "s2"),
        step("s4", "s3"),
        step("s5", "s4"),
        **spec,
    )


def fails(*bad: tuple[str, int]) -> Any:
    def script(name: str, attempt: int) -> tuple[float, bool, int | None, str | None]:
        return (5.0, False, 1, None) if (name, attempt) in bad else (5.0, True, 0, None)

    return script


def request(world: World, field: str, value: dict[str, object]) -> None:
    world.set_spec(field, value)


def phases(world: World) -> dict[str, str]:
    return {s["name"]: s["phase"] for s in world.status["steps"]}  # type: ignore[index]


def test_retry_runs_failed_and_skipped_steps_only() -> None:
    world = World(chain())
    simulate(world, fails(("s3", 0)))
    assert world.phase == "Failed"
    assert phases(world) == {
        "s1": "Succeeded",
        "s2": "Succeeded",
        "s3": "Failed",
        "s4": "Skipped",
        "s5": "Skipped",
    }
    created = list(world.created_jobs)
    request(world, "retry", {"id": "r1"})
    world.advance(60)
    simulate(world, fails(("s3", 0)))
    assert world.phase == "Succeeded"
    new = world.created_jobs[len(created) :]
    assert new == [world.job_of("s3", 1), world.job_of("s4", 0), world.job_of("s5", 0)]
    assert world.step_status("s3")["attempts"] == 2
    assert world.step_status("s3")["firstAttempt"] == 1
    assert world.step_status("s1")["attempts"] == 1
    assert world.status["requests"] == {"retry": "r1"}
    history = world.status["history"]
    assert [h["type"] for h in history] == ["Run", "Retry"]  # type: ignore[index]
    assert history[1]["steps"] == ["s3", "s4", "s5"]  # type: ignore[index]
    assert "FlowRetried" in [e.reason for e in world.events]


def test_retry_of_a_named_succeeded_step_reruns_it_and_its_dependants() -> None:
    world = World(chain())
    simulate(world)
    assert world.phase == "Succeeded"
    request(world, "retry", {"id": "again", "steps": ["s4"]})
    simulate(world)
    assert world.phase == "Succeeded"
    assert world.created_jobs[-2:] == [world.job_of("s4", 1), world.job_of("s5", 1)]
    assert world.step_status("s3")["attempts"] == 1


def test_retry_parameters_reach_the_step_and_when() -> None:
    consumer = step(
        "use",
        "make",
        inputs={"parameters": [{"name": "greeting", "valueFrom": {"flowParameter": "greeting"}}]},
        when="flow.parameters['greeting'] != 'skip'",
    )
    world = World(flow(step("make"), consumer, parameters=[{"name": "greeting", "value": "skip"}]))
    simulate(world)
    assert phases(world)["use"] == "Skipped"
    assert world.status["parameters"] == {"greeting": "skip"}
    request(world, "retry", {"id": "r1", "parameters": {"greeting": "hello"}})
    simulate(world)
    assert world.phase == "Succeeded"
    job = world.jobs[world.job_of("use", 0)]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert {"name": "GREETING", "value": "hello"} in env
    assert world.status["parameters"] == {"greeting": "hello"}


def test_a_lost_retry_write_adopts_the_job_it_created() -> None:
    world = World(chain())
    simulate(world, fails(("s3", 0)))
    request(world, "retry", {"id": "r1"})
    before = copy.deepcopy(world.flow)
    first = world.plan()
    assert [j["metadata"]["name"] for j in first.create_jobs] == [world.job_of("s3", 1)]  # type: ignore[index]
    # the Job is created, the status write is lost
    world.apply(first)
    world.flow = before
    again = world.plan()
    assert again.create_jobs == ()  # AlreadyExists would be adoption; nothing new
    world.apply(again)
    assert world.step_status("s3")["phase"] == "Running"
    assert world.step_status("s3").get("retries") is None
    simulate(world)
    assert world.phase == "Succeeded"
    assert len(world.created_jobs) == len(set(world.created_jobs))


def test_retry_with_nothing_to_rerun_is_recorded_once() -> None:
    world = World(chain())
    simulate(world)
    request(world, "retry", {"id": "r1"})
    result = world.reconcile()
    assert [e.reason for e in result.events] == ["RetryIgnored"]
    assert world.phase == "Succeeded"
    assert world.status["requests"] == {"retry": "r1"}


def test_retry_of_a_running_flow_is_refused_once() -> None:
    world = World(chain())
    world.reconcile()
    request(world, "retry", {"id": "r1"})
    result = world.reconcile()
    assert [e.reason for e in result.events] == ["RetryIgnored"]
    assert world.status["requests"] == {"retry": "r1"}
    simulate(world, fails(("s2", 0)))
    assert world.phase == "Failed"  # the old request does not act later


def test_retry_during_a_stop_waits_for_the_end() -> None:
    world = World(flow(step("a"), step("b", "a")))
    world.reconcile()
    request(world, "stop", {"id": "s1"})
    world.reconcile()
    request(world, "retry", {"id": "r1"})
    world.reconcile()
    assert world.status["requests"] == {"stop": "s1"}
    world.finish(world.job_of("a"), ok=True)
    ended = world.reconcile(check_idempotent=False)  # ends Failed (Stopped); the next retries
    assert world.phase == "Failed"
    assert ended.requeue_after == 0.0  # nothing else would wake the flow for its retry
    simulate(world)
    assert world.phase == "Succeeded"
    assert world.created_jobs == [world.job_of("a"), world.job_of("b")]


def test_stop_lets_running_steps_finish_then_fails() -> None:
    world = World(flow(step("a"), step("b"), step("c", "a")))
    world.reconcile()
    request(world, "stop", {"id": "s1", "requestedBy": "alice"})
    world.reconcile()
    assert world.phase == "Running"
    assert world.deleted_jobs == []
    world.finish(world.job_of("a"), ok=True)
    world.finish(world.job_of("b"), ok=True)
    world.reconcile()
    assert world.phase == "Failed"
    assert phases(world) == {"a": "Succeeded", "b": "Succeeded", "c": "Skipped"}
    assert world.step_status("c")["reason"] == "Stopped"
    assert world.condition("Failed")["reason"] == "Stopped"
    assert world.condition("Failed")["message"] == "stopped by request s1 by alice"
    assert world.status["stop"]["type"] == "Stop"  # type: ignore[index]


def test_terminate_deletes_running_jobs_now() -> None:
    world = World(flow(step("a"), step("b", "a")))
    world.reconcile()
    request(world, "stop", {"id": "t1", "mode": "Terminate"})
    world.reconcile()
    assert world.phase == "Failed"
    assert world.deleted_jobs == [world.job_of("a")]
    assert phases(world) == {"a": "Failed", "b": "Skipped"}
    assert world.condition("Failed")["reason"] == "Terminated"
    # a retry after a terminate runs the flow again; the old stop does not act again
    request(world, "retry", {"id": "r1"})
    simulate(world)
    assert world.phase == "Succeeded"
    assert world.created_jobs[-2:] == [world.job_of("a", 1), world.job_of("b", 0)]
    assert "stop" not in world.status


def test_stop_of_a_finished_flow_is_recorded_and_never_stops_a_retry() -> None:
    world = World(chain())
    simulate(world, fails(("s1", 0)))
    request(world, "stop", {"id": "late"})
    result = world.reconcile()
    assert [e.reason for e in result.events] == ["StopIgnored"]
    request(world, "retry", {"id": "r1"})
    simulate(world)
    assert world.phase == "Succeeded"


def test_ttl_does_not_delete_a_flow_being_retried() -> None:
    world = World(chain(policy={"ttlSecondsAfterFinished": 30}))
    simulate(world, fails(("s5", 0)))
    request(world, "retry", {"id": "r1"})
    world.advance(3600)
    result = world.reconcile()
    assert not result.delete_flow
    assert world.phase == "Running"
    assert "completionTime" not in world.status
    simulate(world, until_deleted=True)
    assert world.flow_deleted


def test_retry_counts_its_attempts_from_the_new_run() -> None:
    retrying = {"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}}
    world = World(flow(step("a", retryPolicy=retrying)))
    simulate(world, fails(("a", 0), ("a", 1)))
    assert world.phase == "Failed"
    request(world, "retry", {"id": "r1"})
    simulate(world, fails(("a", 2)))
    assert world.phase == "Succeeded"
    assert world.step_status("a")["attempts"] == 4
    assert world.step_status("a")["retries"] == 1


def test_two_requests_before_the_controller_acts_are_one_retry() -> None:
    world = World(chain())
    simulate(world, fails(("s3", 0)))
    request(world, "retry", {"id": "r1"})
    request(world, "retry", {"id": "r2"})  # patched again before any pass
    simulate(world)
    assert world.phase == "Succeeded"
    assert world.status["requests"] == {"retry": "r2"}
    assert [h["type"] for h in world.status["history"]] == ["Run", "Retry"]  # type: ignore[index]
    assert world.created_jobs.count(world.job_of("s3", 1)) == 1
    assert world.job_of("s3", 2) not in world.created_jobs


def test_a_recorded_parameter_over_the_limit_is_not_used() -> None:
    from jobflow import requests

    spec = {"parameters": [{"name": "p", "value": "default"}]}
    assert requests.effective_parameters(spec, {"parameters": {"p": "x" * 5000}}) == {
        "p": "default"
    }
    assert requests.effective_parameters(spec, {"parameters": {"p": "set", "q": "?"}}) == {
        "p": "set"
    }


def test_history_says_how_each_run_ended() -> None:
    world = World(chain())
    simulate(world, fails(("s3", 0)))
    request(world, "retry", {"id": "r1"})
    simulate(world, fails(("s3", 1)))
    assert world.phase == "Failed"
    request(world, "retry", {"id": "r2"})
    simulate(world)
    assert [(h["type"], h.get("id"), h["message"]) for h in world.status["history"]] == [  # type: ignore[index]
        ("Run", None, "ended Failed (failed: s3)"),
        ("Retry", "r1", "runs again: s3 (attempt 2), s4, s5; ended Failed (failed: s3)"),
        ("Retry", "r2", "runs again: s3 (attempt 3), s4, s5"),
    ]
