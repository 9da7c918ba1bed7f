"""Governance against kubesim: the real controller (threads, watches, work queue) and the
official `kubernetes` client over HTTPS, asserting on the objects in the cluster.

Covers: executionPolicy.parallelism 2 on a 6-wide fan-out never has more than 2 Jobs active
(sampled from the Job watch, not from status) and the held steps say WaitingForParallelism;
--max-active-jobs with a huge and a small flow: never more Jobs active than the cap, the small
flow starts (and ends) before the huge one finishes, the gauges say so; a Job suspended by the
test acting as Kueue (a direct patch of spec.suspend, as Kueue's webhook and preemption do)
keeps its step and flow Queued, its run timeout does not tick, the pending timeout fires with
reason PendingTimeout and the retry policy starts a new attempt, which once unsuspended runs
and the flow succeeds; the Kueue labels from queueName/priorityClassName are on the Jobs;
the labels, nodeSelector and tolerations an admission controller adds to a Job zen-flow
created survive reconciles; the flow's own suspend leaves a Kueue-suspended Job alone; a
mutating webhook doing what Kueue's does (every Job with a queue-name label created suspended,
called by kubesim over TLS) holds each step Queued until "Kueue" admits it, so a started flow
waits mid-DAG (phase Queued, condition Queued naming the step) and then succeeds.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client, watch

from controller.kube import EVENTS
from tests.fixtures.controller import NAMESPACE, Cluster, flow, job_step
from tests.integration.test_kubesim_admission import (  # the HTTPS webhook server fixtures
    ca_bundle,
    pki,  # noqa: F401
    register,
    start_hook,  # noqa: F401
)
from tests.integration.test_kubesim_admission import webhook as admission_webhook
from tests.waiting import eventually

STEP = "workflow.kube-zen.io/step"
FLOW = "workflow.kube-zen.io/flow"


@dataclass
class JobWatch:
    """Every Job event of the namespace, from the official client's watch, in order; the
    number of Jobs active (created, not yet Complete/Failed nor deleted) after each one."""

    api: client.ApiClient
    active: set[str] = field(default_factory=set)
    peak: int = 0
    started: list[tuple[str, str]] = field(default_factory=list)  # (flow, job) in ADDED order
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, resource_version: str) -> None:
        batch = client.BatchV1Api(self.api)
        w = watch.Watch()
        while not self.stop.is_set():
            for event in w.stream(
                batch.list_namespaced_job,
                NAMESPACE,
                resource_version=resource_version,
                timeout_seconds=1,
            ):
                job = event["object"]
                resource_version = job.metadata.resource_version
                self._see(event["type"], job)
                if self.stop.is_set():
                    break

    def _see(self, kind: str, job: client.V1Job) -> None:
        name = job.metadata.name
        done = any(
            c.type in ("Complete", "Failed") and c.status == "True"
            for c in (job.status.conditions if job.status and job.status.conditions else ())
        )
        if kind == "ADDED" and name not in {n for _, n in self.started}:
            self.started.append(((job.metadata.labels or {}).get(FLOW, ""), name))
        if kind == "DELETED" or done:
            self.active.discard(name)
        else:
            self.active.add(name)
        self.peak = max(self.peak, len(self.active))


@pytest.fixture
def job_watch(cluster: Cluster, kube_api_client: client.ApiClient) -> Iterator[JobWatch]:
    listed = client.BatchV1Api(kube_api_client).list_namespaced_job(NAMESPACE)
    sampler = JobWatch(kube_api_client)
    thread = threading.Thread(
        target=sampler.run, args=(listed.metadata.resource_version,), daemon=True
    )
    thread.start()
    yield sampler
    sampler.stop.set()
    thread.join(5)


def reasons(cluster: Cluster, name: str) -> dict[str, str | None]:
    return {s["name"]: s.get("reason") for s in cluster.status(name).get("steps") or ()}


def patch_job(api: client.ApiClient, name: str, body: dict[str, Any]) -> None:
    client.BatchV1Api(api).patch_namespaced_job(name, NAMESPACE, body)


def job_named(cluster: Cluster, flow_name: str, step: str, attempt: int) -> dict[str, Any]:
    """The Job of ``attempt`` of ``step`` ({} while there is none)."""
    for job in cluster.step_jobs(flow_name, step):
        if job["metadata"]["labels"]["workflow.kube-zen.io/attempt"] == str(attempt):
            return job
    return {}


def test_parallelism_two_on_a_six_wide_fan_out(cluster, start_controller, job_watch) -> None:
    start_controller()
    steps = [job_step(f"s{i}", duration=0.4) for i in range(6)]
    cluster.create_flow(flow("par", steps, policy={"parallelism": 2}))

    def holding() -> bool:
        return "WaitingForParallelism" in reasons(cluster, "par").values()

    eventually(holding, 10, message="held steps say WaitingForParallelism")
    status = cluster.wait_phase("par", "Succeeded", timeout=30)
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 6
    eventually(lambda: len(job_watch.started) == 6 and not job_watch.active, 5)
    assert job_watch.peak == 2, f"at most 2 Jobs at once, and 2 used: saw {job_watch.peak}"
    # Slots went in spec order (Job names are <flow>-<step>-<attempt>-<hash>); the Jobs of one
    # pass are created concurrently, so two started together may be seen in either order.
    order = [int(n.split("-")[1][1:]) for _, n in job_watch.started]
    assert sorted(order) == list(range(6))
    assert all(abs(index - position) <= 1 for position, index in enumerate(order)), order


def test_global_cap_lets_a_small_flow_start_before_a_huge_one_finishes(
    cluster, start_controller, job_watch
) -> None:
    ctl = start_controller(max_active_jobs=2)
    huge = [job_step(f"h{i}", duration=0.3) for i in range(16)]
    cluster.create_flow(flow("huge", huge))
    eventually(lambda: len(cluster.jobs("huge")) >= 2, 10, message="huge started")
    eventually(
        lambda: "WaitingForCapacity" in reasons(cluster, "huge").values(),
        5,
        message="huge's other steps wait for capacity",
    )
    cluster.create_flow(flow("small", [job_step("only", duration=0.1)]))
    cluster.wait_phase("small", "Succeeded", timeout=30)
    assert cluster.phase("huge") != "Succeeded", "the small flow waited for the huge one"
    cluster.wait_phase("huge", "Succeeded", timeout=60)
    eventually(lambda: len(job_watch.started) == 17 and not job_watch.active, 5)
    assert job_watch.peak <= 2, f"never more than the cap: saw {job_watch.peak}"
    flows_in_order = [f for f, _ in job_watch.started]
    small_at = flows_in_order.index("small")
    assert small_at < len(flows_in_order) - 1 - 8, (
        f"the small flow got a slot soon after it arrived, not at the end: {flows_in_order}"
    )
    registry = ctl.metrics.registry
    assert registry.get_sample_value("zenflow_max_active_jobs") == 2
    assert registry.get_sample_value("zenflow_active_jobs") == 0
    assert registry.get_sample_value("zenflow_flows_waiting_for_capacity") == 0


def test_a_job_suspended_by_kueue_is_queued_until_admitted(
    cluster, start_controller, kube_api_client
) -> None:
    start_controller()
    step = job_step(
        "train",
        duration=1.5,
        timeoutSeconds=3,
        pendingTimeoutSeconds=5,
        retryPolicy={"limit": 1, "backoff": {"type": "Fixed", "duration": "1s"}},
        priorityClassName="high",
    )
    cluster.create_flow(flow("kq", [step], queueName="team"))

    # Acting as Kueue: the queue has no quota, so the Job is (re-)suspended as soon as it exists.
    first = eventually(lambda: job_named(cluster, "kq", "train", 0), 10)
    patch_job(kube_api_client, first["metadata"]["name"], {"spec": {"suspend": True}})
    labels = first["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team"
    assert labels["kueue.x-k8s.io/priority-class"] == "high"
    queued_at = time.monotonic()
    eventually(lambda: cluster.phase("kq") == "Queued", 10, message="flow Queued")
    entry = cluster.step("kq", "train")
    assert (entry["phase"], entry["reason"]) == ("Queued", "JobSuspended")
    assert "in queue team" in entry["message"]

    # Past timeoutSeconds=3 while suspended: the run clock does not tick, the step stays Queued.
    eventually(lambda: time.monotonic() - queued_at > 3.5, 5, interval=0.25)
    entry = cluster.step("kq", "train")
    assert (entry["phase"], entry["attempts"]) == ("Queued", 1), entry

    # pendingTimeoutSeconds=5: the attempt fails with PendingTimeout and the retry policy applies.
    def retried() -> dict[str, Any] | None:
        e = cluster.step("kq", "train")
        return e if e.get("attempts") == 2 or e.get("reason") == "RetryBackoff" else None

    entry = eventually(retried, 10, message="PendingTimeout then a retry")
    second = eventually(lambda: job_named(cluster, "kq", "train", 1), 10)
    patch_job(kube_api_client, second["metadata"]["name"], {"spec": {"suspend": True}})

    def said() -> list[str]:
        events = cluster.kube.list_all(EVENTS, NAMESPACE, field_selector="involvedObject.name=kq")
        return [e["message"] for e in events["items"] if e["reason"] == "StepPendingTimedOut"]

    # Events are written asynchronously (gathered for a moment), so they may trail the status.
    assert "pendingTimeoutSeconds=5" in eventually(said, 10)[0]
    assert [j["metadata"]["name"] for j in cluster.step_jobs("kq", "train")] == [
        second["metadata"]["name"]
    ], "the timed-out attempt's Job was deleted"
    assert cluster.step("kq", "train")["retries"] == 1

    eventually(lambda: cluster.step("kq", "train").get("phase") == "Queued", 10)
    # Kueue admits it: the Job controller starts it, the step runs and the flow succeeds.
    patch_job(kube_api_client, second["metadata"]["name"], {"spec": {"suspend": False}})
    status = cluster.wait_phase("kq", "Succeeded", timeout=20)
    (entry,) = status["steps"]
    assert (entry["phase"], entry["attempts"], entry["retries"]) == ("Succeeded", 2, 1)


def test_what_an_admission_controller_adds_survives_reconciles(
    cluster, start_controller, kube_api_client
) -> None:
    ctl = start_controller()
    cluster.create_flow(
        flow("adm", [job_step("a", duration=1.0), job_step("b", "a")], queueName="team")
    )
    job = eventually(lambda: job_named(cluster, "adm", "a", 0), 10)
    name = job["metadata"]["name"]
    # As Kueue does: suspend it, then on admission inject the flavor's nodeSelector and
    # tolerations into the pod template and labels on the Job, then unsuspend.
    patch_job(kube_api_client, name, {"spec": {"suspend": True}})
    eventually(lambda: cluster.step("adm", "a").get("phase") == "Queued", 10)
    injected = {
        "metadata": {
            "labels": {"kueue.x-k8s.io/admitted-by": "cq-a"},
            "annotations": {"kueue.x-k8s.io/workload": "job-a"},
        },
        "spec": {
            "template": {
                "spec": {
                    "nodeSelector": {"cloud.example/pool": "spot"},
                    "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
                }
            }
        },
    }
    patch_job(kube_api_client, name, injected)
    writes = ctl.reconciler.writes
    patch_job(kube_api_client, name, {"spec": {"suspend": False}})
    eventually(lambda: cluster.step("adm", "a").get("phase") in ("Running", "Succeeded"), 10)
    # More passes: poke the flow (a pass per change) while the Job runs.
    for i in range(3):
        cluster.patch_flow("adm", {"metadata": {"labels": {"poke": str(i)}}})
    cluster.wait_phase("adm", "Succeeded", timeout=20)
    after = client.BatchV1Api(kube_api_client).read_namespaced_job(name, NAMESPACE).to_dict()
    assert after["metadata"]["labels"]["kueue.x-k8s.io/admitted-by"] == "cq-a"
    assert after["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team"
    assert after["metadata"]["annotations"]["kueue.x-k8s.io/workload"] == "job-a"
    pod_spec = after["spec"]["template"]["spec"]
    assert pod_spec["node_selector"] == {"cloud.example/pool": "spot"}
    assert [t["key"] for t in pod_spec["tolerations"]] == ["spot"]
    assert after["spec"]["suspend"] is False
    assert ctl.reconciler.writes > writes  # the passes did run (status writes), and left it be


def test_the_flows_own_suspend_leaves_kueue_suspended_jobs_alone(
    cluster, start_controller, kube_api_client
) -> None:
    start_controller()
    cluster.create_flow(flow("own", [job_step("a", duration=0.3), job_step("b", "a")]))
    job = eventually(lambda: job_named(cluster, "own", "a", 0), 10)
    name = job["metadata"]["name"]
    patch_job(kube_api_client, name, {"spec": {"suspend": True}})
    eventually(lambda: cluster.step("own", "a").get("phase") == "Queued", 10)
    cluster.patch_flow("own", {"spec": {"suspend": True}})
    cluster.wait_phase("own", "Suspended")
    # Kueue admits the Job while the flow is suspended: the controller does not suspend it back.
    patch_job(kube_api_client, name, {"spec": {"suspend": False}})
    eventually(lambda: cluster.step("own", "a").get("phase") == "Succeeded", 10)
    assert (
        client.BatchV1Api(kube_api_client).read_namespaced_job(name, NAMESPACE).spec.suspend
        is False
    )
    assert cluster.step_jobs("own", "b") == [], "a suspended flow starts no new step"
    cluster.patch_flow("own", {"spec": {"suspend": False}})
    cluster.wait_phase("own", "Succeeded", timeout=20)


def kueue_webhook(review: dict[str, Any]) -> dict[str, Any]:
    """What Kueue's Job webhook does on CREATE: a Job with a queue-name label starts suspended."""
    patch = [{"op": "add", "path": "/spec/suspend", "value": True}]
    return {
        "uid": review["request"]["uid"],
        "allowed": True,
        "patchType": "JSONPatch",
        "patch": base64.b64encode(json.dumps(patch).encode()).decode(),
    }


