"""`zen-flow approve FLOW STEP [-p NAME=VALUE]... [--reject]` and `zen-flow reject FLOW STEP`.

Both write the request annotation ``approve.workflow.kube-zen.io/<step>`` (``true``/``false``,
or the decision with its inputs) with a JSON merge patch, through app.approving.decide (the
function a UI calls too); for a step with an ``approval`` policy the admission webhook records
who decided, when and with which inputs, and refuses a user the step does not allow (its
message is printed as is). The output says who approved and what is still needed
("1 of 2 approvals (alice); 1 more needed (approvers: users alice, bob)"). A step that has not started
waiting yet may be decided ahead of time.

Exit 0 done; 1 the cluster could not be used or the step already finished; 2 rejected or
usage (the webhook denied the decision, no such flow or step, not a Manual step, a malformed
-p).
"""

from __future__ import annotations

import argparse

from app import approving, cluster, target
from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from controller import kube as kube_mod
from jobflow import names


def _inputs(pairs: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"-p {pair!r}: write NAME=VALUE", exit_code=EXIT_USAGE)
        found[name] = value
    return found


def decide(
    kube: kube_mod.Kube,
    namespace: str,
    flow_name: str,
    step: str,
    *,
    reject: bool,
    inputs: dict[str, str] | None = None,
) -> str:
    """Approve (or reject) ``step`` (app.approving.decide, retried on transient errors): the
    line that says what was done and, under an approval policy, who approved and what is still
    needed. CommandError when it cannot be done; kube_mod.ApiError when the cluster cannot be
    reached. Shared by the CLI and `zen-flow ui`."""
    approve = not reject
    try:
        outcome = cluster.retrying(
            lambda: approving.decide(
                kube, namespace, flow_name, step, approve=approve, inputs=inputs or {}
            )
        )
    except approving.DecisionError as exc:
        raise CommandError(
            str(exc), exit_code=EXIT_USAGE if exc.rejected else EXIT_FAILED
        ) from None
    verb = "approved" if approve else "rejected"
    ahead = (
        ""
        if outcome.phase == "PendingApproval"
        else f" ahead of time (the step is {outcome.phase})"
    )
    line = f"{verb} step {step} of JobFlow {namespace}/{flow_name}{ahead}"
    if outcome.policy is not None:
        who = f" as {outcome.recorded_as}" if outcome.recorded_as else ""
        line += f"{who}: {outcome.summary(approve=approve)}"
    return line


def _command(args: argparse.Namespace) -> int:
    inputs = _inputs(args.parameters)
    command = "reject" if args.reject else "approve"
    with target.real_cluster(args, command) as (kube, namespace):
        said = decide(kube, namespace, args.flow, args.step, reject=args.reject, inputs=inputs)
    print(said)
    return EXIT_OK


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    parser.add_argument("step", metavar="STEP", help="name of its Manual step")
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig of the cluster")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context (the user) to use")
    parser.set_defaults(func=_command)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "approve",
        help="approve (or reject) a Manual step of a JobFlow",
        description="Approve a Manual step waiting in PendingApproval (sets the annotation "
        f"{names.APPROVE_ANNOTATION_PREFIX}STEP on the JobFlow; the webhook records who); "
        "--reject fails it. Exit 0: done; 1: the cluster could not be used or the step already "
        "finished; 2: the webhook denied the decision (not an approver, a wrong input), no "
        "such flow or step, not a Manual step.",
    )
    _add_common(parser)
    parser.add_argument("--reject", action="store_true", help="reject: the step fails")
    parser.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        metavar="NAME=VALUE",
        help="an input of the step's approval (repeatable); it becomes the step's output",
    )
    reject = subparsers.add_parser(
        "reject",
        help="reject a Manual step of a JobFlow (the step fails)",
        description="Same as `zen-flow approve FLOW STEP --reject`.",
    )
    _add_common(reject)
    reject.set_defaults(reject=True, parameters=None)
