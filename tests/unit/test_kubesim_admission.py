"""Pure parts of kubesim's admission: webhook rule matching (operations, groups, versions,
resources with ``*`` and subresources, scope, matchPolicy Equivalent), object selectors,
AdmissionReview building, reply checking, denial and failure errors, RFC 6902 JSON Patch."""

from __future__ import annotations

import base64
import json

import pytest

from kubesim import admission
from kubesim.admission import Attributes, JSONPatchError, Match, WebhookCallError
from kubesim.resources import GVR

JOBS = GVR("batch", "v1", "jobs")
FLOWS_V1 = GVR("workflow.kube-zen.io", "v1", "jobflows")
FLOWS_V1A1 = GVR("workflow.kube-zen.io", "v1alpha1", "jobflows")


def rule(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "operations": ["CREATE"],
        "apiGroups": ["batch"],
        "apiVersions": ["v1"],
        "resources": ["jobs"],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize(
    ("r", "operation", "gvr", "sub", "namespaced", "expected"),
    [
        (rule(), "CREATE", JOBS, "", True, True),
        (rule(), "UPDATE", JOBS, "", True, False),
        (rule(operations=["*"]), "DELETE", JOBS, "", True, True),
        (rule(apiGroups=["apps"]), "CREATE", JOBS, "", True, False),
        (rule(apiGroups=["*"]), "CREATE", JOBS, "", True, True),
        (rule(apiVersions=["v2"]), "CREATE", JOBS, "", True, False),
        (rule(resources=["*"]), "CREATE", JOBS, "", True, True),
        (rule(resources=["*"]), "CREATE", JOBS, "status", True, False),
        (rule(resources=["jobs"]), "CREATE", JOBS, "status", True, False),
        (rule(resources=["jobs/status"]), "CREATE", JOBS, "status", True, True),
        (rule(resources=["jobs/status"]), "CREATE", JOBS, "", True, False),
        (rule(resources=["jobs/*"]), "CREATE", JOBS, "status", True, True),
        (rule(resources=["jobs/*"]), "CREATE", JOBS, "", True, False),
        (rule(resources=["*/status"]), "CREATE", JOBS, "status", True, True),
        (rule(resources=["*/*"]), "CREATE", JOBS, "", True, True),
        (rule(resources=["*/*"]), "CREATE", JOBS, "status", True, True),
        (rule(resources=["pods"]), "CREATE", JOBS, "", True, False),
        (rule(scope="Namespaced"), "CREATE", JOBS, "", True, True),
        (rule(scope="Namespaced"), "CREATE", JOBS, "", False, False),
        (rule(scope="Cluster"), "CREATE", JOBS, "", False, True),
        (rule(scope="Cluster"), "CREATE", JOBS, "", True, False),
        (rule(scope="*"), "CREATE", JOBS, "", False, True),
        (rule(operations=[]), "CREATE", JOBS, "", True, False),
    ],
)
def test_rule_matching(
    r: dict[str, object], operation: str, gvr: GVR, sub: str, namespaced: bool, expected: bool
) -> None:
    got = admission.rule_matches(
        r, operation=operation, gvr=gvr, subresource=sub, namespaced=namespaced
    )
    assert got is expected


def flow_webhook(policy: str | None) -> dict[str, object]:
    hook: dict[str, object] = {
        "name": "v.example.com",
        "rules": [
            rule(apiGroups=["workflow.kube-zen.io"], apiVersions=["v1"], resources=["jobflows"])
        ],
    }
    if policy:
        hook["matchPolicy"] = policy
    return hook


def test_equivalent_match_reports_the_rule_version() -> None:
    got = admission.match_webhook(
        flow_webhook(None),
        operation="CREATE",
        gvr=FLOWS_V1A1,
        subresource="",
        namespaced=True,
        equivalents=[FLOWS_V1A1, FLOWS_V1],
    )
    assert got == FLOWS_V1


def test_exact_policy_ignores_equivalents() -> None:
    got = admission.match_webhook(
        flow_webhook("Exact"),
        operation="CREATE",
        gvr=FLOWS_V1A1,
        subresource="",
        namespaced=True,
        equivalents=[FLOWS_V1],
    )
    assert got is None


def test_exact_match_wins_over_equivalent() -> None:
    hook = flow_webhook(None)
    hook["rules"] = [
        *hook["rules"],
        rule(
            apiGroups=["*"],
            apiVersions=["*"],  # type: ignore[misc]
            resources=["jobflows"],
        ),
    ]
    got = admission.match_webhook(
        hook,
        operation="CREATE",
        gvr=FLOWS_V1A1,
        subresource="",
        namespaced=True,
        equivalents=[FLOWS_V1],
    )
    assert got == FLOWS_V1A1


def attrs(**kw: object) -> Attributes:
    base: dict[str, object] = {
        "operation": "CREATE",
        "gvr": JOBS,
        "kind": {"group": "batch", "version": "v1", "kind": "Job"},
        "namespace": "default",
        "name": "j1",
        "obj": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "j1", "labels": {"team": "a"}},
        },
        "old_obj": None,
        "subresource": "",
        "dry_run": False,
        "user": {"username": "kubesim-admin", "groups": ["system:masters"]},
    }
    base.update(kw)
    return Attributes(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "old_labels", "expected"),
    [
        (None, None, True),
        ({"matchLabels": {"team": "a"}}, None, True),
        ({"matchLabels": {"team": "b"}}, None, False),
        ({"matchLabels": {"team": "b"}}, {"team": "b"}, True),  # the old object matches
        (
            {"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "c"]}]},
            None,
            True,
        ),
        ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, None, False),
    ],
)
def test_object_selector(
    selector: dict[str, object] | None, old_labels: dict[str, str] | None, expected: bool
) -> None:
    old = None if old_labels is None else {"metadata": {"labels": old_labels}}
    hook = {"objectSelector": selector} if selector is not None else {}
    assert admission.object_selector_matches(hook, attrs(old_obj=old)) is expected


