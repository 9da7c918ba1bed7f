"""Property-based fuzzing (hypothesis) of /validate and /mutate bodies.

Covers: for any body (random bytes, random JSON, AdmissionReviews whose request and object are
partly or wholly random, flows built from plausible fields with random values) the webhook
never answers 5xx; it answers 400 exactly when the envelope is not an AdmissionReview v1 with a
string uid; otherwise it answers a well-formed AdmissionReview that echoes the uid, whose
denials carry a code and a message, whose patches are base64 JSONPatch that apply cleanly, and
no review fails internally (status.code 500 would mean a bug in the jobflow library or here).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from app import main
from tests.fixtures.webhook import AppClient, apply_patch, job_template

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
names = st.sampled_from(["a", "b", "c", "Bad_Name", "", "x" * 70, "d-1", "\udc80"])
# Lone surrogates are legal JSON escapes but not encodable as UTF-8: they must be echoed safely.
uids = st.text(min_size=1, max_size=40) | st.sampled_from(["\udc80", "a\ud800b"])


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes any JSON at all in its place."""
    return st.one_of(strategy, strategy, strategy, json_value)


steps = st.lists(
    st.fixed_dictionaries(
        {"name": maybe(names)},
        optional={
            "type": maybe(st.sampled_from(["Job", "Manual", "job"])),
            "dependencies": maybe(st.lists(maybe(names), max_size=3)),
            "template": maybe(st.just(job_template())),
            "retryPolicy": maybe(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "limit": maybe(st.integers(-2, 10)),
                        "backoff": maybe(
                            st.fixed_dictionaries(
                                {},
                                optional={
                                    "type": maybe(
                                        st.sampled_from(["Fixed", "Linear", "Exponential"])
                                    ),
                                    "duration": maybe(st.sampled_from(["1s", "5m", "bogus", ""])),
                                    "factor": maybe(st.floats(-1, 5)),
                                },
                            )
                        ),
                    },
                )
            ),
            "timeoutSeconds": maybe(st.integers(-5, 10**8)),
            "when": maybe(
                st.sampled_from(
                    ["always", "never", "steps['a'].phase == 'Succeeded'", "steps[", "{{ x }}"]
                )
            ),
            "continueOnFailure": maybe(st.booleans()),
        },
    ),
    max_size=5,
)
flows = st.fixed_dictionaries(
    {
        "apiVersion": maybe(st.just("workflow.kube-zen.io/v1alpha1")),
        "kind": maybe(st.just("JobFlow")),
        "metadata": maybe(st.fixed_dictionaries({"name": maybe(names)})),
        "spec": maybe(
            st.fixed_dictionaries(
                {"steps": maybe(steps)},
                optional={
                    "executionPolicy": maybe(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "concurrencyPolicy": maybe(
                                    st.sampled_from(["Allow", "Forbid", "Replace"])
                                ),
                                "ttlSecondsAfterFinished": maybe(st.integers(-1, 10**6)),
                                "backoffLimit": maybe(st.integers(-1, 10)),
                            },
                        )
                    ),
                    "suspend": maybe(st.booleans()),
                },
            )
        ),
    },
    optional={
        "status": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "phase": maybe(st.sampled_from(["Pending", "Running", "Succeeded"])),
                    "startTime": maybe(st.just("2026-01-01T00:00:00Z")),
                },
            )
        )
    },
)
jobflow_kind = {"group": "workflow.kube-zen.io", "version": "v1alpha1", "kind": "JobFlow"}
requests = st.fixed_dictionaries(
    {
        "uid": uids,
        "kind": st.sampled_from([jobflow_kind, jobflow_kind, jobflow_kind, {"kind": "Pod"}]),
        "operation": st.sampled_from(["CREATE", "UPDATE", "UPDATE", "DELETE"]),
        "object": maybe(flows),
    },
    optional={
        "subResource": st.sampled_from(["", "", "status"]),
        "name": names,
        "namespace": st.just("default"),
        "oldObject": maybe(flows),
        "dryRun": st.booleans(),
        "userInfo": st.just({"username": "fuzz"}),
        "unknownField": json_value,
    },
)
# Envelopes whose known request fields have the wrong type: 400, never 5xx.
broken_requests = st.fixed_dictionaries(
    {"uid": maybe(uids)},
    optional={k: json_value for k in ("kind", "operation", "name", "dryRun", "userInfo")},
)
reviews = st.fixed_dictionaries(
    {
        "apiVersion": st.just("admission.k8s.io/v1"),
        "kind": st.just("AdmissionReview"),
        "request": st.one_of(requests, requests, requests, broken_requests),
    }
)
review_bodies = reviews.map(lambda r: json.dumps(r).encode())
bodies = st.one_of(
    review_bodies,
    review_bodies,
    review_bodies,
    review_bodies,
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


def is_review(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and data.get("apiVersion") == "admission.k8s.io/v1"
        and data.get("kind") == "AdmissionReview"
        and isinstance(data.get("request"), dict)
        and isinstance(data["request"].get("uid"), str)
        and bool(data["request"]["uid"])
    )


@pytest.fixture
def client() -> AppClient:
    """One fresh app per test function, shared by its examples (building one per example
    would dominate the run; the app keeps no state between requests besides metrics)."""
    return AppClient(main.create_app(registry=CollectorRegistry()))


# The fixture is deliberately shared by all examples of a test.
_SHARED_FIXTURE = HealthCheck.function_scoped_fixture


def check_answer(path: str, body: bytes, status_code: int, payload: dict[str, Any]) -> None:
    assert status_code < 500
    if not is_review(body):
        # Some envelopes look right but carry a request field of the wrong type
        # (dryRun: "x"): those are 400 too, never a 5xx or a made-up answer.
        assert status_code == 400, payload
        assert payload["kind"] == "Status"
        return
    if status_code == 400:
        assert payload["kind"] == "Status"
        return
    assert status_code == 200
    request = json.loads(body)["request"]
    assert payload["apiVersion"] == "admission.k8s.io/v1"
    assert payload["kind"] == "AdmissionReview"
    response = payload["response"]
    assert response["uid"] == request["uid"]
    assert isinstance(response["allowed"], bool)
    if not response["allowed"]:
        assert isinstance(response["status"]["message"], str)
        assert response["status"]["message"]
        assert response["status"]["code"] != 500, response["status"]["message"]
    if "patch" in response:
        assert path == "/mutate"
        assert response["patchType"] == "JSONPatch"
        ops = json.loads(base64.b64decode(response["patch"]))
        assert isinstance(ops, list)
        apply_patch(request["object"], ops)
    else:
        assert "patchType" not in response


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # big reprs
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, _SHARED_FIXTURE]
)
@given(body=bodies, path=st.sampled_from(["/validate", "/mutate"]))
def test_any_body_gets_a_well_formed_answer(client: AppClient, body: bytes, path: str) -> None:
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    check_answer(path, body, answer.status_code, answer.json())


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # big reprs
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, _SHARED_FIXTURE]
)
@given(request=requests.filter(_encodable), path=st.sampled_from(["/validate", "/mutate"]))
def test_well_formed_reviews_are_always_answered(
    client: AppClient, request: dict[str, Any], path: str
) -> None:
    body = json.dumps(
        {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    ).encode()
    answer = client.post(path, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200, answer.text
    check_answer(path, body, answer.status_code, answer.json())
