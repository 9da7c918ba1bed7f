"""Table-driven planner tests of spec.finally and fan-out (issue 17), on the in-memory world
(tests/unit/planning_world.py); every pass is checked for idempotence by ``reconcile``.

Covers, finally: not started while the DAG runs; runs after a failure and reads flow.phase /
flow.failedSteps (when) and the outcome as an input; a failing finally step fails a flow whose
DAG succeeded (FinallyFailed) and skips only its dependants; activeDeadlineSeconds ends the
DAG, the finally steps then run, bounded by 2 x the deadline (their Job deleted past it);
Terminate skips them and deletes their Jobs; Stop lets them run; a retry of a finished flow
runs them again after the re-run steps; completionTime (the TTL's start) is their end.
Fan-out: one Job per item with {{ item }}, {{ item.field }} and {{ index }} substituted, the
item-index label and a deterministic name; the step's parallelism and the flow's cap the items
with Jobs; an item failing for good skips the items not started (fail fast) and fails the step
(ItemFailed); continueOnFailure runs every item, fails the step, lets dependants run, with null
outputs for failed items; withParam that is not a JSON list fails the step (InputError); no
items succeed at once with empty lists; a lost status write adopts the item Jobs; a 1,000-item
fan-out keeps its status entry small; a fan-out held by the controller's cap is Queued.
"""

from __future__ import annotations

import json

import pytest

from jobflow import names
from tests.unit.planning_world import World, flow, job_template, simulate, step

ITEM = "workflow.kube-zen.io/item-index"


def entry(world: World, name: str) -> dict[str, object]:
    return world.step_status(name)


def with_finally(body: dict[str, object], *finals: dict[str, object]) -> dict[str, object]:
    body["spec"]["finally"] = list(finals)  # type: ignore[index]
    return body


def finish_all(
    world: World, *, ok: bool | dict[str, bool] = True, message: str | None = None
) -> None:
    for name, job in list(world.jobs.items()):
        if job["status"].get("conditions"):  # type: ignore[union-attr]
            continue
        step_name = job["metadata"]["labels"][names.LABEL_STEP]  # type: ignore[index]
        result = ok if isinstance(ok, bool) else ok.get(step_name, True)
        world.finish(name, ok=result, message=message if result else None)


# -- finally ---------------------------------------------------------------------------------


