"""Pure parts of the controller runtime: the token bucket (burst, then the QPS rate), the mapping
of HTTP answers onto our error classes, resource paths, the RBAC table's shape, choosing the exit
code of a failed pod, Job-finished detection, the index functions, and the flows-by-phase
collector (recounted at scrape time on an injected registry)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from controller import kube
from controller.metrics import ControllerMetrics
from controller.reconciler import (
    flow_concurrency_index,
    job_finished,
    job_flow_index,
    owner_flow_key,
)
from jobflow.pods import pick_pod_details


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_token_bucket_allows_burst_then_paces_at_qps() -> None:
    t = FakeTime()
    bucket = kube.TokenBucket(10, 5, clock=t.clock, sleep=t.sleep)
    waits = [bucket.acquire() for _ in range(8)]
    assert waits[:5] == [0, 0, 0, 0, 0]
    assert waits[5:] == pytest.approx([0.1, 0.1, 0.1])
    assert t.now == pytest.approx(0.3)


def test_token_bucket_refills_while_idle_up_to_burst() -> None:
    t = FakeTime()
    bucket = kube.TokenBucket(10, 3, clock=t.clock, sleep=t.sleep)
    for _ in range(3):
        bucket.acquire()
    t.now += 100
    assert [bucket.acquire() for _ in range(3)] == [0, 0, 0]
    assert bucket.acquire() == pytest.approx(0.1)


def test_token_bucket_disabled_with_zero_qps() -> None:
    t = FakeTime()
    bucket = kube.TokenBucket(0, 1, clock=t.clock, sleep=t.sleep)
    assert all(bucket.acquire() == 0 for _ in range(100))


@pytest.mark.parametrize(
    ("code", "body", "cls"),
    [
        (404, b'{"reason":"NotFound","message":"jobs \\"x\\" not found"}', kube.NotFound),
        (409, b'{"reason":"AlreadyExists","message":"exists"}', kube.AlreadyExists),
        (409, b'{"reason":"Conflict","message":"stale"}', kube.Conflict),
        (410, b'{"reason":"Expired"}', kube.Gone),
        (422, b'{"reason":"Invalid"}', kube.Invalid),
        (400, b"not json", kube.Invalid),
        (403, b"{}", kube.Forbidden),
        (429, b"{}", kube.Transient),
        (500, None, kube.Transient),
        (503, b"", kube.Transient),
    ],
)
def test_http_errors_map_to_our_classes(code: int, body: bytes | None, cls: type) -> None:
    err = kube._error_for(code, body, "fallback")
    assert type(err) is cls
    assert err.code == code
    assert err.retryable == (cls in (kube.Conflict, kube.Transient))


def test_error_message_comes_from_status_body() -> None:
    err = kube._error_for(404, b'{"message":"jobs \\"x\\" not found"}', "fallback")
    assert str(err) == 'jobs "x" not found'


@pytest.mark.parametrize(
    ("code", "header", "body", "expected"),
    [
        (429, "3", None, 3.0),  # kube-apiserver's max-in-flight answer
        (429, None, b'{"reason":"TooManyRequests","details":{"retryAfterSeconds":2}}', 2.0),
        (503, "1", b'{"details":{"retryAfterSeconds":9}}', 1.0),  # the header wins
        (429, "Wed, 21 Oct 2026 07:28:00 GMT", None, None),  # a date: our own backoff decides
        (429, "-1", None, None),
        (429, "100000", None, kube.RETRY_AFTER_MAX),  # capped
        (500, None, b"not json", None),
        (409, "5", b'{"reason":"Conflict"}', None),  # only a "retry later" error carries it
    ],
)
def test_retry_after_is_read_from_header_or_status_details(
    code: int, header: str | None, body: bytes | None, expected: float | None
) -> None:
    err = kube._error_for(code, body, "fallback", retry_after_header=header)
    assert err.retry_after == expected


@pytest.mark.parametrize(
    ("res", "args", "path"),
    [
        (
            kube.JOBFLOWS,
            ("ns", None, None),
            "/apis/workflow.kube-zen.io/v1alpha1/namespaces/ns/jobflows",
        ),
        (
            kube.JOBFLOWS,
            ("ns", "f", "status"),
            "/apis/workflow.kube-zen.io/v1alpha1/namespaces/ns/jobflows/f/status",
        ),
        (kube.JOBS, (None, None, None), "/apis/batch/v1/jobs"),
        (kube.PODS, ("ns", "p", None), "/api/v1/namespaces/ns/pods/p"),
    ],
)
def test_resource_paths(res: kube.Resource, args: tuple, path: str) -> None:
    assert res.path(*args) == path


def test_required_permissions_cover_every_resource_we_touch() -> None:
    table = {(g, r): set(v) for g, r, v in kube.REQUIRED_PERMISSIONS}
    assert {"list", "watch"} <= table[("workflow.kube-zen.io", "jobflows")]
    assert "update" in table[("workflow.kube-zen.io", "jobflows/status")]
    assert {"create", "delete", "list", "watch"} <= table[("batch", "jobs")]
    assert "create" in table[("", "events")]
    assert {"get", "create", "update"} <= table[("coordination.k8s.io", "leases")]
    assert ("", "secrets") not in table


def _pod(phase: str, created: str, containers: list[tuple[str, int, str | None]]) -> dict:
    return {
        "metadata": {"creationTimestamp": created},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {"name": n, "state": {"terminated": {"exitCode": c, "message": m}}}
                for n, c, m in containers
            ],
        },
    }


def test_pick_pod_details_prefers_latest_failed_pod_and_named_container() -> None:
    pods = [
        _pod("Failed", "2026-01-01T00:00:00Z", [("main", 1, "old")]),
        _pod("Failed", "2026-01-01T00:01:00Z", [("side", 0, None), ("main", 42, "boom")]),
        _pod("Running", "2026-01-01T00:02:00Z", []),
    ]
    details = pick_pod_details(pods, container="main")
    assert (details.exit_code, details.termination_message) == (42, "boom")


def test_pick_pod_details_falls_back_to_a_nonzero_container() -> None:
    pods = [_pod("Failed", "t", [("side", 0, None), ("work", 3, None)])]
    assert pick_pod_details(pods, container="main").exit_code == 3


def test_pick_pod_details_reads_a_failed_init_container() -> None:
    # what the kubelet shows when an init container fails: the app container never started
    pod = _pod("Failed", "t", [])
    pod["status"]["containerStatuses"] = [
        {"name": "main", "state": {"waiting": {"reason": "PodInitializing"}}}
    ]
    pod["status"]["initContainerStatuses"] = [
        {"name": "zen-fetch-0", "state": {"terminated": {"exitCode": 0}}},
        {"name": "zen-fetch-1", "state": {"terminated": {"exitCode": 22, "message": "404"}}},
    ]
    details = pick_pod_details([pod], container="main")
    assert (details.exit_code, details.termination_message) == (22, "404")
    assert details.init_container == "zen-fetch-1"
    ran = _pod("Failed", "t", [("main", 1, None)])
    ran["status"]["initContainerStatuses"] = pod["status"]["initContainerStatuses"]
    assert pick_pod_details([ran], container="main").init_container is None  # main's own code


def test_pick_pod_details_without_finished_pods() -> None:
    details = pick_pod_details([_pod("Running", "t", [])], container="main")
    assert details.exit_code is None


def test_job_finished_reads_conditions_not_counters() -> None:
    assert not job_finished({"status": {"failed": 1}})
    assert job_finished({"status": {"conditions": [{"type": "Failed", "status": "True"}]}})
    assert job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
    assert not job_finished({"status": {"conditions": [{"type": "Complete", "status": "False"}]}})
    assert not job_finished(None)


def test_index_functions() -> None:
    job = {
        "metadata": {
            "namespace": "ns",
            "labels": {"workflow.kube-zen.io/flow": "f"},
            "ownerReferences": [{"kind": "JobFlow", "name": "f", "uid": "u", "controller": True}],
        }
    }
    assert job_flow_index(job) == ["ns/f"]
    assert owner_flow_key(job) == "ns/f"
    assert owner_flow_key({"metadata": {"namespace": "ns"}}) is None
    flow = {"metadata": {"namespace": "ns"}, "spec": {"executionPolicy": {"concurrencyKey": "k"}}}
    assert flow_concurrency_index(flow) == ["ns/k"]
    assert flow_concurrency_index({"metadata": {"namespace": "ns"}, "spec": {}}) == []


def test_flow_phase_gauge_is_recounted_at_scrape() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    flows = [{"status": {"phase": "Running"}}, {"status": {}}, {"status": {"phase": "Running"}}]
    metrics.track_flows(lambda: flows)

    def value(phase: str) -> float | None:
        return registry.get_sample_value("zenflow_flows", {"phase": phase})

    assert value("Running") == 2
    assert value("Pending") == 1
    flows[0] = {"status": {"phase": "Succeeded"}}
    assert value("Running") == 1
    assert value("Succeeded") == 1
    metrics.observe_request("create", "201")
    assert (
        registry.get_sample_value("zenflow_api_requests_total", {"verb": "create", "code": "201"})
        == 1
    )


def test_two_metric_sets_on_separate_registries_do_not_collide() -> None:
    ControllerMetrics(CollectorRegistry())
    ControllerMetrics(CollectorRegistry())


def test_event_recorder_gathers_one_event_per_flow_type_and_reason() -> None:
    from controller.events import EventRecorder

    now = [0.0]
    written: list[tuple[str, dict]] = []
    recorder = EventRecorder(
        write=lambda ns, body: written.append((ns, body)), window=0.5, clock=lambda: now[0]
    )
    flow = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "f", "namespace": "ns", "uid": "u"},
    }
    other = {**flow, "metadata": {"name": "g", "namespace": "ns", "uid": "v"}}
    recorder.record(flow, type_="Normal", reason="StepSucceeded", message="step a succeeded")
    recorder.record(flow, type_="Normal", reason="StepStarted", message="step b started")
    now[0] = 0.3
    recorder.record(flow, type_="Normal", reason="StepSucceeded", message="step c succeeded")
    recorder.record(other, type_="Normal", reason="StepSucceeded", message="step x succeeded")
    assert recorder.write_due() == 0, "nothing is due before its window closes"
    now[0] = 0.6
    assert recorder.write_due() == 2
    bodies = {(b["involvedObject"]["name"], b["reason"]): b for _, b in written}
    assert bodies[("f", "StepSucceeded")]["message"] == "step a succeeded; step c succeeded"
    assert bodies[("f", "StepStarted")]["message"] == "step b started"
    assert all(ns == "ns" and b["involvedObject"]["uid"] == "u" for ns, b in written)
    assert recorder.write_due(flush=True) == 1  # the other flow's group, flushed on stop
    assert written[-1][1]["involvedObject"]["name"] == "g"
    assert recorder.written == 3


def test_event_messages_are_capped() -> None:
    from controller.events import MAX_MESSAGE, join_messages

    assert len(join_messages(["x" * 600, "y" * 600])) == MAX_MESSAGE


def test_credential_refresh_hook_runs_at_most_once_a_minute() -> None:
    """The kubeconfig loader's hook re-installs itself on every call; ours must stay in front."""
    from types import SimpleNamespace

    calls: list[int] = []

    def loader_hook(conf: SimpleNamespace) -> None:
        calls.append(1)
        conf.refresh_api_key_hook = loader_hook  # what kubernetes.config does

    conf = SimpleNamespace(refresh_api_key_hook=loader_hook)
    kube._throttle_refresh_hook(conf)  # type: ignore[arg-type]
    for _ in range(100):
        conf.refresh_api_key_hook(conf)
    assert len(calls) == 1
    assert conf.refresh_api_key_hook is not loader_hook