def test_review_request_fields() -> None:
    match = Match(
        "cfg", {"name": "v.example.com"}, JOBS, {"group": "batch", "version": "v1", "kind": "Job"}
    )
    review = admission.build_review(attrs(dry_run=True), match, uid="u-1")
    assert review["apiVersion"] == "admission.k8s.io/v1"
    assert review["kind"] == "AdmissionReview"
    req = review["request"]
    assert req["uid"] == "u-1"
    assert req["kind"] == {"group": "batch", "version": "v1", "kind": "Job"}
    assert req["resource"] == {"group": "batch", "version": "v1", "resource": "jobs"}
    assert req["requestResource"] == req["resource"]
    assert req["requestKind"] == req["kind"]
    assert (req["name"], req["namespace"], req["operation"]) == ("j1", "default", "CREATE")
    assert req["userInfo"]["username"] == "kubesim-admin"
    assert req["object"]["metadata"]["name"] == "j1"
    assert req["oldObject"] is None
    assert req["dryRun"] is True
    assert req["options"] == {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
    assert "subResource" not in req


def test_review_under_equivalent_match_converts_the_object_version() -> None:
    a = attrs(
        gvr=FLOWS_V1A1,
        kind={"group": "workflow.kube-zen.io", "version": "v1alpha1", "kind": "JobFlow"},
        obj={
            "apiVersion": "workflow.kube-zen.io/v1alpha1",
            "kind": "JobFlow",
            "metadata": {"name": "f"},
        },
        operation="UPDATE",
        old_obj={"apiVersion": "workflow.kube-zen.io/v1alpha1"},
        subresource="status",
    )
    match = Match(
        "cfg", {}, FLOWS_V1, {"group": "workflow.kube-zen.io", "version": "v1", "kind": "JobFlow"}
    )
    req = admission.build_review(a, match, uid="u")["request"]
    assert req["resource"]["version"] == "v1"
    assert req["requestResource"]["version"] == "v1alpha1"
    assert req["object"]["apiVersion"] == "workflow.kube-zen.io/v1"
    assert req["oldObject"]["apiVersion"] == "workflow.kube-zen.io/v1"
    assert req["subResource"] == req["requestSubResource"] == "status"
    assert req["options"]["kind"] == "UpdateOptions"


def test_delete_review_has_no_object() -> None:
    old = {"metadata": {"name": "j1"}}
    match = Match("cfg", {}, JOBS, {"group": "batch", "version": "v1", "kind": "Job"})
    req = admission.build_review(attrs(operation="DELETE", obj=None, old_obj=old), match, uid="u")[
        "request"
    ]
    assert req["object"] is None
    assert req["oldObject"] == old
    assert req["options"]["kind"] == "DeleteOptions"


def reply(**response: object) -> dict[str, object]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "u", "allowed": True, **response},
    }