def test_finally_waits_for_the_dag_then_sees_the_failure() -> None:
    world = World(
        with_finally(
            flow(step("a"), step("b", "a")),
            step(
                "report",
                when="flow.phase == 'Failed' && flow.failedSteps == ['a']",
                inputs={"parameters": [{"name": "o", "valueFrom": {"flowOutcome": "phase"}}]},
            ),
            step("celebrate", when="flow.phase == 'Succeeded'"),
        )
    )
    world.reconcile()
    assert entry(world, "report")["phase"] == "Pending"
    assert len(world.jobs) == 1
    world.advance(1)
    world.finish(world.job_of("a"), ok=False)
    world.reconcile()
    assert entry(world, "b")["reason"] == "UpstreamFailed"
    assert entry(world, "report")["phase"] == "Running"
    assert entry(world, "celebrate")["reason"] == "ConditionFalse"
    assert world.phase == "Running"
    assert world.status["outcome"] == {
        "phase": "Failed",
        "reason": "StepFailed",
        "message": "step(s) failed: a",
        "failedSteps": ["a"],
    }
    env = world.jobs[world.job_of("report")]["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert {"name": "O", "value": "Failed"} in env
    world.advance(3)
    world.finish(world.job_of("report"), ok=True)
    world.reconcile()
    assert world.phase == "Failed"
    assert world.status["completionTime"] == entry(world, "report")["completionTime"]


@pytest.mark.parametrize(
    ("finals", "phase", "reason", "skipped"),
    [
        ([step("c", exit_code=1)], "Failed", "FinallyFailed", []),
        ([step("c"), step("d", "c")], "Failed", "FinallyFailed", ["d"]),
        ([step("c", continueOnFailure=True)], "Succeeded", None, []),
    ],
)
def test_a_failing_finally_step_fails_a_succeeding_flow(finals, phase, reason, skipped) -> None:
    for f in finals:
        f.pop("exit_code", None)
    world = World(with_finally(flow(step("a")), *finals))
    simulate(world, lambda name, attempt: (1.0, name != "c", 0 if name != "c" else 2, None))
    assert world.phase == phase
    if reason:
        assert world.condition("Failed")["reason"] == reason
    for name in skipped:
        assert entry(world, name)["reason"] == "UpstreamFailed"


def test_deadline_ends_the_dag_then_finally_runs_within_its_own_budget() -> None:
    world = World(
        with_finally(flow(step("slow"), policy={"activeDeadlineSeconds": 10}), step("cleanup"))
    )
    world.reconcile()
    world.advance(10)
    result = world.reconcile()
    assert world.job_of("slow") in result.delete_jobs
    assert entry(world, "slow")["reason"] == "DeadlineExceeded"
    assert entry(world, "cleanup")["phase"] == "Running"
    assert world.phase == "Running"
    assert result.requeue_after == 10  # the finally budget: startTime + 2 x 10 s
    world.advance(10)
    result = world.reconcile()
    assert world.job_of("cleanup") in result.delete_jobs
    assert entry(world, "cleanup")["reason"] == "DeadlineExceeded"
    assert world.phase == "Failed"
    assert world.condition("Failed")["reason"] == "DeadlineExceeded"


@pytest.mark.parametrize(("mode", "runs"), [("Stop", True), ("Terminate", False)])
def test_stop_lets_finally_run_terminate_skips_it(mode: str, runs: bool) -> None:
    world = World(with_finally(flow(step("a"), step("b", "a")), step("cleanup")))
    world.reconcile()
    world.set_spec("stop", {"id": "s1", "mode": mode})
    world.advance(1)
    world.reconcile()
    if mode == "Stop":
        world.finish(world.job_of("a"), ok=True)
        world.advance(1)
        world.reconcile()
    assert (entry(world, "cleanup")["phase"] == "Running") == runs
    if not runs:
        assert entry(world, "cleanup")["reason"] == "Terminated"
        assert world.phase == "Failed"
    else:
        world.finish(world.job_of("cleanup"), ok=True)
        world.reconcile()
        assert world.phase == "Failed"
        assert world.condition("Failed")["reason"] == "Stopped"


def test_a_retry_runs_the_finally_steps_again_after_the_retried_steps() -> None:
    world = World(with_finally(flow(step("a")), step("cleanup")))
    simulate(world, lambda name, attempt: (1.0, name != "a" or attempt > 0, 0, None))
    assert world.phase == "Failed"
    world.set_spec("retry", {"id": "r1"})
    world.advance(5)
    world.reconcile()
    assert entry(world, "a")["phase"] == "Running"
    assert entry(world, "cleanup")["phase"] == "Pending"
    assert "outcome" not in world.status
    simulate(world, lambda name, attempt: (1.0, True, 0, None))
    assert world.phase == "Succeeded"
    assert entry(world, "cleanup")["attempts"] == 2
    assert world.status["outcome"]["phase"] == "Succeeded"  # type: ignore[index]


# -- fan-out ---------------------------------------------------------------------------------


def echo(*args: str) -> dict[str, object]:
    template = job_template()
    template["spec"]["template"]["spec"]["containers"][0]["command"] = ["echo", *args]  # type: ignore[index]
    return template


def commands(world: World, step_name: str) -> dict[str, list[str]]:
    return {
        j["metadata"]["labels"][ITEM]: j["spec"]["template"]["spec"]["containers"][0]["command"]  # type: ignore[index]
        for j in world.jobs_of(step_name)
    }


def test_one_job_per_item_substituted_named_and_labelled() -> None:
    items = [{"x": "a", "n": 1}, {"x": "b", "n": 2}, "plain"]
    world = World(
        flow(
            step(
                "each",
                withItems=items[:2],
                template=echo("{{ item.x }}", "{{ item }}", "{{ index }}"),
            )
        )
    )
    world.reconcile()
    assert commands(world, "each") == {
        "0": ["echo", "a", '{"x":"a","n":1}', "0"],
        "1": ["echo", "b", '{"x":"b","n":2}', "1"],
    }
    expected = {names.job_name("f", "uid-1", f"each[{i}]", 0) for i in range(2)}
    assert set(world.jobs) == expected
    assert all(len(n) <= 63 for n in world.jobs)
    assert entry(world, "each")["items"] == {
        "count": 2,
        "phases": "RR",
        "detail": [{"i": 0, "t": "2026-01-01T00:00:00Z"}, {"i": 1, "t": "2026-01-01T00:00:00Z"}],
    }


@pytest.mark.parametrize(
    ("step_cap", "flow_cap", "first"),
    [(2, None, 2), (None, 3, 3), (2, 1, 1), (None, None, 5)],
)
def test_item_parallelism(step_cap, flow_cap, first) -> None:
    fields: dict[str, object] = {"withItems": list(range(5))}
    if step_cap:
        fields["parallelism"] = step_cap
    policy = {"parallelism": flow_cap} if flow_cap else None
    world = World(flow(step("each", **fields), policy=policy))
    world.reconcile()
    assert len(world.jobs) == first
    world.advance(1)
    finish_all(world)
    world.reconcile()
    assert len(world.jobs) == min(2 * first, 5)


def test_an_item_failing_for_good_skips_the_rest_and_fails_the_step() -> None:
    world = World(
        flow(step("each", withItems=list(range(4)), parallelism=1), step("after", "each"))
    )
    world.reconcile()
    world.finish(world.jobs_of("each")[0]["metadata"]["name"], ok=False)  # type: ignore[index]
    world.advance(1)
    world.reconcile()
    each = entry(world, "each")
    assert each["phase"] == "Failed" and each["reason"] == "ItemFailed"
    assert "each[0]" in str(each["message"])
    assert each["items"]["phases"] == "FKKK"  # type: ignore[index]
    assert len(world.jobs) == 1
    assert world.phase == "Failed"


def test_continue_on_failure_runs_every_item_and_the_dependants() -> None:
    out = job_template()
    world = World(
        flow(
            step(
                "each",
                withItems=["a", "b", "c"],
                continueOnFailure=True,
                template=out,
                outputs={"parameters": [{"name": "v"}]},
            ),
            step("after", "each"),
        )
    )
    world.reconcile()
    for job in world.jobs_of("each"):
        index = job["metadata"]["labels"][ITEM]  # type: ignore[index]
        world.finish(job["metadata"]["name"], ok=index != "1", message=f"v=got-{index}")  # type: ignore[index]
    world.advance(1)
    world.reconcile()
    each = entry(world, "each")
    assert each["phase"] == "Failed"
    assert json.loads(each["outputs"]["parameters"]["v"]) == ["got-0", None, "got-2"]  # type: ignore[index]
    assert entry(world, "after")["phase"] == "Running"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('{"a": 1}', "not a list"),
        ("nope", "not JSON"),
        (json.dumps([0] * 1001, separators=(",", ":")), "limit"),
    ],
)
def test_with_param_must_hold_a_json_list(value: str, words: str) -> None:
    world = World(
        flow(
            step("gen", outputs={"parameters": [{"name": "l"}]}),
            step("each", "gen", withParam={"step": "gen", "parameter": "l"}),
        )
    )
    world.reconcile()
    world.finish(world.job_of("gen"), ok=True, message=f"l={value}" if "\n" not in value else value)
    world.advance(1)
    world.reconcile()
    each = entry(world, "each")
    assert each["phase"] == "Failed" and each["reason"] == "InputError"
    assert words in str(each["message"])


