"""The webhook app through httpx (a fresh create_app per test, no network).

Covers: allowed CREATE (uid echoed, no patch from /validate); denials listing every problem with
field paths in status.message and status.details.causes (code 422), incl. the cycle path;
warnings for risky but valid specs; /mutate returns exactly the stored defaults (those outside
steps[]: the patched flow, defaulted in memory, is jobflow.defaults.apply_defaults of the input)
and nothing for a defaulted flow; 400 (not JSON, not an
AdmissionReview, no uid, v1beta1), 413 (Content-Length and streamed body), 415; UPDATE rules
(started flows keep their steps; suspend, approvals and metadata stay editable; not-started
flows may change; old problems are not held against an update); non-JobFlow/DELETE/status
requests pass; a non-object `object` is a denial, not an error; a flow above the inline limit
is reviewed in a worker thread; admission metrics on the injected registry; /healthz, /readyz.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from app import main
from jobflow import defaults
from tests.fixtures.webhook import (
    AppClient,
    app_client,
    apply_patch,
    jobflow,
    review,
    step,
)
from tests.fixtures.webhook import review_answer as post
from webhook.review import decode_patch

LIMIT = 64 * 1024


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(registry: CollectorRegistry) -> AppClient:
    return app_client(registry, max_request_bytes=LIMIT)


def started(obj: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {**obj, "status": {"phase": phase, "startTime": "2026-01-01T00:00:00Z"}}


# -- validate ---------------------------------------------------------------------------------
def test_valid_flow_is_allowed(client: AppClient) -> None:
    response = post(client, "/validate", review(jobflow(), uid="abc-123"))
    assert response == {"uid": "abc-123", "allowed": True}


def test_cycle_is_denied_with_its_path(client: AppClient) -> None:
    flow = jobflow(steps=[step("a", "c"), step("b", "a"), step("c", "b")])
    response = post(client, "/validate", review(flow))
    assert response["allowed"] is False
    status = response["status"]
    assert status["code"] == 422
    assert status["reason"] == "Forbidden"  # so kubectl shows who denied it (handlers.py)
    assert status["message"].startswith('JobFlow "demo" is invalid: ')
    assert "a -> c -> b -> a" in status["message"]
    causes = status["details"]["causes"]
    assert [c["reason"] for c in causes] == ["dependency-cycle"]
    assert causes[0]["field"].startswith("spec.steps[")
    assert "patch" not in response


def test_every_problem_is_listed_with_its_field(client: AppClient) -> None:
    bad_template = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": []}}},
    }
    flow = jobflow(steps=[step("Bad_Name"), step("b", "missing"), step("c", template=bad_template)])
    response = post(client, "/validate", review(flow))
    status = response["status"]
    fields = {c["field"] for c in status["details"]["causes"]}
    assert "spec.steps[0].name" in fields
    assert "spec.steps[1].dependencies[0]" in fields
    assert any(f.startswith("spec.steps[2].template") for f in fields)
    assert len(status["details"]["causes"]) >= 3
    assert f"{len(status['details']['causes'])} problems" in status["message"]
    for cause in status["details"]["causes"]:
        assert cause["field"] in status["message"]


def test_risky_specs_get_warnings_but_pass(client: AppClient) -> None:
    from tests.fixtures.webhook import job_template

    flow = jobflow(
        steps=[
            {"name": "a", "template": job_template("busybox"), "timeoutSeconds": 60},
            {
                "name": "b",
                "template": job_template("busybox:1.36", backoffLimit=4),
                "retryPolicy": {"limit": 2},
                "dependencies": ["a"],
            },
        ],
        executionPolicy={"ttlSecondsAfterFinished": 0},
    )
    response = post(client, "/validate", review(flow))
    assert response["allowed"] is True
    text = "\n".join(response["warnings"])
    assert "containers[0].image 'busybox' has no tag" in text
    assert "spec.steps[0].timeoutSeconds is set without a retryPolicy" in text
    assert "spec.steps[1].template.spec.backoffLimit 4 multiplies the retryPolicy" in text
    assert "ttlSecondsAfterFinished is 0" in text


def test_non_object_is_a_denial_not_an_error(client: AppClient) -> None:
    response = post(client, "/validate", review("not a flow"))
    assert response["allowed"] is False
    assert response["status"]["details"]["causes"][0]["reason"] == "not-an-object"


@pytest.mark.parametrize(
    ("kwargs", "obj"),
    [
        ({"kind": "ConfigMap"}, {"data": {}}),
        ({"operation": "DELETE"}, None),
        ({"operation": "UPDATE", "sub_resource": "status"}, {"spec": "garbage"}),
    ],
)
def test_requests_not_for_jobflow_writes_pass(
    client: AppClient, kwargs: dict[str, Any], obj: Any
) -> None:
    for path in ("/validate", "/mutate"):
        response = post(client, path, review(obj, **kwargs))
        assert response["allowed"] is True
        assert "patch" not in response


# -- mutate -----------------------------------------------------------------------------------
def test_mutate_returns_exactly_the_defaults(client: AppClient) -> None:
    flow = jobflow(
        steps=[
            step("a", retryPolicy={"backoff": {"type": "Exponential", "duration": "5s"}}),
            step("b", "a", type="Job"),
        ]
    )
    response = post(client, "/mutate", review(flow))
    assert response["allowed"] is True
    assert response["patchType"] == "JSONPatch"
    patched = apply_patch(flow, decode_patch(response))
    assert patched["spec"]["executionPolicy"] == {
        "concurrencyPolicy": "Forbid",
        "ttlSecondsAfterFinished": 86400,
        "backoffLimit": 6,
    }
    # Steps are stored as written (a default inside a list is drift for `kubectl apply`); the
    # controller fills them in memory, to the same result.
    assert patched["spec"]["steps"] == flow["spec"]["steps"]
    assert defaults.apply_defaults(patched) == defaults.apply_defaults(flow)


def test_mutate_keeps_explicit_values_and_sends_nothing_when_defaulted(client: AppClient) -> None:
    flow = defaults.apply_defaults(jobflow(steps=[step("a", retryPolicy={"limit": 0})]))
    response = post(client, "/mutate", review(flow))
    assert response == {"uid": response["uid"], "allowed": True}
    assert flow["spec"]["steps"][0]["retryPolicy"]["limit"] == 0


def test_mutate_does_not_validate(client: AppClient) -> None:
    flow = jobflow(steps=[step("a", "a")])  # a self-cycle: /validate's business
    response = post(client, "/mutate", review(flow))
    assert response["allowed"] is True
    assert apply_patch(flow, decode_patch(response)) == {
        **flow,
        "spec": {
            **flow["spec"],
            "executionPolicy": defaults.apply_defaults(flow)["spec"]["executionPolicy"],
        },
    }


# -- UPDATE rules -----------------------------------------------------------------------------
def test_started_flow_keeps_its_steps(client: AppClient) -> None:
    old = started(defaults.apply_defaults(jobflow()))
    new = json.loads(json.dumps(old))
    new["spec"]["steps"].append(step("c", "b"))
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is False
    cause = response["status"]["details"]["causes"][0]
    assert (cause["reason"], cause["field"]) == ("steps-immutable", "spec.steps")
    assert (
        "steps cannot change once the flow has started (phase Running)"
        in (response["status"]["message"])
    )


def test_started_flow_keeps_its_finally_steps(client: AppClient) -> None:
    # a finally step has not run yet while the flow runs; changing it then would change what
    # the flow does after its start all the same
    flow = jobflow()
    flow["spec"]["finally"] = [step("cleanup")]
    old = started(defaults.apply_defaults(flow))
    new = json.loads(json.dumps(old))
    new["spec"]["finally"][0]["template"]["spec"]["backoffLimit"] = 3
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is False
    causes = response["status"]["details"]["causes"]
    assert [(c["reason"], c["field"]) for c in causes] == [("steps-immutable", "spec.finally")]
    assert (
        "finally steps cannot change once the flow has started (phase Running)"
        in (response["status"]["message"])
    )
    del new["spec"]["finally"]
    new["spec"]["steps"].pop()
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    causes = response["status"]["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.steps", "spec.finally"]


def test_started_flow_accepts_suspend_approvals_and_metadata(client: AppClient) -> None:
    old = started(defaults.apply_defaults(jobflow()), phase="Paused")
    new = json.loads(json.dumps(old))
    new["spec"]["suspend"] = True
    new["metadata"]["annotations"] = {"approve.workflow.kube-zen.io/b": "true"}
    new["metadata"]["labels"] = {"team": "data"}
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is True


def test_started_means_start_time_or_a_phase_past_pending(client: AppClient) -> None:
    old = defaults.apply_defaults(jobflow())
    old["status"] = {"startTime": "2026-01-01T00:00:00Z"}  # no phase yet, but started
    new = json.loads(json.dumps(old))
    new["spec"]["steps"][1]["dependencies"] = []
    assert post(client, "/validate", review(new, operation="UPDATE", old=old))["allowed"] is False


def test_undefaulted_old_object_is_not_a_change(client: AppClient) -> None:
    old = started(jobflow())  # stored while the mutating webhook was down
    new = started(defaults.apply_defaults(jobflow()))
    assert post(client, "/validate", review(new, operation="UPDATE", old=old))["allowed"] is True


def test_pending_flow_may_change_its_steps(client: AppClient) -> None:
    old = {**jobflow(), "status": {"phase": "Pending"}}
    new = jobflow(steps=[step("a"), step("b", "a"), step("c", "b")])
    assert post(client, "/validate", review(new, operation="UPDATE", old=old))["allowed"] is True


def test_old_problems_do_not_block_metadata_edits(client: AppClient) -> None:
    old = jobflow(steps=[step("a", "b"), step("b", "a")])  # admitted while the webhook was down
    new = json.loads(json.dumps(old))
    new["metadata"]["finalizers"] = []
    assert post(client, "/validate", review(new, operation="UPDATE", old=old))["allowed"] is True
    new["spec"]["steps"].append(step("Bad_Name"))
    response = post(client, "/validate", review(new, operation="UPDATE", old=old))
    assert response["allowed"] is False
    # the fix of an invalid stored flow: no problem to filter (the old one is not validated)
    fixed = jobflow()
    assert post(client, "/validate", review(fixed, operation="UPDATE", old=old))["allowed"] is True
    assert [c["field"] for c in response["status"]["details"]["causes"]] == ["spec.steps[2].name"]


# -- refused bodies ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}',
        b'{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",'
        b' "request": {"uid": "x"}}',
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 7}}',
        b"\xff\xfe",
        b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",'
        b' "request": {"uid": "x", "object": {"spec": {"steps": [{"name": "\\udc80"}]}}}}',
    ],
)
@pytest.mark.parametrize("path", ["/validate", "/mutate"])
def test_not_an_admission_review_is_400(client: AppClient, path: str, body: bytes) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    status = answer.json()
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 400, "BadRequest")


def test_oversized_body_is_413_by_content_length(client: AppClient) -> None:
    body = json.dumps(review(jobflow(), uid="big") | {"padding": "x" * LIMIT}).encode()
    answer = client.post("/validate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["reason"] == "RequestEntityTooLarge"


def test_oversized_streamed_body_is_413(client: AppClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b'{"apiVersion": "admission.k8s.io/v1", "padding": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    answer = client.post("/mutate", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_body_at_the_limit_is_reviewed(client: AppClient) -> None:
    body = review(jobflow(), uid="fits")
    raw = json.dumps(body)
    body["padding"] = "x" * (LIMIT - len(raw) - len(', "padding": ""'))
    encoded = json.dumps(body).encode()
    assert len(encoded) == LIMIT
    answer = client.post("/validate", content=encoded, headers={"content-type": "application/json"})
    assert answer.status_code == 200
    assert answer.json()["response"]["uid"] == "fits"


@pytest.mark.parametrize("content_type", ["text/plain", "application/yaml", None])
def test_wrong_content_type_is_415(client: AppClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    answer = client.post("/validate", content=json.dumps(review(jobflow())), headers=headers)
    assert answer.status_code == 415
    assert answer.json()["reason"] == "UnsupportedMediaType"


def test_json_with_charset_is_accepted(client: AppClient) -> None:
    answer = client.post(
        "/validate",
        content=json.dumps(review(jobflow())),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert answer.status_code == 200


# -- metrics and probes -------------------------------------------------------------------------
def test_admission_metrics_on_the_injected_registry(
    client: AppClient, registry: CollectorRegistry
) -> None:
    post(client, "/validate", review(jobflow()))
    post(client, "/validate", review(jobflow(steps=[step("a", "a")])))
    post(client, "/mutate", review(jobflow(), operation="UPDATE", old=jobflow()))
    client.post("/validate", content=b"x", headers={"content-type": "text/plain"})

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert (
        value(
            "zenflow_admission_reviews_total",
            webhook="validate",
            operation="CREATE",
            result="allowed",
        )
        == 1
    )
    assert (
        value(
            "zenflow_admission_reviews_total",
            webhook="validate",
            operation="CREATE",
            result="denied",
        )
        == 1
    )
    assert (
        value(
            "zenflow_admission_reviews_total",
            webhook="mutate",
            operation="UPDATE",
            result="allowed",
        )
        == 1
    )
    assert value("zenflow_admission_review_duration_seconds_count", webhook="validate") == 2
    assert value("zenflow_admission_rejected_requests_total", webhook="validate", code="415") == 1
    ops = AppClient(main.create_ops_app(registry=registry, readiness=main.Readiness()))
    text = ops.get("/metrics").text
    assert (
        'zenflow_admission_reviews_total{operation="CREATE",result="denied",webhook="validate"} 1.0'
        in text
    )
    assert "zenflow_webhook_http_requests_total" in text
    assert (
        value(
            "zenflow_webhook_http_requests_total",
            handler="/validate",
            method="POST",
            status="200",
        )
        == 2
    )
    assert (
        value(
            "zenflow_webhook_http_request_duration_seconds_count",
            handler="/validate",
            method="POST",
            status="200",
        )
        == 2
    )


def test_http_metrics_bound_their_labels() -> None:
    registry = CollectorRegistry()
    client = AppClient(main.create_app(registry=registry))
    client.request("BREW", "/validate")
    client.get("/nowhere")
    assert (
        registry.get_sample_value(
            "zenflow_webhook_http_requests_total",
            {"handler": "/validate", "method": "OTHER", "status": "405"},
        )
        == 1
    )
    assert (
        registry.get_sample_value(
            "zenflow_webhook_http_requests_total",
            {"handler": "none", "method": "GET", "status": "404"},
        )
        == 1
    )


def test_two_apps_in_one_process_do_not_collide() -> None:
    for _ in range(2):
        registry = CollectorRegistry()
        main.create_app(registry=registry)
        main.create_ops_app(registry=registry, readiness=main.Readiness())


def test_probes() -> None:
    ready = {"certificate": True, "controller": False}
    readiness = main.Readiness()
    for name in ready:
        readiness.add(name, lambda name=name: ready[name])
    ops = AppClient(main.create_ops_app(registry=CollectorRegistry(), readiness=readiness))
    assert ops.get("/healthz").status_code == 200
    answer = ops.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {"ready": False, "checks": {"certificate": True, "controller": False}}
    ready["controller"] = True
    assert ops.get("/readyz").status_code == 200


def test_large_flow_is_reviewed_off_the_event_loop() -> None:
    from tests.fixtures.webhook import chain

    client = AppClient(main.create_app(registry=CollectorRegistry()))  # default 3 MiB limit
    flow = chain(400)
    body = review(flow, uid="large")
    assert len(json.dumps(body)) > 64 * 1024  # above routes.INLINE_LIMIT: a worker thread
    assert post(client, "/validate", body)["allowed"] is True
    flow["spec"]["steps"][0]["dependencies"] = ["s399"]
    denied = post(client, "/validate", review(flow, uid="large-2"))
    assert denied["allowed"] is False
    assert "dependency-cycle" in {c["reason"] for c in denied["status"]["details"]["causes"]}
