"""Operator requests against the real controller and kubesim over HTTPS (official client),
asserting on the objects in the cluster (DESIGN section 3, jobflow.requests):

- a flow fails at step 3 of 5; a retry (spec.retry) runs steps 3-5 only (the Jobs of 1-2 are
  not recreated), step 3 gets step 1's output again, and the flow ends Succeeded, its history
  and Events saying what was retried (who asked is stamped by the webhook: tests/e2e);
- a retry of a named succeeded step reruns it and its dependants, nothing else;
- a retry with parameters changes the value the step receives (its Job's env);
- the controller process is killed (SIGKILL) during a retry, several times, and still creates
  exactly one Job per attempt;
- stop lets the running step finish and ends Failed (Stopped); terminate deletes the running
  Job and its pods at once (Terminated).
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

from controller.kube import EVENTS, PODS
from tests.fixtures.controller import NAMESPACE, flow, job_step
from tests.waiting import eventually


def five_steps(name: str, *, fail_step3: bool = True) -> dict[str, Any]:
    consumer = {
        "inputs": {
            "parameters": [
                {
                    "name": "build-id",
                    "valueFrom": {"stepOutputRef": {"step": "s1", "parameter": "id"}},
                }
            ]
        }
    }
    return flow(
        name,
        [
            job_step(
                "s1",
                termination_message="id=build-42",
                outputs={"parameters": [{"name": "id"}]},
            ),
            job_step("s2", "s1"),
            job_step(
                "s3",
                "s2",
                fail_attempts=1 if fail_step3 else 0,
                attempt_key=f"{name}-s3",
                **consumer,
            ),
            job_step("s4", "s3"),
            job_step("s5", "s4"),
        ],
    )


def jobs_by_step(cluster: Any, name: str) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for job in cluster.jobs(name):
        labels = job["metadata"]["labels"]
        found.setdefault(labels["workflow.kube-zen.io/step"], []).append(
            int(labels["workflow.kube-zen.io/attempt"])
        )
    return {k: sorted(v) for k, v in sorted(found.items())}


def env_of(job: dict[str, Any]) -> dict[str, str]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env") or ()}


def events(cluster: Any, name: str) -> list[dict[str, Any]]:
    return cluster.kube.list_all(EVENTS, NAMESPACE, field_selector=f"involvedObject.name={name}")[
        "items"
    ]


def test_retry_runs_steps_3_to_5_only_and_succeeds(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(five_steps("five"))
    status = cluster.wait_phase("five", "Failed")
    assert [s["phase"] for s in status["steps"]] == [
        "Succeeded",
        "Succeeded",
        "Failed",
        "Skipped",
        "Skipped",
    ]
    before = {j["metadata"]["name"]: j["metadata"]["uid"] for j in cluster.jobs("five")}
    cluster.patch_flow("five", {"spec": {"retry": {"id": "r1"}}})
    status = cluster.wait_phase("five", "Succeeded")
    assert jobs_by_step(cluster, "five") == {
        "s1": [0],
        "s2": [0],
        "s3": [0, 1],
        "s4": [0],
        "s5": [0],
    }
    after = {j["metadata"]["name"]: j["metadata"]["uid"] for j in cluster.jobs("five")}
    assert {k: after[k] for k in before} == before, "the Jobs of steps 1-2 are not recreated"
    retried = cluster.step_jobs("five", "s3")[1]
    assert env_of(retried)["BUILD_ID"] == "build-42", "step 1's output is reused"
    assert status["steps"][0]["outputs"] == {"parameters": {"id": "build-42"}}
    assert status["requests"] == {"retry": "r1"}
    assert [h["type"] for h in status["history"]] == ["Run", "Retry"]
    retry = status["history"][1]
    assert retry["steps"] == ["s3", "s4", "s5"]
    assert "requestedBy" not in retry  # no webhook here: tests/e2e shows the stamp
    eventually(
        lambda: any(
            e["reason"] == "FlowRetried"
            and e["message"] == "retry r1: runs again: s3 (attempt 2), s4, s5"
            for e in events(cluster, "five")
        ),
        5,
    )


def test_retry_of_a_named_step_reruns_it_and_its_dependants(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(five_steps("named", fail_step3=False))
    cluster.wait_phase("named", "Succeeded")
    cluster.patch_flow("named", {"spec": {"retry": {"id": "again", "steps": ["s4"]}}})
    eventually(lambda: cluster.status("named").get("requests") == {"retry": "again"}, 10)
    cluster.wait_phase("named", "Succeeded")
    assert jobs_by_step(cluster, "named") == {
        "s1": [0],
        "s2": [0],
        "s3": [0],
        "s4": [0, 1],
        "s5": [0, 1],
    }


def test_retry_parameters_change_the_value_a_step_receives(cluster, start_controller) -> None:
    start_controller()
    body = flow(
        "params",
        [
            job_step(
                "greet",
                fail_attempts=1,
                attempt_key="params-greet",
                inputs={
                    "parameters": [{"name": "greeting", "valueFrom": {"flowParameter": "greeting"}}]
                },
            )
        ],
        parameters=[{"name": "greeting", "value": "hello"}],
    )
    cluster.create_flow(body)
    cluster.wait_phase("params", "Failed")
    assert env_of(cluster.step_jobs("params", "greet")[0])["GREETING"] == "hello"
    cluster.patch_flow(
        "params", {"spec": {"retry": {"id": "r1", "parameters": {"greeting": "bonjour"}}}}
    )
    status = cluster.wait_phase("params", "Succeeded")
    assert env_of(cluster.step_jobs("params", "greet")[1])["GREETING"] == "bonjour"
    assert status["parameters"] == {"greeting": "bonjour"}


def test_controller_killed_during_a_retry_creates_one_job_per_attempt(
    cluster, spawn_controller
) -> None:
    names = [f"kill-{i}" for i in range(4)]
    process = spawn_controller()
    for name in names:
        body = flow(
            name,
            [
                job_step("a", duration=0.1),
                job_step("b", "a", duration=0.1, fail_attempts=1, attempt_key=f"{name}-b"),
                job_step("c", "b", duration=0.3),
                job_step("d", "b", duration=0.2),
                job_step("e", "c", "d", duration=0.3),
            ],
        )
        cluster.create_flow(body)
    for name in names:
        cluster.wait_phase(name, "Failed", timeout=30)
    for name in names:
        cluster.patch_flow(name, {"spec": {"retry": {"id": "r1"}}})
    rng = random.Random(15)
    for _ in range(4):
        time.sleep(rng.uniform(0.05, 0.4))
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(5)
        process = spawn_controller()
    for name in names:
        status = cluster.wait_phase(name, "Succeeded", timeout=40)
        assert jobs_by_step(cluster, name) == {
            "a": [0],
            "b": [0, 1],
            "c": [0],
            "d": [0],
            "e": [0],
        }, process.log_tail()
        assert {s["name"]: s["attempts"] for s in status["steps"]} == {
            "a": 1,
            "b": 2,
            "c": 1,
            "d": 1,
            "e": 1,
        }
        assert status["requests"] == {"retry": "r1"}


def test_stop_lets_the_running_step_finish(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("soft", [job_step("a", duration=1.5), job_step("b", "a")]))
    eventually(lambda: cluster.step("soft", "a").get("phase") == "Running", 10)
    cluster.patch_flow("soft", {"spec": {"stop": {"id": "s1"}}})
    status = cluster.wait_phase("soft", "Failed")
    assert [(s["phase"], s.get("reason")) for s in status["steps"]] == [
        ("Succeeded", None),
        ("Skipped", "Stopped"),
    ]
    failed = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == (
        "Stopped",
        "stopped by request s1",
    )
    assert jobs_by_step(cluster, "soft") == {"a": [0]}


def test_terminate_deletes_the_running_job_and_its_pods(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("hard", [job_step("a", duration=30), job_step("b", "a")]))
    eventually(lambda: cluster.step("hard", "a").get("phase") == "Running", 10)
    eventually(
        lambda: cluster.kube.list_all(
            PODS, NAMESPACE, label_selector="workflow.kube-zen.io/flow=hard"
        )["items"],
        10,
    )
    cluster.patch_flow("hard", {"spec": {"stop": {"id": "t1", "mode": "Terminate"}}})
    status = cluster.wait_phase("hard", "Failed", timeout=10)
    assert [(s["phase"], s.get("reason")) for s in status["steps"]] == [
        ("Failed", "Terminated"),
        ("Skipped", "Terminated"),
    ]
    eventually(lambda: cluster.jobs("hard") == [], 10, message="the running Job is deleted")
    eventually(
        lambda: (
            cluster.kube.list_all(PODS, NAMESPACE, label_selector="workflow.kube-zen.io/flow=hard")[
                "items"
            ]
            == []
        ),
        10,
        message="its pods go too",
    )