def test_no_items_succeed_at_once() -> None:
    world = World(flow(step("each", withItems=[], outputs={"parameters": [{"name": "v"}]})))
    world.reconcile()
    assert world.phase == "Succeeded"
    assert entry(world, "each")["outputs"] == {"parameters": {"v": "[]"}}


def test_a_lost_status_write_adopts_the_item_jobs() -> None:
    world = World(flow(step("each", withItems=list(range(3)))))
    first = world.plan()
    world.apply(first)
    world.flow.pop("status")  # the write was lost; the Jobs exist
    again = world.reconcile()
    assert again.create_jobs == () or all(
        j["metadata"]["name"] in world.jobs
        for j in again.create_jobs  # type: ignore[index]
    )
    assert len(world.jobs) == 3
    assert entry(world, "each")["items"]["phases"] == "RRR"  # type: ignore[index]


def test_a_thousand_items_keep_the_status_small() -> None:
    world = World(flow(step("each", withItems=list(range(1000)), parallelism=50)))
    simulate(world)
    assert world.phase == "Succeeded"
    size = len(json.dumps(entry(world, "each"), separators=(",", ":")))
    assert size < 1300, size  # about one byte per item


def test_a_fan_out_held_by_the_controllers_cap_is_queued() -> None:
    world = World(flow(step("each", withItems=list(range(4)))))
    world.max_starts = 0
    result = world.reconcile()
    assert result.held_for_capacity == 4
    assert world.phase == "Queued"
    assert entry(world, "each")["phase"] == "Queued"
    assert world.condition("Queued")["reason"] == "WaitingForCapacity"
    world.max_starts = 2
    world.advance(1)
    world.apply(world.plan())  # the controller's share is per pass: no idempotence check here
    assert (world.phase, len(world.jobs)) == ("Running", 2)
