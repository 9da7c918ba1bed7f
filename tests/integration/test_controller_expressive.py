"""finally steps and fan-out against kubesim: the real controller and the official
`kubernetes` client over HTTPS, asserting on the objects in the cluster (issue 17).

Covers: a failing flow still runs its finally step, which sees flow.phase == 'Failed' (its
`when`) and gets the outcome as an input (valueFrom.flowOutcome), while a finally step for
success is skipped and the flow stays Failed; a succeeding flow's failing finally step fails it
(reason FinallyFailed) and the flow's completionTime is the finally step's end; a step fans out
over 3 items read from a previous step's JSON output, one item fails once and only that item
is retried (its own attempt 1), and the dependant receives the items' outputs as a JSON list;
a step's parallelism 2 over 10 items never has more than 2 Jobs active (sampled from the Job
watch); a controller killed (SIGKILL) mid fan-out and restarted creates no second Job for any
item attempt.
"""

from __future__ import annotations

import collections
import json
import signal
import time
from typing import Any

from tests.fixtures.controller import flow, job_step
from tests.integration.test_controller_governance import job_watch  # noqa: F401 (a fixture)
from tests.waiting import eventually

STEP = "workflow.kube-zen.io/step"
ITEM = "workflow.kube-zen.io/item-index"
ATTEMPT = "workflow.kube-zen.io/attempt"


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or ()}


def steps_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in status.get("steps") or ()}


def test_a_failing_flow_runs_its_finally_step_which_sees_failed(cluster, start_controller):
    start_controller()
    body = flow(
        "fin-fail",
        [job_step("work", exit_code=3), job_step("after", "work")],
    )
    body["spec"]["finally"] = [
        job_step(
            "on-failure",
            when="flow.phase == 'Failed' && 'work' in flow.failedSteps",
            inputs={
                "parameters": [
                    {"name": "outcome", "valueFrom": {"flowOutcome": "phase"}},
                    {"name": "failed", "valueFrom": {"flowOutcome": "failedSteps"}},
                ]
            },
        ),
        job_step("on-success", when="flow.phase == 'Succeeded'"),
    ]
    cluster.create_flow(body)
    status = cluster.wait_phase("fin-fail", "Failed", timeout=30)
    steps = steps_of(status)
    assert steps["work"]["phase"] == "Failed"
    assert steps["after"]["phase"] == "Skipped"
    assert steps["on-failure"]["phase"] == "Succeeded", steps["on-failure"]
    assert steps["on-failure"]["finally"] is True
    assert steps["on-success"]["phase"] == "Skipped"
    assert status["outcome"]["phase"] == "Failed"
    assert status["outcome"]["failedSteps"] == ["work"]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["status"] == "True" and "work" in failed["message"]
    (job,) = cluster.step_jobs("fin-fail", "on-failure")
    assert env_of(job)["OUTCOME"] == "Failed"
    assert json.loads(env_of(job)["FAILED"]) == ["work"]
    # the flow ended when its finally step did, not when the DAG failed
    assert status["completionTime"] >= steps["on-failure"]["completionTime"]


def test_a_failing_finally_step_fails_a_succeeding_flow(cluster, start_controller):
    start_controller()
    body = flow("fin-bad", [job_step("work")])
    body["spec"]["finally"] = [job_step("cleanup", exit_code=2), job_step("notify")]
    cluster.create_flow(body)
    status = cluster.wait_phase("fin-bad", "Failed", timeout=30)
    steps = steps_of(status)
    assert steps["work"]["phase"] == "Succeeded"
    assert steps["cleanup"]["phase"] == "Failed"
    assert steps["notify"]["phase"] == "Succeeded", "an independent finally step still runs"
    assert status["outcome"]["phase"] == "Succeeded"
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "FinallyFailed"
    assert "cleanup" in failed["message"]


