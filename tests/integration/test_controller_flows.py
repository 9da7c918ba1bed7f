"""The real controller (threads, watches, work queue) against kubesim with simulated Jobs, one
test per semantic of DESIGN section 3, asserting on the objects in the cluster:
linear and diamond flows succeed (dependants start only after their upstreams finished; Events on
the flow; a pass on a finished flow writes nothing); retries with the observed backoff delays
(from Job creation timestamps); an exit code matched by FailJob is not retried;
continueOnFailure; a failure skips dependants and the flow ends Failed; a step timeout removes the
Job and its pods; the flow deadline; `when` false skips and dependants still run; approval and
rejection through the annotation; suspend and resume; Forbid and Replace; TTL deletes the flow
and its Jobs; resourceTemplates created first and referenced by their real names; an invalid
spec is refused (Accepted=False) and runs once corrected."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from controller.kube import CONFIGMAPS, EVENTS, JOBFLOWS, JOBS, PODS, PVCS, NotFound
from tests.fixtures.controller import NAMESPACE, flow, job_step, manual_step
from tests.waiting import eventually


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def created(job: dict[str, Any]) -> datetime:
    return ts(job["metadata"]["creationTimestamp"])


def finished(job: dict[str, Any]) -> datetime:
    return ts(
        job["status"]["completionTime"]
        if "completionTime" in job["status"]
        else next(
            c["lastTransitionTime"]
            for c in job["status"]["conditions"]
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        )
    )


def test_linear_flow_succeeds_in_order_with_events(cluster, start_controller) -> None:
    ctl = start_controller()
    cluster.create_flow(flow("linear", [job_step("a"), job_step("b", "a"), job_step("c", "b")]))
    status = cluster.wait_phase("linear", "Succeeded")
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 3
    assert status["progress"]["completed"] == 3
    assert status.get("completionTime")
    jobs = {j["metadata"]["labels"]["workflow.kube-zen.io/step"]: j for j in cluster.jobs("linear")}
    assert sorted(jobs) == ["a", "b", "c"], "one Job per step"
    assert created(jobs["b"]) >= finished(jobs["a"])
    assert created(jobs["c"]) >= finished(jobs["b"])
    for job in jobs.values():
        labels = job["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "zen-flow"
        assert (
            job["spec"]["template"]["metadata"]["labels"]["workflow.kube-zen.io/flow"] == "linear"
        )
        owner = job["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "JobFlow" and owner["controller"] is True
        assert job["spec"]["backoffLimit"] == 0

    def events() -> set[str]:
        items = cluster.kube.list_all(
            EVENTS, NAMESPACE, field_selector="involvedObject.name=linear"
        )["items"]
        return {e["reason"] for e in items}

    eventually(lambda: {"StepSucceeded", "FlowSucceeded"} <= events(), 5)

    # A pass over a finished flow writes nothing: poke it and check nothing moves.
    before = cluster.flow("linear")
    writes = ctl.reconciler.writes
    cluster.patch_flow("linear", {"metadata": {"labels": {"poke": "1"}}})
    eventually(lambda: ctl.reconciler is not None and len(cluster.jobs("linear")) == 3, 2)
    eventually(lambda: cluster.flow("linear")["metadata"]["labels"].get("poke") == "1", 2)
    after = cluster.flow("linear")
    assert after["status"] == before["status"]
    assert ctl.reconciler.writes == writes
    registry = ctl.metrics.registry
    assert registry.get_sample_value("zenflow_flows", {"phase": "Succeeded"}) == 1
    assert (
        registry.get_sample_value("zenflow_api_requests_total", {"verb": "create", "code": "201"})
        >= 3
    )


def test_diamond_flow_joins_after_both_branches(cluster, start_controller) -> None:
    start_controller()
    steps = [
        job_step("a"),
        job_step("b", "a", duration=0.3),
        job_step("c", "a", duration=0.05),
        job_step("d", "b", "c"),
    ]
    cluster.create_flow(flow("diamond", steps))
    cluster.wait_phase("diamond", "Succeeded")
    jobs = {
        j["metadata"]["labels"]["workflow.kube-zen.io/step"]: j for j in cluster.jobs("diamond")
    }
    assert sorted(jobs) == ["a", "b", "c", "d"]
    assert created(jobs["d"]) >= max(finished(jobs["b"]), finished(jobs["c"]))
    assert created(jobs["b"]) >= finished(jobs["a"]) and created(jobs["c"]) >= finished(jobs["a"])


def test_failing_step_is_retried_with_backoff_delays(cluster, start_controller) -> None:
    start_controller()
    step = job_step(
        "flaky",
        fail_attempts=2,
        attempt_key="flaky-key",
        retryPolicy={"limit": 3, "backoff": {"type": "Exponential", "duration": "1s", "factor": 2}},
    )
    cluster.create_flow(flow("retry", [step]))
    status = cluster.wait_phase("retry", "Succeeded", timeout=20)
    jobs = cluster.step_jobs("retry", "flaky")
    assert len(jobs) == 3, "two failed attempts kept for their logs, then the success"
    assert status["steps"][0]["attempts"] == 3
    # attempt n+1 is created no earlier than the failure of attempt n plus d*factor^n
    gaps = [(created(jobs[i + 1]) - finished(jobs[i])).total_seconds() for i in range(2)]
    assert gaps[0] >= 1 and gaps[1] >= 2, gaps
    # ...and the controller wakes itself for it (no waiting for a resync)
    assert gaps[0] <= 3 and gaps[1] <= 4, gaps
    assert [j["status"].get("failed", 0) > 0 for j in jobs] == [True, True, False]


def test_exit_code_matched_by_failjob_is_not_retried(cluster, start_controller) -> None:
    start_controller()
    policy = {
        "podFailurePolicy": {
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
        }
    }
    step = job_step(
        "fatal",
        exit_code=42,
        retryPolicy={"limit": 3, "backoff": {"type": "Fixed", "duration": "1s"}},
    )
    cluster.create_flow(flow("failjob", [step], policy=policy))
    status = cluster.wait_phase("failjob", "Failed")
    assert len(cluster.step_jobs("failjob", "fatal")) == 1
    entry = status["steps"][0]
    assert entry["phase"] == "Failed" and entry.get("exitCode") == 42


def test_continue_on_failure_lets_dependants_run(cluster, start_controller) -> None:
    start_controller()
    steps = [
        job_step("optional", exit_code=1, continueOnFailure=True),
        job_step("next", "optional"),
    ]
    cluster.create_flow(flow("cof", steps))
    cluster.wait_phase("cof", "Succeeded")
    assert cluster.step("cof", "optional")["phase"] == "Failed"
    assert cluster.step("cof", "next")["phase"] == "Succeeded"


def test_failure_skips_dependants_and_fails_the_flow(cluster, start_controller) -> None:
    start_controller()
    steps = [
        job_step("a", exit_code=7),
        job_step("b", "a"),
        job_step("c", "b"),
        job_step("side", duration=0.5),
    ]
    cluster.create_flow(flow("skip", steps))
    status = cluster.wait_phase("skip", "Failed")
    phases = {s["name"]: s["phase"] for s in status["steps"]}
    assert phases == {"a": "Failed", "b": "Skipped", "c": "Skipped", "side": "Succeeded"}
    # the failed pod's exit code is read once and reported, with no podFailurePolicy asking
    a = cluster.step("skip", "a")
    assert a["exitCode"] == 7 and a["message"].endswith("(exit code 7)"), a
    assert cluster.step("skip", "b").get("reason") == "UpstreamFailed"
    assert cluster.step_jobs("skip", "b") == [] and cluster.step_jobs("skip", "c") == []
    assert status.get("completionTime")


def test_step_timeout_deletes_the_job_and_its_pods(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("timeout", [job_step("slow", duration=60, timeoutSeconds=1)]))
    eventually(lambda: cluster.step_jobs("timeout", "slow"), 10)
    job_name = cluster.step_jobs("timeout", "slow")[0]["metadata"]["name"]
    eventually(
        lambda: cluster.kube.list_all(PODS, NAMESPACE, label_selector=f"job-name={job_name}")[
            "items"
        ],
        10,
        message="pod started",
    )
    cluster.wait_phase("timeout", "Failed", timeout=15)
    assert cluster.step("timeout", "slow").get("reason") == "Timeout"

    def gone() -> bool:
        try:
            cluster.kube.get(JOBS, NAMESPACE, job_name)
            return False
        except NotFound:
            pods = cluster.kube.list_all(PODS, NAMESPACE, label_selector=f"job-name={job_name}")
            return not pods["items"]

    eventually(gone, 10, message="job and pods deleted")


def test_flow_deadline_fails_the_flow_and_stops_running_jobs(cluster, start_controller) -> None:
    start_controller()
    body = flow(
        "deadline",
        [job_step("slow", duration=60), job_step("after", "slow")],
        policy={"activeDeadlineSeconds": 1},
    )
    cluster.create_flow(body)
    status = cluster.wait_phase("deadline", "Failed", timeout=15)
    reasons = {c.get("reason") for c in status.get("conditions") or ()} | {
        s.get("reason") for s in status["steps"]
    }
    assert "DeadlineExceeded" in reasons
    eventually(lambda: not cluster.step_jobs("deadline", "slow"), 10, message="running job deleted")
    assert cluster.step_jobs("deadline", "after") == []
    completion = status["completionTime"]
    assert cluster.status("deadline")["completionTime"] == completion


def test_when_false_skips_and_dependants_still_run(cluster, start_controller) -> None:
    start_controller()
    steps = [
        job_step("a"),
        job_step("never", "a", when="false"),
        job_step("cel", "a", when="steps['a'].phase == 'Succeeded'"),
        job_step("after", "never", "cel"),
    ]
    cluster.create_flow(flow("when", steps))
    status = cluster.wait_phase("when", "Succeeded")
    phases = {s["name"]: s["phase"] for s in status["steps"]}
    assert phases == {
        "a": "Succeeded",
        "never": "Skipped",
        "cel": "Succeeded",
        "after": "Succeeded",
    }
    assert cluster.step_jobs("when", "never") == []


def _approval_flow(name: str) -> dict[str, Any]:
    return flow(
        name,
        [
            job_step("build"),
            manual_step("gate", "build", message="ship it?"),
            job_step("deploy", "gate"),
        ],
    )


def test_manual_approval_resumes_the_flow(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(_approval_flow("approve"))
    eventually(lambda: cluster.step("approve", "gate").get("phase") == "PendingApproval", 10)
    eventually(lambda: cluster.phase("approve") == "Paused", 5)
    assert cluster.step_jobs("approve", "deploy") == []
    cluster.patch_flow(
        "approve", {"metadata": {"annotations": {"approve.workflow.kube-zen.io/gate": "true"}}}
    )
    cluster.wait_phase("approve", "Succeeded")
    assert cluster.step("approve", "gate")["phase"] == "Succeeded"
    assert len(cluster.step_jobs("approve", "deploy")) == 1


def test_manual_rejection_fails_the_flow(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(_approval_flow("reject"))
    eventually(lambda: cluster.step("reject", "gate").get("phase") == "PendingApproval", 10)
    cluster.patch_flow(
        "reject", {"metadata": {"annotations": {"approve.workflow.kube-zen.io/gate": "false"}}}
    )
    cluster.wait_phase("reject", "Failed")
    gate = cluster.step("reject", "gate")
    assert gate["phase"] == "Failed" and gate.get("reason") == "Rejected"
    assert cluster.step("reject", "deploy")["phase"] == "Skipped"
    assert cluster.step_jobs("reject", "deploy") == []


def test_suspend_starts_nothing_until_resumed(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("suspend", [job_step("a"), job_step("b", "a")], suspend=True))
    eventually(lambda: cluster.phase("suspend") == "Suspended", 10)
    assert cluster.jobs("suspend") == []
    cluster.patch_flow("suspend", {"spec": {"suspend": False}})
    cluster.wait_phase("suspend", "Succeeded")
    assert len(cluster.jobs("suspend")) == 2


def test_an_invalid_spec_waits_and_runs_once_corrected(cluster, start_controller) -> None:
    """No webhook here, so a cycle reaches the controller: Accepted=False, nothing started. A
    corrected spec (a new generation) is validated anew and runs, although the controller keeps
    the validation result per generation."""
    start_controller()
    cluster.create_flow(flow("cyclic", [job_step("a", "b"), job_step("b", "a")]))

    def refused() -> dict[str, Any] | None:
        conditions = cluster.status("cyclic").get("conditions") or []
        return next((c for c in conditions if c["type"] == "Accepted"), None)

    accepted = eventually(refused, 10)
    assert (accepted["status"], accepted["reason"]) == ("False", "InvalidSpec")
    assert "a -> b -> a" in accepted["message"]
    assert cluster.jobs("cyclic") == []
    body = cluster.flow("cyclic")
    body["spec"]["steps"][0]["dependencies"] = []
    cluster.kube.replace(JOBFLOWS, NAMESPACE, "cyclic", body)
    done = cluster.wait_phase("cyclic", "Succeeded")
    assert [c["status"] for c in done["conditions"] if c["type"] == "Accepted"] == ["True"]
    assert len(cluster.jobs("cyclic")) == 2


def test_forbid_queues_the_newer_flow_until_the_older_ends(cluster, start_controller) -> None:
    start_controller()
    policy = {"concurrencyPolicy": "Forbid", "concurrencyKey": "nightly"}
    cluster.create_flow(flow("forbid-a", [job_step("work", duration=1.5)], policy=policy))
    eventually(lambda: cluster.phase("forbid-a") == "Running", 10)
    cluster.create_flow(flow("forbid-b", [job_step("work", duration=0.05)], policy=policy))

    def queued() -> bool:
        status = cluster.status("forbid-b")
        conds = {c["type"]: c["status"] for c in status.get("conditions") or ()}
        return status.get("phase") == "Pending" and conds.get("Queued") == "True"

    eventually(queued, 10, message="newer flow queued")
    assert cluster.jobs("forbid-b") == []
    cluster.wait_phase("forbid-a", "Succeeded")
    cluster.wait_phase("forbid-b", "Succeeded")
    first_done = ts(cluster.status("forbid-a")["completionTime"])
    assert created(cluster.jobs("forbid-b")[0]) >= first_done


def test_replace_stops_the_older_flow(cluster, start_controller) -> None:
    start_controller()
    policy = {"concurrencyPolicy": "Replace", "concurrencyKey": "deploy"}
    cluster.create_flow(flow("replace-a", [job_step("work", duration=60)], policy=policy))
    eventually(lambda: cluster.step_jobs("replace-a", "work"), 10)
    cluster.create_flow(flow("replace-b", [job_step("work", duration=0.05)], policy=policy))
    status = cluster.wait_phase("replace-a", "Failed")
    reasons = {c.get("reason") for c in status.get("conditions") or ()}
    assert "Replaced" in reasons
    cluster.wait_phase("replace-b", "Succeeded")
    eventually(lambda: not cluster.step_jobs("replace-a", "work"), 10, message="old job deleted")


def test_ttl_deletes_the_flow_and_its_jobs(cluster, start_controller) -> None:
    start_controller()
    cluster.create_flow(flow("ttl", [job_step("a")], policy={"ttlSecondsAfterFinished": 1}))
    eventually(lambda: cluster.jobs("ttl"), 10)
    eventually(lambda: not cluster.exists("ttl"), 15, message="flow deleted after its TTL")
    eventually(lambda: cluster.jobs("ttl") == [], 10, message="jobs garbage-collected")


def test_resource_templates_are_created_first_and_referenced(cluster, start_controller) -> None:
    start_controller()
    resources = {
        "volumeClaimTemplates": [
            {
                "metadata": {"name": "data"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ],
        "configMapTemplates": [{"metadata": {"name": "cfg"}, "data": {"greeting": "hi"}}],
    }
    pod_spec = {
        "volumes": [
            {"name": "work", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "conf", "configMap": {"name": "cfg"}},
        ]
    }
    cluster.create_flow(
        flow("res", [job_step("use", extra_pod_spec=pod_spec)], resourceTemplates=resources)
    )
    cluster.wait_phase("res", "Succeeded")
    pvc = cluster.kube.get(PVCS, NAMESPACE, "res-data")
    cm = cluster.kube.get(CONFIGMAPS, NAMESPACE, "res-cfg")
    uid = cluster.flow("res")["metadata"]["uid"]
    for obj in (pvc, cm):
        assert obj["metadata"]["ownerReferences"][0]["uid"] == uid
    assert cm["data"] == {"greeting": "hi"}
    job = cluster.step_jobs("res", "use")[0]
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["work"]["persistentVolumeClaim"]["claimName"] == "res-data"
    assert volumes["conf"]["configMap"]["name"] == "res-cfg"
    assert created(job) >= ts(cm["metadata"]["creationTimestamp"])


def test_output_parameter_read_from_the_pod_feeds_a_dependant(cluster, start_controller) -> None:
    """The runtime reads a finished attempt's pod only when the planner asks (outputs here)."""
    start_controller()
    producer = job_step(
        "build",
        termination_message="version=1.2.3",
        outputs={"parameters": [{"name": "version"}]},
    )
    consumer = job_step(
        "deploy",
        "build",
        inputs={
            "parameters": [
                {
                    "name": "version",
                    "valueFrom": {"stepOutputRef": {"step": "build", "parameter": "version"}},
                }
            ]
        },
    )
    cluster.create_flow(flow("outputs", [producer, consumer]))
    cluster.wait_phase("outputs", "Succeeded")
    assert cluster.step("outputs", "build")["outputs"]["parameters"] == {"version": "1.2.3"}
    job = cluster.step_jobs("outputs", "deploy")[0]
    assert "1.2.3" in json.dumps(job["spec"]["template"]["spec"]["containers"])