@pytest.mark.parametrize(
    ("review", "mutating", "message"),
    [
        ([], True, "not a JSON object"),
        ({"apiVersion": "v1", "kind": "Status"}, True, "expected webhook response of"),
        (
            {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"},
            True,
            "webhook response was absent",
        ),
        (reply(uid="other"), True, 'expected response.uid="u", got "other"'),
        (reply(allowed="yes"), True, "boolean response.allowed"),
        (reply(patch="W10="), False, "validating webhook may not return response.patch"),
        (reply(patch="W10="), True, "response.patch but not response.patchType"),
        (reply(patchType="JSONPatch"), True, "response.patchType but not response.patch"),
    ],
)
def test_invalid_replies(review: object, mutating: bool, message: str) -> None:
    with pytest.raises(WebhookCallError, match=message.replace("(", r"\(")):
        admission.check_response(review, uid="u", mutating=mutating)


def test_valid_reply_is_returned() -> None:
    patch = base64.b64encode(b"[]").decode()
    got = admission.check_response(
        reply(patch=patch, patchType="JSONPatch"), uid="u", mutating=True
    )
    assert got["allowed"] is True


@pytest.mark.parametrize(
    ("status", "code", "reason", "message"),
    [
        ({"code": 403, "reason": "Forbidden", "message": "no"}, 403, "Forbidden", ": no"),
        ({"message": "no"}, 403, "Forbidden", ": no"),
        ({"code": 422, "reason": "Invalid", "message": "bad"}, 422, "Invalid", ": bad"),
        ({"code": 200, "message": "odd"}, 400, "", ": odd"),
        ({"reason": "NotAllowed"}, 403, "NotAllowed", ": NotAllowed"),
        ({}, 403, "Forbidden", " without explanation"),
    ],
)
def test_denial_error(status: dict[str, object], code: int, reason: str, message: str) -> None:
    err = admission.denial_error("v.example.com", {"allowed": False, "status": status})
    assert err.code == code
    assert err.reason == reason
    assert err.message == f'admission webhook "v.example.com" denied the request{message}'


def test_denial_passes_details_through() -> None:
    details = {"causes": [{"field": "spec.steps", "message": "empty"}]}
    err = admission.denial_error("w", {"status": {"message": "m", "details": details}})
    assert err.status()["details"] == details


def test_call_failure_is_internal_error() -> None:
    err = admission.call_failure("w.example.com", "failed to call webhook: boom")
    assert err.code == 500
    assert err.reason == "InternalError"
    assert err.message == (
        'Internal error occurred: failed calling webhook "w.example.com": '
        "failed to call webhook: boom"
    )


DOC = {"a": {"b": [1, 2, 3], "c~d": 1, "e/f": 2}, "x": "y"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        (
            [{"op": "add", "path": "/a/b/1", "value": 9}],
            {"a": {"b": [1, 9, 2, 3], "c~d": 1, "e/f": 2}, "x": "y"},
        ),
        (
            [{"op": "add", "path": "/a/b/-", "value": 4}],
            {"a": {"b": [1, 2, 3, 4], "c~d": 1, "e/f": 2}, "x": "y"},
        ),
        ([{"op": "add", "path": "/n", "value": {"k": 1}}], {**DOC, "n": {"k": 1}}),
        ([{"op": "remove", "path": "/a/c~0d"}], {"a": {"b": [1, 2, 3], "e/f": 2}, "x": "y"}),
        (
            [{"op": "replace", "path": "/a/e~1f", "value": 3}],
            {"a": {"b": [1, 2, 3], "c~d": 1, "e/f": 3}, "x": "y"},
        ),
        ([{"op": "move", "from": "/x", "path": "/z"}], {"a": DOC["a"], "z": "y"}),
        ([{"op": "copy", "from": "/a/b/0", "path": "/z"}], {**DOC, "z": 1}),
        ([{"op": "test", "path": "/x", "value": "y"}], DOC),
        ([{"op": "replace", "path": "", "value": [1]}], [1]),
    ],
)
def test_json_patch(ops: list[dict[str, object]], expected: object) -> None:
    before = json.dumps(DOC, sort_keys=True)
    assert admission.apply_json_patch(DOC, ops) == expected
    assert json.dumps(DOC, sort_keys=True) == before  # the input is not modified


@pytest.mark.parametrize(
    "ops",
    [
        {"op": "add"},
        [{"op": "add", "path": "/missing/x", "value": 1}],
        [{"op": "remove", "path": "/nope"}],
        [{"op": "replace", "path": "/a/b/7", "value": 1}],
        [{"op": "add", "path": "/a/b/01", "value": 1}],
        [{"op": "test", "path": "/x", "value": "other"}],
        [{"op": "move", "from": "/a", "path": "/a/b/x"}],
        [{"op": "frobnicate", "path": "/x"}],
        [{"op": "add", "path": "x", "value": 1}],
        [{"op": "add", "path": "/x"}],
    ],
)
def test_json_patch_errors(ops: object) -> None:
    with pytest.raises(JSONPatchError):
        admission.apply_json_patch(DOC, ops)


def test_decode_patch() -> None:
    ops = [{"op": "add", "path": "/x", "value": 1}]
    encoded = base64.b64encode(json.dumps(ops).encode()).decode()
    assert admission.decode_patch({"patch": encoded}) == ops
    with pytest.raises(JSONPatchError):
        admission.decode_patch({"patch": "not base64!"})
    with pytest.raises(JSONPatchError):
        admission.decode_patch({"patch": base64.b64encode(b'{"op": 1}').decode()})
