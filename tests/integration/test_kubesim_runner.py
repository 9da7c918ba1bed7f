"""kubesim's Job runner in `sim` mode, driven through the real HTTPS API with the official client.

Covers: a Job that succeeds (pod labels, ownerReference, pod and Job status, conditions
SuccessCriteriaMet + Complete, completionTime); a failing Job retried up to its backoffLimit
(one pod per attempt, exit code and termination message in each pod, FailureTarget + Failed with
BackoffLimitExceeded); `kubesim.io/fail-attempts` counted across Jobs sharing an attempt key;
restartPolicy OnFailure (restart in the same pod); activeDeadlineSeconds (DeadlineExceeded, pods
removed); suspend and resume (no pods while suspended, active pods deleted and not
counted failed, Suspended True/False conditions, startTime kept then reset on resume and the
deadline counted from it); completions/parallelism; a running pod deleted by a user is
counted failed and replaced; `kubesim.io/log` served by the pod log endpoint; a bad annotation
fails the pod with a clear message; ttlSecondsAfterFinished deletes the Job and its pods; a
server restarted on the same data_dir replaces the pods that were running and finishes the Job;
bare pods (`kubectl run`, pods of other owners) run as the kubelet runs them: Never ends
Succeeded/Failed with the annotated exit code and log, Always keeps running until deleted, or
restarts with the kubelet's back-off (CrashLoopBackOff) when it exits.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

import kubesim
from kubesim.runner import JOBS, PODS
from tests.fixtures import kubesim as kubesim_fixtures
from tests.waiting import eventually

NS = "default"


@pytest.fixture
def cluster(kubesim_server: Any) -> Any:
    return kubesim_server


@pytest.fixture
def api(kube_api_client: client.ApiClient) -> client.ApiClient:
    return kube_api_client


def make_job(
    name: str,
    annotations: dict[str, str] | None = None,
    *,
    restart_policy: str = "Never",
    template_annotations: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "demo"}, "annotations": template_annotations or {}},
                "spec": {
                    "restartPolicy": restart_policy,
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            },
            **spec,
        },
    }


def job_status(api: client.ApiClient, name: str) -> dict[str, Any]:
    job = client.BatchV1Api(api).read_namespaced_job(name, NS)
    return api.sanitize_for_serialization(job).get("status") or {}


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in status.get("conditions") or []}


def parse_time(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def finished(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    status = job_status(api, name)
    conds = conditions(status)
    if conds.get("Complete", ("",))[0] == "True" or conds.get("Failed", ("",))[0] == "True":
        return status
    return None


def pods_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"job-name={name}")
    return [api.sanitize_for_serialization(p) for p in pods.items]


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]


def test_success(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    created = batch.create_namespaced_job(NS, make_job("ok"))
    status = eventually(lambda: finished(api, "ok"), 10)
    assert conditions(status) == {
        "SuccessCriteriaMet": ("True", "CompletionsReached"),
        "Complete": ("True", "CompletionsReached"),
    }
    assert status["succeeded"] == 1
    assert "failed" not in status and "active" not in status
    assert status["startTime"] and status["completionTime"]
    (pod,) = pods_of(api, "ok")
    meta = pod["metadata"]
    uid = created.metadata.uid
    assert meta["name"].startswith("ok-") and len(meta["name"]) == len("ok-") + 5
    assert meta["labels"] == {
        "app": "demo",
        "job-name": "ok",
        "controller-uid": uid,
        "batch.kubernetes.io/job-name": "ok",
        "batch.kubernetes.io/controller-uid": uid,
    }
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Job",
        "ok",
        uid,
        True,
    )
    assert pod["status"]["phase"] == "Succeeded"
    term = terminated(pod)
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert term["startedAt"] and term["finishedAt"]


def test_failure_retries_up_to_backoff_limit(api: client.ApiClient) -> None:
    ann = {"kubesim.io/exit-code": "3", "kubesim.io/termination-message": "disk full"}
    client.BatchV1Api(api).create_namespaced_job(NS, make_job("bad", ann, backoffLimit=2))
    status = eventually(lambda: finished(api, "bad"), 10)
    assert conditions(status) == {
        "FailureTarget": ("True", "BackoffLimitExceeded"),
        "Failed": ("True", "BackoffLimitExceeded"),
    }
    assert status["failed"] == 3
    assert "completionTime" not in status
    pods = pods_of(api, "bad")
    assert len(pods) == 3
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        term = terminated(pod)
        assert (term["exitCode"], term["reason"], term["message"]) == (3, "Error", "disk full")


def test_fail_attempts_are_counted_across_jobs(api: client.ApiClient) -> None:
    key = f"flow-{uuid.uuid4().hex[:6]}-build"
    ann = {"kubesim.io/fail-attempts": "2", "kubesim.io/attempt-key": key}
    batch = client.BatchV1Api(api)
    results = []
    for attempt in range(3):
        name = f"build-{attempt}"
        batch.create_namespaced_job(NS, make_job(name, ann, backoffLimit=0))
        status = eventually(lambda name=name: finished(api, name), 10)
        results.append("Complete" if "Complete" in conditions(status) else "Failed")
    assert results == ["Failed", "Failed", "Complete"]
    # within one Job, the retries count too: 1 failure then success with backoffLimit 1
    ann2 = {"kubesim.io/fail-attempts": "1", "kubesim.io/attempt-key": key + "-b"}
    batch.create_namespaced_job(NS, make_job("retry-inside", ann2, backoffLimit=1))
    status = eventually(lambda: finished(api, "retry-inside"), 10)
    assert "Complete" in conditions(status)
    assert (status["failed"], status["succeeded"]) == (1, 1)


def test_on_failure_restarts_in_the_same_pod(api: client.ApiClient) -> None:
    ann = {"kubesim.io/fail-attempts": "2"}
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("onf", ann, restart_policy="OnFailure", backoffLimit=3)
    )
    status = eventually(lambda: finished(api, "onf"), 10)
    assert "Complete" in conditions(status)
    (pod,) = pods_of(api, "onf")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["restartCount"] == 2
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["state"]["terminated"]["exitCode"] == 0

    client.BatchV1Api(api).create_namespaced_job(
        NS,
        make_job(
            "onf-fail", {"kubesim.io/exit-code": "4"}, restart_policy="OnFailure", backoffLimit=2
        ),
    )
    status = eventually(lambda: finished(api, "onf-fail"), 10)
    assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
    assert status["failed"] == 1
    assert pods_of(api, "onf-fail") == []  # upstream deletes the pod of a failed Job


def test_active_deadline(api: client.ApiClient) -> None:
    client.BatchV1Api(api).create_namespaced_job(
        # 3 s: the pod must be seen Running before the deadline ends it, on a loaded machine too
        NS,
        make_job("slow", {"kubesim.io/duration": "60"}, activeDeadlineSeconds=3),
    )
    eventually(lambda: job_status(api, "slow").get("active") == 1, 5)
    assert eventually(
        lambda: [p for p in pods_of(api, "slow") if p["status"].get("phase") == "Running"], 5
    )
    status = eventually(lambda: finished(api, "slow"), 15)
    assert conditions(status) == {
        "FailureTarget": ("True", "DeadlineExceeded"),
        "Failed": ("True", "DeadlineExceeded"),
    }
    assert status["failed"] == 1
    assert "active" not in status
    eventually(lambda: pods_of(api, "slow") == [], 5)


def test_suspend_and_resume(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(NS, make_job("later", suspend=True))
    status = eventually(lambda: conditions(job_status(api, "later")).get("Suspended"), 5)
    assert status == ("True", "JobSuspended")
    assert "startTime" not in job_status(api, "later")
    assert pods_of(api, "later") == []
    batch.patch_namespaced_job("later", NS, {"spec": {"suspend": False}})
    status = eventually(lambda: finished(api, "later"), 10)
    conds = conditions(status)
    assert conds["Suspended"] == ("False", "JobResumed")
    assert conds["Complete"] == ("True", "CompletionsReached")
    assert status["startTime"]


def test_suspending_a_running_job_removes_its_pods(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(NS, make_job("pause", {"kubesim.io/duration": "60"}))
    eventually(lambda: job_status(api, "pause").get("active") == 1, 5)
    before = job_status(api, "pause")["startTime"]
    batch.patch_namespaced_job("pause", NS, {"spec": {"suspend": True}})
    eventually(
        lambda: conditions(job_status(api, "pause")).get("Suspended") == ("True", "JobSuspended"), 5
    )
    eventually(lambda: pods_of(api, "pause") == [], 5)
    status = eventually(lambda: (s := job_status(api, "pause")).get("active") is None and s, 5)
    assert "failed" not in status  # pods removed by a suspension are not failures
    (cond,) = [c for c in status["conditions"] if c["type"] == "Suspended"]
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True",
        "JobSuspended",
        "Job suspended",
    )
    assert status["startTime"] == before  # upstream keeps it while suspended


def test_a_suspended_job_stays_without_pods_and_resuming_resets_its_start_time(
    api: client.ApiClient,
) -> None:
    """Upstream syncJob: no pods while suspended, startTime kept, then set to the resume time,
    from which activeDeadlineSeconds counts."""
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        NS, make_job("nap", {"kubesim.io/duration": "60"}, activeDeadlineSeconds=2)
    )
    eventually(lambda: job_status(api, "nap").get("active") == 1, 5)
    first_start = job_status(api, "nap")["startTime"]
    batch.patch_namespaced_job("nap", NS, {"spec": {"suspend": True}})
    eventually(lambda: pods_of(api, "nap") == [] and "active" not in job_status(api, "nap"), 5)
    # past the 2 s deadline counted from the first start: a suspended Job does not fail
    eventually(lambda: time.time() > parse_time(first_start) + 3.5, 6)
    status = job_status(api, "nap")
    assert "Failed" not in conditions(status) and pods_of(api, "nap") == []
    assert status["startTime"] == first_start
    batch.patch_namespaced_job("nap", NS, {"spec": {"suspend": False}})
    resumed = eventually(
        lambda: (
            conditions(s := job_status(api, "nap")).get("Suspended") == ("False", "JobResumed")
            and s
        ),
        5,
    )
    assert parse_time(resumed["startTime"]) >= parse_time(first_start) + 3
    eventually(lambda: job_status(api, "nap").get("active") == 1, 5)
    status = eventually(lambda: finished(api, "nap"), 10)
    assert conditions(status)["Failed"] == ("True", "DeadlineExceeded")
    failed_at = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert parse_time(failed_at["lastTransitionTime"]) >= parse_time(resumed["startTime"]) + 1


def test_completions_and_parallelism(api: client.ApiClient) -> None:
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("many", {"kubesim.io/duration": "0.2"}, completions=3, parallelism=2)
    )
    eventually(lambda: job_status(api, "many").get("active") == 2, 5)
    status = eventually(lambda: finished(api, "many"), 10)
    assert status["succeeded"] == 3
    assert len(pods_of(api, "many")) == 3


def test_indexed_job(api: client.ApiClient) -> None:
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("idx", completions=3, parallelism=3, completionMode="Indexed")
    )
    status = eventually(lambda: finished(api, "idx"), 10)
    assert status["completedIndexes"] == "0-2"
    indexes = sorted(
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        for p in pods_of(api, "idx")
    )
    assert indexes == ["0", "1", "2"]


def test_deleted_running_pod_is_counted_failed_and_replaced(api: client.ApiClient) -> None:
    client.BatchV1Api(api).create_namespaced_job(
        NS, make_job("victim", {"kubesim.io/duration": "60"})
    )
    (first,) = eventually(lambda: pods_of(api, "victim"), 5)
    client.CoreV1Api(api).delete_namespaced_pod(first["metadata"]["name"], NS)

    def replaced() -> bool:
        names = [p["metadata"]["name"] for p in pods_of(api, "victim")]
        return len(names) == 1 and names[0] != first["metadata"]["name"]

    eventually(replaced, 5)
    eventually(lambda: job_status(api, "victim").get("failed") == 1, 5)
    assert job_status(api, "victim")["active"] == 1


def test_log_annotation_and_bad_annotation(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(
        NS, make_job("talk", template_annotations={"kubesim.io/log": "hello\nworld\n"})
    )
    eventually(lambda: finished(api, "talk"), 10)
    (pod,) = pods_of(api, "talk")
    text = client.CoreV1Api(api).read_namespaced_pod_log(pod["metadata"]["name"], NS)
    assert text == "hello\nworld\n"

    batch.create_namespaced_job(
        NS, make_job("typo", {"kubesim.io/duration": "soon"}, backoffLimit=0)
    )
    status = eventually(lambda: finished(api, "typo"), 10)
    assert "Failed" in conditions(status)
    (pod,) = pods_of(api, "typo")
    term = terminated(pod)
    assert term["exitCode"] == 2
    assert "kubesim.io/duration" in term["message"]


def test_ttl_after_finished_deletes_job_and_pods(api: client.ApiClient) -> None:
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job(NS, make_job("short-lived", ttlSecondsAfterFinished=0))

    def gone() -> bool:
        try:
            batch.read_namespaced_job("short-lived", NS)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, 10)
    eventually(lambda: pods_of(api, "short-lived") == [], 5)


def test_restarted_server_replaces_pods_that_were_running(tmp_path: Path) -> None:
    job = make_job("long", {"kubesim.io/duration": "1"})
    with kubesim.start(data_dir=tmp_path) as first:
        first.store.create(JOBS, job, namespace=NS)
        eventually(
            lambda: (
                first.store.get(JOBS, "long", namespace=NS).get("status", {}).get("active") == 1
            ),
            5,
        )
        (old,) = first.store.list(PODS, namespace=NS)
    with kubesim.start(data_dir=tmp_path) as second:

        def done() -> dict[str, Any] | None:
            status = second.store.get(JOBS, "long", namespace=NS).get("status") or {}
            return status if finished_as_dict(status) == "Complete" else None

        status = eventually(done, 10)
        assert (status.get("succeeded"), status.get("failed")) == (1, None)
        (pod,) = second.store.list(PODS, namespace=NS)
        assert pod["metadata"]["name"] != old["metadata"]["name"]
        assert pod["status"]["phase"] == "Succeeded"


def finished_as_dict(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return str(cond["type"])
    return None


# --- bare pods: the kubelet side runs any pod no Job owns -------------------------------------


def bare_pod(api: client.ApiClient, name: str) -> dict[str, Any]:
    return api.sanitize_for_serialization(client.CoreV1Api(api).read_namespaced_pod(name, NS))


def test_kubectl_run_pods_run_as_the_kubelet_runs_them(
    cluster: Any, api: client.ApiClient, tmp_path: Path
) -> None:
    def kubectl(*args: str) -> str:
        done = kubesim_fixtures.kubectl(cluster, *args, cache_dir=tmp_path / "cache")
        assert done.returncode == 0, done.stderr
        return done.stdout

    kubectl(
        "run", "once", "--image=busybox", "--restart=Never", "--annotations=kubesim.io/log=hello"
    )
    kubectl(
        "run", "fails", "--image=busybox", "--restart=Never", "--annotations=kubesim.io/exit-code=3"
    )
    kubectl("run", "server", "--image=nginx")  # restartPolicy Always: runs until deleted
    kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/once", "--timeout=10s")
    assert kubectl("logs", "once") == "hello"
    kubectl("wait", "--for=jsonpath={.status.phase}=Failed", "pod/fails", "--timeout=10s")
    term = bare_pod(api, "fails")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    kubectl("wait", "--for=condition=Ready", "pod/server", "--timeout=10s")
    status = bare_pod(api, "server")["status"]
    assert status["phase"] == "Running" and "running" in status["containerStatuses"][0]["state"]
    kubectl("delete", "pod", "server", "--timeout=10s")


def test_a_bare_pod_that_exits_under_restart_always_crash_loops(api: client.ApiClient) -> None:
    pod = {
        "metadata": {"name": "looper", "annotations": {"kubesim.io/duration": "0.2"}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
    }
    client.CoreV1Api(api).create_namespaced_pod(NS, pod)
    status = eventually(
        lambda: (
            (s := bare_pod(api, "looper")["status"]).get("containerStatuses")
            and s["containerStatuses"][0]["restartCount"] == 1
            and s
        ),
        5,
    )
    (cs,) = status["containerStatuses"]
    assert status["phase"] == "Running"
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "back-off 10s restarting failed container=main" in cs["state"]["waiting"]["message"]
    assert cs["lastState"]["terminated"]["reason"] == "Completed"


def test_a_pod_owned_by_another_controller_is_still_run(api: client.ApiClient) -> None:
    """The kubelet runs every pod; only a Job's pods are left to the Job runner."""
    owner = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": "rs",
        "uid": "u-rs",
        "controller": True,
    }
    pod = {
        "metadata": {"name": "owned", "ownerReferences": [owner]},
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]},
    }
    client.CoreV1Api(api).create_namespaced_pod(NS, pod)
    eventually(lambda: bare_pod(api, "owned")["status"]["phase"] == "Succeeded", 5)


def test_a_pod_for_another_scheduler_stays_pending(api: client.ApiClient) -> None:
    pod = {
        "metadata": {"name": "unscheduled"},
        "spec": {"schedulerName": "my-scheduler", "containers": [{"name": "c", "image": "x"}]},
    }
    client.CoreV1Api(api).create_namespaced_pod(NS, pod)
    client.CoreV1Api(api).create_namespaced_pod(
        NS,
        {
            "metadata": {"name": "marker"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]},
        },
    )
    eventually(lambda: bare_pod(api, "marker")["status"]["phase"] == "Succeeded", 5)
    assert bare_pod(api, "unscheduled")["status"]["phase"] == "Pending"
