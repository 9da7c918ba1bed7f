"""Approvals with identity, end to end: kubesim (three users, one kubeconfig context each, sending
request.userInfo to the webhooks as the API server does), our webhook over TLS and the
controller (app.embedded.Cluster), driven by the real `kubectl` and `zen-flow` processes.

Covers:
- a user outside `approvers` is denied at apply (`kubectl annotate` and `zen-flow approve`)
  with the webhook's message naming the step and who may approve; no traceback;
- an allowed user's approval is recorded with their name in status.steps[].approvedBy and in
  `kubectl describe` (the record annotation and the ApprovalRecorded Event);
- `required: 2` waits: the same user approving twice still leaves "1 of 2 approvals"; a record
  forged with `kubectl annotate --overwrite` is replaced by the stored one; a second distinct
  user completes the quorum;
- the approval's inputs (`-p version=2.0`) reach the next step's environment (its Job's env)
  and its `when`; an unknown input is refused at apply;
- the timeout: onTimeout Reject fails the step and the flow (reason ApprovalTimeout), onTimeout
  Approve succeeds with the inputs' defaults;
- `zen-flow reject` as an allowed user: rejectedBy, reason Rejected;
- allowCreator false: the creator's approval is refused;
- examples/approval-quorum.yaml as written; `zen-flow serve --embedded --token-auth-file F`
  (its users approve as themselves; an unreadable file is one line, exit 2).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import kubesim
from app import embedded
from tests.fixtures.embedded import ZEN_FLOW, cli_env
from tests.fixtures.kubesim import kubectl
from tests.waiting import eventually

USERS = (
    kubesim.User("alice"),
    kubesim.User("bob"),
    kubesim.User("carol", groups=("release-managers",)),
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.Cluster]:
    out = tmp_path_factory.mktemp("approvals") / "kubeconfig"
    with embedded.Cluster(users=USERS, kubeconfig_out=out) as running:
        yield running


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path


def as_user(
    cluster: Any, cache: Path, user: str | None, *args: str, stdin: str | None = None
) -> Any:
    context = ("--context", user) if user else ()
    return kubectl(cluster, *context, *args, cache_dir=cache, input=stdin)


def zen(cluster: Any, user: str, *args: str) -> Any:
    return subprocess.run(
        [ZEN_FLOW, *args, "--kubeconfig", str(cluster.kubeconfig), "--context", user],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env(),
        check=False,
    )


def manifest(name: str, approval: dict[str, Any], *, when: str | None = None) -> str:
    deploy: dict[str, Any] = {
        "name": "deploy",
        "dependencies": ["gate"],
        "template": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubesim.io/duration": "0.1"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}],
                    },
                }
            },
        },
    }
    names = [i["name"] for i in approval.get("inputs", [])]
    if "version" in names:
        deploy["inputs"] = {
            "parameters": [
                {
                    "name": "version",
                    "valueFrom": {"stepOutputRef": {"step": "gate", "parameter": "version"}},
                }
            ]
        }
    if when:
        deploy["when"] = when
    body = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": name},
        "spec": {"steps": [{"name": "gate", "type": "Manual", "approval": approval}, deploy]},
    }
    return yaml.safe_dump(body)


def apply(cluster: Any, cache: Path, text: str, user: str | None = None) -> None:
    done = as_user(cluster, cache, user, "apply", "-f", "-", stdin=text)
    assert done.returncode == 0, done.stderr


def get(cluster: Any, cache: Path, name: str) -> dict[str, Any]:
    done = as_user(cluster, cache, None, "get", "jobflow", name, "-o", "json")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def step_of(flow: dict[str, Any], step: str) -> dict[str, Any]:
    for entry in flow.get("status", {}).get("steps", []):
        if entry["name"] == step:
            return dict(entry)
    return {}


def wait_step(cluster: Any, cache: Path, name: str, check: Any, what: str) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        flow = get(cluster, cache, name)
        return flow if check(step_of(flow, "gate"), flow) else None

    return eventually(reached, 60, message=f"{name}: {what}")


def describe(cluster: Any, cache: Path, name: str, text: str) -> str:
    """`kubectl describe` once it shows ``text`` (Events are written after the status)."""

    def shown() -> str | None:
        out = str(as_user(cluster, cache, None, "describe", "jobflow", name).stdout)
        return out if text in out else None

    return str(eventually(shown, 30, message=f"describe {name} shows {text!r}"))


def approvers_of(entry: dict[str, Any]) -> list[str]:
    return [a["user"] for a in entry.get("approvedBy", [])]


QUORUM = {
    "approvers": {"users": ["alice"], "groups": ["release-managers"]},
    "required": 2,
    "inputs": [{"name": "version", "enum": ["1.0", "2.0"]}, {"name": "note", "default": "none"}],
}


def test_quorum_of_two_distinct_users_with_inputs(cluster: Any, cache: Path) -> None:
    apply(
        cluster,
        cache,
        manifest("ship", QUORUM, when="steps['gate'].outputs.parameters['version'] == '2.0'"),
    )
    wait_step(cluster, cache, "ship", lambda g, _f: g.get("phase") == "PendingApproval", "waits")

    # bob is not an approver: refused at apply, with the step and who may approve
    denied = as_user(
        cluster,
        cache,
        "bob",
        "annotate",
        "jobflow",
        "ship",
        "approve.workflow.kube-zen.io/gate=true",
    )
    assert denied.returncode == 1
    assert "user 'bob' may not approve step 'gate'" in denied.stderr
    assert "users alice or groups release-managers" in denied.stderr
    refused = zen(cluster, "bob", "approve", "ship", "gate", "-p", "version=2.0")
    assert refused.returncode == 2
    assert "user 'bob' may not approve step 'gate'" in refused.stderr
    assert "Traceback" not in refused.stderr

    # an unknown input is refused at apply
    unknown = zen(
        cluster, "alice", "approve", "ship", "gate", "-p", "colour=red", "-p", "version=2.0"
    )
    assert unknown.returncode == 2
    assert "step 'gate' has no input 'colour' (its inputs: version, note)" in unknown.stderr

    first = zen(cluster, "alice", "approve", "ship", "gate", "-p", "version=2.0")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == (
        "approved step gate of JobFlow default/ship as alice: 1 of 2 approvals (alice);"
        " 1 more needed (approvers: users alice or groups release-managers)"
    )
    # the same user again (here with kubectl): still one approval
    again = as_user(
        cluster,
        cache,
        "alice",
        "annotate",
        "jobflow",
        "ship",
        "approve.workflow.kube-zen.io/gate=true",
    )
    assert again.returncode == 0, again.stderr
    flow = wait_step(
        cluster, cache, "ship", lambda g, _f: approvers_of(g) == ["alice"], "alice recorded"
    )
    record = flow["metadata"]["annotations"]["approvals.workflow.kube-zen.io/gate"]
    # a forged record is replaced by the stored one
    forged = json.dumps([{"user": "carol", "decision": "Approve", "time": "2026-01-01T00:00:00Z"}])
    done = as_user(
        cluster,
        cache,
        "alice",
        "annotate",
        "--overwrite",
        "jobflow",
        "ship",
        f"approvals.workflow.kube-zen.io/gate={forged}",
    )
    assert done.returncode == 0, done.stderr
    flow = get(cluster, cache, "ship")
    assert flow["metadata"]["annotations"]["approvals.workflow.kube-zen.io/gate"] == record
    gate = step_of(flow, "gate")
    assert gate["phase"] == "PendingApproval" and approvers_of(gate) == ["alice"]
    assert "1 of 2 approvals (alice)" in gate["message"]

    described = describe(cluster, cache, "ship", "step gate approved by alice at")
    assert '"user":"alice"' in described  # the record annotation

    # carol, through her group, completes the quorum
    second = zen(cluster, "carol", "approve", "ship", "gate")
    assert second.returncode == 0, second.stderr
    assert "as carol: 2 of 2 approvals (alice, carol): the step is approved" in second.stdout
    flow = wait_step(
        cluster,
        cache,
        "ship",
        lambda _g, f: f.get("status", {}).get("phase") == "Succeeded",
        "done",
    )
    gate = step_of(flow, "gate")
    assert approvers_of(gate) == ["alice", "carol"]
    assert gate["outputs"]["parameters"] == {"version": "2.0", "note": "none"}
    assert step_of(flow, "deploy")["phase"] == "Succeeded"  # its `when` read the input
    jobs = as_user(
        cluster, cache, None, "get", "jobs", "-l", "workflow.kube-zen.io/flow=ship", "-o", "json"
    )
    (job,) = json.loads(jobs.stdout)["items"]
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "VERSION", "value": "2.0"} in env
    describe(cluster, cache, "ship", "step gate approved by alice, carol")
    describe(cluster, cache, "ship", "step gate approved by carol at")


def test_timeout_rejects_or_approves_with_reason_approval_timeout(
    cluster: Any, cache: Path
) -> None:
    apply(
        cluster,
        cache,
        manifest("late-no", {"approvers": {"users": ["alice"]}, "timeoutSeconds": 2}),
    )
    apply(
        cluster,
        cache,
        manifest(
            "late-yes",
            {
                "approvers": {"users": ["alice"]},
                "timeoutSeconds": 2,
                "onTimeout": "Approve",
                "inputs": [{"name": "version", "default": "1.0"}],
            },
        ),
    )
    no = wait_step(
        cluster,
        cache,
        "late-no",
        lambda _g, f: f.get("status", {}).get("phase") == "Failed",
        "failed",
    )
    gate = step_of(no, "gate")
    assert (gate["phase"], gate["reason"]) == ("Failed", "ApprovalTimeout")
    assert step_of(no, "deploy")["phase"] == "Skipped"
    yes = wait_step(
        cluster,
        cache,
        "late-yes",
        lambda _g, f: f.get("status", {}).get("phase") == "Succeeded",
        "done",
    )
    gate = step_of(yes, "gate")
    assert (gate["phase"], gate["reason"]) == ("Succeeded", "ApprovalTimeout")
    assert gate["outputs"]["parameters"] == {"version": "1.0"}
    describe(cluster, cache, "late-no", "StepApprovalTimedOut")


def test_reject_and_the_creator_rule(cluster: Any, cache: Path) -> None:
    policy = {"approvers": {"users": ["alice", "bob"]}, "allowCreator": False}
    apply(cluster, cache, manifest("own", policy), user="alice")  # alice creates it
    wait_step(cluster, cache, "own", lambda g, _f: g.get("phase") == "PendingApproval", "waits")
    mine = zen(cluster, "alice", "approve", "own", "gate")
    assert mine.returncode == 2
    assert "user 'alice' created this flow and may not approve step 'gate'" in mine.stderr
    rejected = zen(cluster, "bob", "reject", "own", "gate")
    assert rejected.returncode == 0, rejected.stderr
    assert (
        rejected.stdout.strip()
        == "rejected step gate of JobFlow default/own as bob: the step is rejected"
    )
    flow = wait_step(cluster, cache, "own", lambda g, _f: g.get("phase") == "Failed", "rejected")
    gate = step_of(flow, "gate")
    assert gate["reason"] == "Rejected" and gate["rejectedBy"]["user"] == "bob"
    late = zen(cluster, "bob", "approve", "own", "gate")
    assert late.returncode == 1 and "already finished (Failed)" in late.stderr


def test_the_example_runs_with_two_approvers(cluster: Any, cache: Path) -> None:
    """examples/approval-quorum.yaml as written: carol (by her group) and alice approve."""
    text = (Path(__file__).resolve().parents[2] / "examples" / "approval-quorum.yaml").read_text()
    apply(cluster, cache, text)
    wait_step(
        cluster,
        cache,
        "release-2",
        lambda _g, f: step_of(f, "release-gate").get("phase") == "PendingApproval",
        "waits",
    )
    assert (
        zen(
            cluster, "carol", "approve", "release-2", "release-gate", "-p", "version=1.4.1"
        ).returncode
        == 0
    )
    done = zen(cluster, "alice", "approve", "release-2", "release-gate")
    assert "2 of 2 approvals (carol, alice): the step is approved" in done.stdout, done.stderr
    flow = eventually(
        lambda: (
            (f := get(cluster, cache, "release-2")).get("status", {}).get("phase") == "Succeeded"
            and f
        ),
        60,
        message="release-2 Succeeded",
    )
    gate = step_of(flow, "release-gate")
    assert gate["outputs"]["parameters"] == {"version": "1.4.1", "ticket": "none"}


def test_serve_embedded_takes_a_token_auth_file(start_embedded: Any, tmp_path: Path) -> None:
    """`zen-flow serve --embedded --token-auth-file F`: each user a context; a decision by one
    of them is recorded under that name; a file that cannot be read is one line, exit 2."""
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('dave-token,dave,u4,"ops"\neve-token,eve,u5\n')
    server = start_embedded("--token-auth-file", str(tokens))
    text = manifest("solo", {"approvers": {"groups": ["ops"]}})
    apply(server, tmp_path, text)
    wait_step(server, tmp_path, "solo", lambda g, _f: g.get("phase") == "PendingApproval", "waits")
    refused = zen(server, "eve", "approve", "solo", "gate")
    assert refused.returncode == 2 and "its approvers are groups ops" in refused.stderr
    done = zen(server, "dave", "approve", "solo", "gate")
    assert "as dave: 1 of 1 approvals (dave): the step is approved" in done.stdout, done.stderr
    bad = subprocess.run(
        [ZEN_FLOW, "serve", "--embedded", "--token-auth-file", str(tmp_path / "none.csv")],
        capture_output=True,
        text=True,
        timeout=90,
        env=cli_env(),
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("zen-flow serve: --token-auth-file: cannot read token file")


def test_a_finally_gate_is_approved_like_any_other(cluster: Any, cache: Path) -> None:
    """A Manual step with an approval in spec.finally: after the DAG failed, only an approver
    may decide it (stamped by the webhook, as for a step of spec.steps), and the finally step
    after it runs; `zen-flow logs` reads a finally step by name."""
    failing = {
        "name": "build",
        "template": {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {
                        "annotations": {"kubesim.io/exit-code": "1", "kubesim.io/log": "boom\n"}
                    },
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox:1.36"}],
                    },
                },
            },
        },
    }
    notify = {**failing, "name": "notify", "dependencies": ["ack"]}
    notify["template"] = json.loads(json.dumps(failing["template"]))
    notify["template"]["spec"]["template"]["metadata"]["annotations"] = {
        "kubesim.io/log": "notified\n"
    }
    body = {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": "acked"},
        "spec": {
            "steps": [failing],
            "finally": [
                {
                    "name": "ack",
                    "type": "Manual",
                    "message": "acknowledge the failed build",
                    "approval": {"approvers": {"users": ["alice"]}},
                },
                notify,
            ],
        },
    }
    apply(cluster, cache, yaml.safe_dump(body))

    def ack_waits(_gate: Any, flow: dict[str, Any]) -> bool:
        return step_of(flow, "ack").get("phase") == "PendingApproval"

    wait_step(cluster, cache, "acked", ack_waits, "the finally gate waits")
    refused = zen(cluster, "bob", "approve", "acked", "ack")
    assert refused.returncode == 2
    assert "user 'bob' may not approve step 'ack'" in refused.stderr
    done = zen(cluster, "alice", "approve", "acked", "ack")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "approved step ack of JobFlow default/acked as alice: 1 of 1 approvals (alice): "
        "the step is approved"
    )
    flow = wait_step(
        cluster, cache, "acked", lambda _g, f: f["status"].get("phase") == "Failed", "ends"
    )
    ack, notified = step_of(flow, "ack"), step_of(flow, "notify")
    assert ack["phase"] == "Succeeded"
    assert [a["user"] for a in ack["approvedBy"]] == ["alice"]
    assert notified["phase"] == "Succeeded"
    logs = zen(cluster, "alice", "logs", "acked", "notify")
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "notify | notified\n"