def test_fan_out_over_a_json_output_retries_one_item_alone(cluster, start_controller):
    start_controller()
    items = [{"v": "a", "fail": "0"}, {"v": "b", "fail": "1"}, {"v": "c", "fail": "0"}]
    each = job_step(
        "each",
        "gen",
        withParam={"step": "gen", "parameter": "list"},
        retryPolicy={"limit": 2, "backoff": {"type": "Fixed", "duration": "1s"}},
        outputs={"parameters": [{"name": "out"}]},
        termination_message="out=v-{{ item.v }}-{{ index }}",
    )
    annotations = each["template"]["spec"]["template"]["metadata"]["annotations"]
    annotations["kubesim.io/fail-attempts"] = "{{ item.fail }}"
    annotations["kubesim.io/attempt-key"] = "fan-{{ index }}"
    body = flow(
        "fan",
        [
            job_step(
                "gen",
                termination_message=json.dumps({"list": json.dumps(items)}),
                outputs={"parameters": [{"name": "list"}]},
            ),
            each,
            job_step(
                "use",
                "each",
                inputs={
                    "parameters": [
                        {
                            "name": "all",
                            "valueFrom": {"stepOutputRef": {"step": "each", "parameter": "out"}},
                        }
                    ]
                },
            ),
        ],
    )
    cluster.create_flow(body)
    status = cluster.wait_phase("fan", "Succeeded", timeout=40)
    each_status = steps_of(status)["each"]
    assert each_status["items"]["count"] == 3
    assert each_status["items"]["phases"] == "SSS"
    assert each_status["retries"] == 1
    assert json.loads(each_status["outputs"]["parameters"]["out"]) == ["v-a-0", "v-b-1", "v-c-2"]
    attempts = collections.defaultdict(list)
    for job in cluster.step_jobs("fan", "each"):
        labels = job["metadata"]["labels"]
        attempts[labels[ITEM]].append(int(labels[ATTEMPT]))
    assert {k: sorted(v) for k, v in attempts.items()} == {"0": [0], "1": [0, 1], "2": [0]}
    (use,) = cluster.step_jobs("fan", "use")
    assert json.loads(env_of(use)["ALL"]) == ["v-a-0", "v-b-1", "v-c-2"]


def test_step_parallelism_two_on_ten_items(cluster, start_controller, job_watch):  # noqa: F811
    start_controller()
    step = job_step("each", withItems=list(range(10)), parallelism=2, duration=0.3)
    cluster.create_flow(flow("fan-par", [step]))
    status = cluster.wait_phase("fan-par", "Succeeded", timeout=60)
    assert steps_of(status)["each"]["items"]["phases"] == "S" * 10
    eventually(lambda: len(job_watch.started) == 10 and not job_watch.active, 10)
    assert job_watch.peak == 2, f"at most 2 item Jobs at once, and 2 used: saw {job_watch.peak}"


def test_a_killed_controller_mid_fan_out_creates_no_duplicate_job(cluster, spawn_controller):
    step = job_step("each", withItems=[f"x{i}" for i in range(12)], parallelism=4, duration=0.4)
    cluster.create_flow(flow("fan-kill", [step, job_step("after", "each")]))
    kills = 0
    for round_ in range(3):
        proc = spawn_controller("--no-leader-elect").proc
        seen = len(cluster.jobs("fan-kill"))
        eventually(
            lambda seen=seen: (
                len(cluster.jobs("fan-kill")) > seen or cluster.phase("fan-kill") == "Succeeded"
            ),
            20,
            message=f"controller #{round_} made progress",
        )
        time.sleep(0.1 * (round_ + 1))
        if cluster.phase("fan-kill") == "Succeeded":
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        kills += 1
    assert kills >= 1, "the fan-out finished before a kill"
    spawn_controller("--no-leader-elect")
    status = cluster.wait_phase("fan-kill", "Succeeded", timeout=60)
    assert steps_of(status)["each"]["items"]["phases"] == "S" * 12
    per_item = collections.Counter(
        (j["metadata"]["labels"].get(ITEM), j["metadata"]["labels"][ATTEMPT])
        for j in cluster.step_jobs("fan-kill", "each")
    )
    assert sorted(per_item) == [(str(i), "0") for i in sorted(range(12), key=str)]
    assert set(per_item.values()) == {1}, f"an item attempt got two Jobs: {per_item}"
