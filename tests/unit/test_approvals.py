"""Approvals with identity (jobflow.approvals, the Manual kind's policy path, validation).

Covers:
- the planner, as tables over a simulated world: a quorum of distinct users (the same user
  twice counts once), an allowed rejection (rejectedBy), inputs becoming output parameters that
  a later step's inputs and `when` read, the timeout (onTimeout Reject / Approve, reason
  ApprovalTimeout, from the stored start of the wait, so a later pass or a restarted
  controller decides the same), a wake-up at the deadline, records from before a retry not
  counted, a request annotation that no webhook recorded not counted, the creator not counted
  with allowCreator false; plain Manual steps still decided by the annotation;
- the mutating webhook's record: the writer's own record, creator and forged entries replaced
  by the stored ones, one entry per user and decision (earlier inputs kept), the request
  consumed for a policy step and kept for a plain one, nothing recorded without a user;
- the validating webhook's decisions: a user outside approvers, a group member, the creator
  with allowCreator false, unknown / missing / out-of-enum inputs, a finished step;
- static validation of the policy (codes and paths).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest

from jobflow import approvals, names, phases, validation
from jobflow.planning import Plan
from tests.unit.planning_world import T0, World, flow, step, ts

GATE = "gate"
FINISHED = frozenset(phases.TERMINAL_STEP_PHASES)


def policy_flow(**approval: object) -> Callable[[], dict[str, object]]:
    def build() -> dict[str, object]:
        body = flow(
            step(GATE, type="Manual", approval=approval),
            step(
                "deploy",
                GATE,
                when="steps['gate'].outputs.parameters['version'] != 'skip'",
                inputs={
                    "parameters": [
                        {
                            "name": "version",
                            "valueFrom": {"stepOutputRef": {"step": GATE, "parameter": "version"}},
                        }
                    ]
                },
            ),
        )
        body["metadata"]["annotations"] = {approvals.CREATED_BY_ANNOTATION: "carol"}  # type: ignore[index]
        return body

    return build


QUORUM = {
    "approvers": {"users": ["alice", "bob", "carol"]},
    "required": 2,
    "inputs": [{"name": "version"}, {"name": "note", "default": "none"}],
}


def record(world: World, *entries: tuple[str, str, float, dict[str, str]]) -> None:
    """Record decisions as the webhook would: (user, decision, seconds after T0, inputs)."""
    body = [
        approvals.Entry(user, decision, ts(T0 + timedelta(seconds=at)), inputs).to_json()
        for user, decision, at, inputs in entries
    ]
    world.annotate(approvals.record_annotation(GATE), json.dumps(body))


def gate(world: World) -> dict[str, object]:
    return world.step_status(GATE)


def users(entry: dict[str, object]) -> list[str]:
    return [a["user"] for a in entry.get("approvedBy", [])]  # type: ignore[index, union-attr]


def reasons(result: Plan) -> list[str]:
    return [e.reason for e in result.events]


# -- rows: (flow, prepare the world, check after one more pass) --------------------------------
def one_approval(world: World) -> None:
    world.reconcile()
    world.advance(5)
    record(world, ("alice", "Approve", 5, {"version": "2.0"}))


def check_one_of_two(result: Plan, world: World) -> None:
    assert gate(world)["phase"] == "PendingApproval"
    assert users(gate(world)) == ["alice"]
    assert "1 of 2 approvals (alice)" in str(gate(world)["message"])
    assert reasons(result) == ["ApprovalRecorded"]
    assert world.phase == "Paused"


def same_user_twice(world: World) -> None:
    world.reconcile()
    world.advance(5)
    # Two entries of one user (as an old record might hold): one approval.
    record(
        world,
        ("alice", "Approve", 2, {"version": "1.0"}),
        ("alice", "Approve", 5, {"version": "2.0"}),
    )


def check_same_user_once(result: Plan, world: World) -> None:
    assert gate(world)["phase"] == "PendingApproval"
    assert users(gate(world)) == ["alice"]


def two_users(world: World) -> None:
    one_approval(world)
    world.reconcile()
    world.advance(5)
    record(
        world,
        ("alice", "Approve", 5, {"version": "2.0"}),
        ("bob", "Approve", 10, {}),
    )


def check_approved_with_inputs(result: Plan, world: World) -> None:
    entry = gate(world)
    assert (entry["phase"], entry["reason"]) == ("Succeeded", "Approved")
    assert users(entry) == ["alice", "bob"]
    assert entry["outputs"] == {"parameters": {"version": "2.0", "note": "none"}}
    assert reasons(result)[:2] == ["ApprovalRecorded", "StepApproved"]
    deploy = world.jobs_of("deploy")
    assert len(deploy) == 1
    env = deploy[0]["spec"]["template"]["spec"]["containers"][0]["env"]  # type: ignore[index]
    assert {"name": "VERSION", "value": "2.0"} in env


def check_when_reads_input(result: Plan, world: World) -> None:
    assert gate(world)["phase"] == "Succeeded"
    assert world.step_status("deploy")["phase"] == "Skipped"


def skip_input(world: World) -> None:
    world.reconcile()
    record(world, ("alice", "Approve", 1, {"version": "skip"}), ("bob", "Approve", 2, {}))


def rejection(world: World) -> None:
    one_approval(world)
    world.reconcile()
    record(
        world,
        ("alice", "Approve", 5, {"version": "2.0"}),
        ("bob", "Reject", 6, {}),
    )


def check_rejected(result: Plan, world: World) -> None:
    entry = gate(world)
    assert (entry["phase"], entry["reason"]) == ("Failed", "Rejected")
    assert entry["rejectedBy"] == {"user": "bob", "time": ts(T0.replace(second=6))}
    assert world.step_status("deploy")["phase"] == "Skipped"
    assert world.phase == "Failed"


def timeout_reject_flow() -> dict[str, object]:
    return policy_flow(**QUORUM, timeoutSeconds=60)()


def timeout_approve_flow() -> dict[str, object]:
    return policy_flow(
        approvers={"groups": ["ops"]},
        timeoutSeconds=60,
        onTimeout="Approve",
        inputs=[{"name": "version", "default": "1.0"}],
    )()


def waiting(world: World) -> None:
    world.reconcile()
    world.advance(30)


def check_wakes_at_deadline(result: Plan, world: World) -> None:
    assert gate(world)["phase"] == "PendingApproval"
    assert result.requeue_after is not None and abs(result.requeue_after - 30) < 1


def past_deadline(world: World) -> None:
    one_approval(world)
    world.reconcile()
    world.advance(120)  # a controller that was down: the deadline is from the stored start


def check_timeout_rejects(result: Plan, world: World) -> None:
    entry = gate(world)
    assert (entry["phase"], entry["reason"]) == ("Failed", phases.APPROVAL_TIMEOUT)
    assert entry["completionTime"] == ts(T0.replace(minute=1))  # start + 60 s, not "now"
    assert "1 of 2 approvals (alice)" in str(entry["message"])
    assert world.phase == "Failed"
    assert "StepApprovalTimedOut" in reasons(result)


def past_deadline_alone(world: World) -> None:
    world.reconcile()
    world.advance(61)


def check_timeout_approves(result: Plan, world: World) -> None:
    entry = gate(world)
    assert (entry["phase"], entry["reason"]) == ("Succeeded", phases.APPROVAL_TIMEOUT)
    assert entry["outputs"] == {"parameters": {"version": "1.0"}}
    assert world.step_status("deploy")["phase"] == "Running"


def unrecorded_request(world: World) -> None:
    world.reconcile()
    # The plain annotation without the webhook's record: nobody can be credited with it.
    world.annotate(names.approve_annotation(GATE), "true")


def check_still_waiting(result: Plan, world: World) -> None:
    assert gate(world)["phase"] == "PendingApproval"
    assert "approvedBy" not in gate(world)


def creator_flow() -> dict[str, object]:
    return policy_flow(
        approvers={"users": ["carol", "alice"]},
        allowCreator=False,
        inputs=[{"name": "version", "default": "1"}],
    )()


def creator_approves(world: World) -> None:
    world.reconcile()
    record(world, ("carol", "Approve", 1, {}))  # carol created the flow


def retried_before(world: World) -> None:
    world.reconcile()
    record(world, ("alice", "Approve", 1, {"version": "1"}), ("bob", "Approve", 2, {}))
    # a retry began a new run after these decisions: they were for the earlier run
    world.flow["status"]["history"] = [
        {"type": "Retry", "id": "r1", "time": ts(T0.replace(second=3))}
    ]  # type: ignore[index]


@dataclass(frozen=True)
class Row:
    id: str
    build: Callable[[], dict[str, object]]
    prepare: Callable[[World], None]
    check: Callable[[Plan, World], None]


ROWS = [
    Row("one-of-two", policy_flow(**QUORUM), one_approval, check_one_of_two),
    Row(
        "same-user-twice-counts-once", policy_flow(**QUORUM), same_user_twice, check_same_user_once
    ),
    Row(
        "quorum-inputs-reach-next-step",
        policy_flow(**QUORUM),
        two_users,
        check_approved_with_inputs,
    ),
    Row("when-reads-approval-input", policy_flow(**QUORUM), skip_input, check_when_reads_input),
    Row("allowed-rejection", policy_flow(**QUORUM), rejection, check_rejected),
    Row("timeout-wakeup", timeout_reject_flow, waiting, check_wakes_at_deadline),
    Row("timeout-rejects", timeout_reject_flow, past_deadline, check_timeout_rejects),
    Row("timeout-approves", timeout_approve_flow, past_deadline_alone, check_timeout_approves),
    Row(
        "unrecorded-request-ignored", policy_flow(**QUORUM), unrecorded_request, check_still_waiting
    ),
    Row("creator-not-counted", creator_flow, creator_approves, check_still_waiting),
    Row("records-before-retry-ignored", policy_flow(**QUORUM), retried_before, check_still_waiting),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_planner(row: Row) -> None:
    world = World(row.build())
    row.prepare(world)
    result = world.reconcile()  # also asserts that a second pass changes nothing
    row.check(result, world)


def test_plain_manual_step_still_decided_by_the_annotation_and_shows_who() -> None:
    world = World(flow(step(GATE, type="Manual")))
    world.reconcile()
    world.annotate(names.approve_annotation(GATE), "true")
    world.annotate(
        approvals.record_annotation(GATE),
        json.dumps([{"user": "dave", "decision": "Approve", "time": ts(T0)}]),
    )
    result = world.reconcile()
    assert gate(world)["phase"] == "Succeeded"
    assert users(gate(world)) == ["dave"]
    assert "approved by dave" in result.events[0].message


# -- the mutating webhook's record -------------------------------------------------------------
def obj(annotations: dict[str, str], **approval: object) -> dict[str, object]:
    spec = {"name": GATE, "type": "Manual"}
    if approval:
        spec["approval"] = approval  # type: ignore[assignment]
    return {"metadata": {"name": "f", "annotations": annotations}, "spec": {"steps": [spec]}}


REQ = names.approve_annotation(GATE)
REC = approvals.record_annotation(GATE)


def stored(
    old: dict[str, object] | None, new: dict[str, object], user: str = "alice"
) -> dict[str, str]:
    return approvals.recorded_annotations(old, new, username=user, now=ts(T0))


def test_record_is_stamped_with_the_requesting_user_and_the_request_consumed() -> None:
    old = obj({}, required=1)
    request = json.dumps({"decision": "Approve", "inputs": {"v": "1"}})
    after = stored(old, obj({REQ: request, "x": "y"}, required=1))
    assert REQ not in after and after["x"] == "y"
    assert json.loads(after[REC]) == [
        {"user": "alice", "decision": "Approve", "time": ts(T0), "inputs": {"v": "1"}}
    ]


def test_the_writers_own_record_and_creator_are_replaced_by_the_stored_ones() -> None:
    mine = json.dumps([{"user": "bob", "decision": "Approve", "time": ts(T0)}])
    old = obj({REC: mine, approvals.CREATED_BY_ANNOTATION: "carol"}, required=1)
    forged = json.dumps([{"user": "boss", "decision": "Approve", "time": ts(T0)}])
    new = obj({REC: forged, approvals.CREATED_BY_ANNOTATION: "alice"}, required=1)
    assert stored(old, new) == {REC: mine, approvals.CREATED_BY_ANNOTATION: "carol"}
    # removing them does not work either
    assert stored(old, obj({}, required=1)) == {REC: mine, approvals.CREATED_BY_ANNOTATION: "carol"}
    # at CREATE the creator is the requesting user, whatever the manifest said
    created = stored(None, obj({approvals.CREATED_BY_ANNOTATION: "boss", REC: forged}, required=1))
    assert created == {approvals.CREATED_BY_ANNOTATION: "alice"}
    patch = approvals.record_patch(old, new, username="alice", now=ts(T0))
    assert patch == [{"op": "add", "path": "/metadata/annotations", "value": stored(old, new)}]


def test_one_entry_per_user_and_decision_keeping_earlier_inputs() -> None:
    old = obj({}, required=2)
    first = stored(
        old, obj({REQ: json.dumps({"decision": "Approve", "inputs": {"a": "1"}})}, required=2)
    )
    again = stored(obj(first, required=2), obj({**first, REQ: "true"}, required=2))
    entries = approvals.read_records(again, GATE)
    assert [(e.user, dict(e.inputs)) for e in entries] == [("alice", {"a": "1"})]


def test_plain_step_keeps_its_annotation_and_records_only_a_change() -> None:
    after = stored(obj({}), obj({REQ: "true"}))
    assert after[REQ] == "true" and approvals.read_records(after, GATE)[0].user == "alice"
    # an unrelated edit by someone else later is not a decision
    assert stored(obj(after), obj({**after, "x": "1"}), user="bob") == {**after, "x": "1"}


def test_nothing_is_recorded_without_a_user() -> None:
    after = stored(obj({}, required=1), obj({REQ: "true"}, required=1), user="")
    assert after == {REQ: "true"}
    # and such an unrecorded request is dropped by the next write, never credited to its writer
    assert stored(obj(after, required=1), obj(after, required=1), user="bob") == {}


# -- the validating webhook's decisions ---------------------------------------------------------
def decide(
    user: str,
    groups: tuple[str, ...] = (),
    *,
    value: str = "true",
    creator: str = "carol",
    status: str | None = None,
    **approval: object,
) -> list[str]:
    old = obj({approvals.CREATED_BY_ANNOTATION: creator}, **approval)
    if status:
        old["status"] = {"steps": [{"name": GATE, "phase": status}]}
    new = obj({approvals.CREATED_BY_ANNOTATION: creator, REQ: value}, **approval)
    new["metadata"]["annotations"] = stored(old, new, user)  # type: ignore[index]
    found = approvals.decision_problems(
        old, new, username=user, groups=groups, finished_phases=FINISHED
    )
    return [r.message for r in found]


def test_a_user_outside_approvers_is_refused_naming_the_step_and_who_may() -> None:
    (message,) = decide("bob", approvers={"users": ["alice"], "groups": ["ops"]})
    assert message == (
        "user 'bob' may not approve step 'gate': its approvers are users alice or groups ops"
    )
    assert decide("bob", ("ops",), approvers={"users": ["alice"], "groups": ["ops"]}) == []
    assert decide("alice", approvers={"users": ["alice"]}) == []
    (rejecting,) = decide("bob", value="false", approvers={"users": ["alice"]})
    assert rejecting.startswith("user 'bob' may not reject step 'gate'")


def test_the_creator_may_not_approve_with_allow_creator_false_but_may_reject() -> None:
    (message,) = decide("carol", allowCreator=False)
    assert "created this flow and may not approve step 'gate'" in message
    assert decide("carol", value="false", allowCreator=False) == []
    assert decide("carol", required=1) == []


def test_inputs_are_checked_against_the_declared_ones() -> None:
    declared = {"inputs": [{"name": "version", "enum": ["1", "2"]}, {"name": "n", "default": "x"}]}
    value = json.dumps({"decision": "Approve", "inputs": {"colour": "red"}})
    problems = decide("alice", value=value, **declared)
    assert "step 'gate' has no input 'colour' (its inputs: version, n)" in problems
    assert any("needs input 'version'" in p for p in problems)
    value = json.dumps({"decision": "Approve", "inputs": {"version": "3"}})
    assert decide("alice", value=value, **declared) == [
        "step 'gate': input 'version' must be one of 1, 2; got '3'"
    ]
    value = json.dumps({"decision": "Approve", "inputs": {"version": "2"}})
    assert decide("alice", value=value, **declared) == []


def test_a_malformed_request_and_a_finished_step_are_refused() -> None:
    (message,) = decide("alice", value="yes please", required=1)
    assert "is not a decision" in message
    (message,) = decide("alice", status="Succeeded", required=1)
    assert message == "step 'gate' already finished (Succeeded); nothing to decide"


# -- static validation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step_fields", "code", "path"),
    [
        ({"approval": {"required": 1}}, "approval-not-manual", "spec.steps[0].approval"),
        (
            {"type": "Manual", "approval": {"approvers": {"users": ["a"]}, "required": 2}},
            "approval-unreachable",
            "spec.steps[0].approval.required",
        ),
        (
            {"type": "Manual", "approval": {"required": 0}},
            "invalid-approval-required",
            "spec.steps[0].approval.required",
        ),
        (
            {"type": "Manual", "approval": {"timeoutSeconds": 0}},
            "invalid-approval-timeout",
            "spec.steps[0].approval.timeoutSeconds",
        ),
        (
            {"type": "Manual", "approval": {"onTimeout": "Approve"}},
            "approval-on-timeout-without-timeout",
            "spec.steps[0].approval.onTimeout",
        ),
        (
            {
                "type": "Manual",
                "approval": {
                    "timeoutSeconds": 5,
                    "onTimeout": "Approve",
                    "inputs": [{"name": "v"}],
                },
            },
            "approval-input-needs-default",
            "spec.steps[0].approval.inputs[0].default",
        ),
        (
            {
                "type": "Manual",
                "approval": {"inputs": [{"name": "v", "default": "c", "enum": ["a"]}]},
            },
            "approval-input-default-not-in-enum",
            "spec.steps[0].approval.inputs[0].default",
        ),
        (
            {"type": "Manual", "approval": {"inputs": [{"name": "v"}, {"name": "v"}]}},
            "duplicate-approval-input-name",
            "spec.steps[0].approval.inputs[1].name",
        ),
        (
            {"type": "Manual", "approval": {"onTimeout": "Maybe", "timeoutSeconds": 5}},
            "invalid-value",
            "spec.steps[0].approval.onTimeout",
        ),
    ],
)
def test_policy_validation(step_fields: dict[str, object], code: str, path: str) -> None:
    body = flow(step("a", **step_fields))
    found = [(p.code, p.path) for p in validation.validate(body)]
    assert (code, path) in found, found


def test_outputs_of_an_approval_are_declared_for_references() -> None:
    body = policy_flow(**QUORUM)()
    assert validation.validate(body) == []
    body["spec"]["steps"][1]["inputs"]["parameters"][0]["valueFrom"]["stepOutputRef"][
        "parameter"
    ] = "nope"  # type: ignore[index]
    codes = [p.code for p in validation.validate(body)]
    assert codes and all("output" in c or "parameter" in c for c in codes), codes


def test_may_record_is_false_only_where_the_record_patch_is_empty() -> None:
    # The mutating webhook skips the clock and the annotations walk when may_record is False.
    job = {"name": "j", "template": {}}
    cases: list[tuple[dict[str, object] | None, dict[str, object]]] = [
        (None, {"metadata": {"annotations": {"x": "1"}}, "spec": {"steps": [job]}}),
        (None, {"metadata": {}, "spec": {"steps": [job, "not a step"]}}),
        (None, {"spec": {"steps": "not a list"}}),
        (obj({}), obj({REQ: "true"})),
        (None, obj({}, required=1)),
        (None, {"metadata": {"annotations": {REC: "[]"}}, "spec": {"steps": [job]}}),
        (
            {"metadata": {"annotations": {approvals.CREATED_BY_ANNOTATION: "carol"}}},
            {"metadata": {"annotations": {}}, "spec": {"steps": [job]}},
        ),
        ({"metadata": {"annotations": {REQ: "true"}}}, {"metadata": {"annotations": {}}}),
    ]
    for old, new in cases:
        patch = approvals.record_patch(old, new, username="alice", now=ts(T0))
        if not approvals.may_record(old, new):
            assert patch == [], (old, new)
    assert not approvals.may_record(*cases[0])
    assert approvals.may_record(*cases[3]) and approvals.may_record(*cases[6])
    assert approvals.record_patch(*cases[6], username="alice", now=ts(T0)) != []
