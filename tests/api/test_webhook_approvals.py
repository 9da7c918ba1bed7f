"""The webhook on approval decisions, through httpx (AdmissionReview v1 in, as the API server
sends it; the whole chain with kubesim and kubectl is tests/e2e/test_approvals_kubectl.py).

Covers: /mutate turns the request annotation into a record entry stamped with request.userInfo
and /validate (given the mutated object, as the API server does) allows it for an approver and
refuses it for anyone else with 403 Forbidden naming the step and who may approve; a group
member is allowed; a forged record is put back by /mutate; the creator is stamped at CREATE
of a flow with an approval policy; hostile record and request values (deep nesting, junk)
never cause a 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from jobflow import approvals, names
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

REQ = names.approve_annotation("gate")
REC = approvals.record_annotation("gate")


@pytest.fixture
def client() -> AppClient:
    return app_client()


def flow(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    body = jobflow(
        steps=[
            step(
                "gate",
                type="Manual",
                template=None,
                approval={"approvers": {"users": ["alice"], "groups": ["ops"]}, "required": 2},
            ),
        ]
    )
    del body["spec"]["steps"][0]["template"]
    body["metadata"]["annotations"] = dict(annotations or {})
    body["status"] = {"phase": "Paused", "startTime": "2026-01-01T00:00:00Z"}
    return body


def write(
    client: AppClient, old: dict[str, Any], new: dict[str, Any], user: str, groups: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The API server's order: mutate, apply the patch, validate the result."""
    body = review(new, operation="UPDATE", old=old)
    body["request"]["userInfo"] = {"username": user, "groups": groups}
    mutated = post(client, "/mutate", body)
    assert mutated["allowed"] is True
    stored = apply_patch(new, decode_patch(mutated)) if "patch" in mutated else new
    body["request"]["object"] = stored
    return stored, post(client, "/validate", body)


def test_an_approver_is_recorded_and_anyone_else_refused(client: AppClient) -> None:
    old = flow()
    stored, verdict = write(client, old, flow({REQ: "true"}), "alice", [])
    assert verdict["allowed"] is True
    annotations = stored["metadata"]["annotations"]
    assert REQ not in annotations
    (entry,) = json.loads(annotations[REC])
    assert (entry["user"], entry["decision"]) == ("alice", "Approve")

    _stored, verdict = write(client, old, flow({REQ: "true"}), "bob", ["system:authenticated"])
    assert verdict["allowed"] is False
    assert verdict["status"]["code"] == 403
    assert verdict["status"]["message"] == (
        "JobFlow \"demo\": user 'bob' may not approve step 'gate': its approvers are users"
        " alice or groups ops"
    )
    cause = verdict["status"]["details"]["causes"][0]
    assert cause["field"] == f"metadata.annotations[{REQ}]"

    _stored, verdict = write(client, old, flow({REQ: "true"}), "dana", ["ops"])
    assert verdict["allowed"] is True


def test_a_forged_record_is_put_back(client: AppClient) -> None:
    real = json.dumps([{"user": "alice", "decision": "Approve", "time": "2026-01-01T00:00:01Z"}])
    forged = json.dumps([{"user": "boss", "decision": "Approve", "time": "2026-01-01T00:00:01Z"}])
    stored, verdict = write(client, flow({REC: real}), flow({REC: forged}), "bob", [])
    assert verdict["allowed"] is True  # nothing was decided: an ordinary edit
    assert stored["metadata"]["annotations"][REC] == real


def test_the_creator_is_stamped_at_create(client: AppClient) -> None:
    new = flow({approvals.CREATED_BY_ANNOTATION: "boss"})
    body = review(new)
    body["request"]["userInfo"] = {"username": "carol"}
    stored = apply_patch(new, decode_patch(post(client, "/mutate", body)))
    assert stored["metadata"]["annotations"][approvals.CREATED_BY_ANNOTATION] == "carol"


@pytest.mark.parametrize(
    "annotations",
    [
        {REC: "[" * 50_000},
        {REQ: "{" * 50_000},
        {REC: json.dumps([{"user": 1}, "x", None, {"decision": "Approve"}])},
        {REQ: json.dumps({"decision": "Approve", "inputs": {"a": 1}})},
        {REQ: json.dumps({"decision": "Approve", "inputs": ["a"]})},
    ],
)
def test_hostile_values_never_cause_a_5xx(client: AppClient, annotations: dict[str, str]) -> None:
    _stored, verdict = write(client, flow(), flow(annotations), "alice", [])
    assert "allowed" in verdict  # answered (allowed or a denial), never a 5xx