def test_a_kueue_webhook_holds_each_step_and_a_started_flow_waits_mid_dag(
    cluster,
    start_controller,
    kube_api_client,
    start_hook,  # noqa: F811 (the fixture imported above)
    pki,  # noqa: F811
) -> None:
    hook = start_hook(kueue_webhook)
    selector = {"matchExpressions": [{"key": "kueue.x-k8s.io/queue-name", "operator": "Exists"}]}
    register(
        kube_api_client,
        "MutatingWebhookConfiguration",
        {
            **admission_webhook("jobs.kueue.test", {"url": hook.url, "caBundle": ca_bundle(pki)}),
            "rules": [
                {
                    "operations": ["CREATE"],
                    "apiGroups": ["batch"],
                    "apiVersions": ["v1"],
                    "resources": ["jobs"],
                    "scope": "Namespaced",
                }
            ],
            "objectSelector": selector,
        },
        name="kueue-like",
    )
    start_controller()
    steps = [job_step("prepare", duration=0.2), job_step("train", "prepare", duration=0.2)]
    cluster.create_flow(flow("mid", steps, queueName="team", policy={"pendingTimeoutSeconds": 60}))

    def admit(step: str) -> str:
        """Act as Kueue's controller once the step waits: inject the flavor, unsuspend."""
        eventually(lambda: cluster.step("mid", step).get("phase") == "Queued", 10)
        name = job_named(cluster, "mid", step, 0)["metadata"]["name"]
        injected = {"spec": {"template": {"spec": {"nodeSelector": {"pool": "a"}}}}}
        patch_job(kube_api_client, name, injected)
        patch_job(kube_api_client, name, {"spec": {"suspend": False}})
        return name

    admit("prepare")
    # The flow started, its first step is done, and the next one waits for quota.
    eventually(lambda: cluster.step("mid", "train").get("phase") == "Queued", 10)
    assert cluster.step("mid", "prepare")["phase"] == "Succeeded"
    assert cluster.phase("mid") == "Queued"
    queued = next(c for c in cluster.status("mid")["conditions"] if c["type"] == "Queued")
    assert queued["status"] == "True" and "train: Job mid-train-0-" in queued["message"]
    name = admit("train")
    cluster.wait_phase("mid", "Succeeded", timeout=20)
    assert len(hook.reviews) == 2, "each step's Job went through the webhook once"
    job = client.BatchV1Api(kube_api_client).read_namespaced_job(name, NAMESPACE)
    assert job.spec.template.spec.node_selector == {"pool": "a"}
