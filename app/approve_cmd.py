"""`zen-flow approve FLOW STEP [--reject] [-n NS] [--kubeconfig P | --context C]`.

Sets the annotation ``approve.workflow.kube-zen.io/<step>`` on the JobFlow to ``"true"`` (or
``"false"`` with --reject) with a JSON merge patch, which is exactly what
``kubectl annotate jobflow FLOW approve.workflow.kube-zen.io/STEP=true`` does; the controller
reacts to the change. The checks before it make a mistake one clear line instead of an
annotation nobody reads: the flow exists (and zen-flow is installed), STEP is one of its Manual
steps, and the step has not finished. A step that has not started waiting yet may be approved
ahead of time (the controller reads the annotation when the step becomes ready).

Exit 0 done; 1 the cluster could not be used or the step already finished; 2 usage (no such
flow or step, not a Manual step).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from app import cluster, run_cmd, where
from app.cli import EXIT_FAILED, EXIT_OK, CommandError
from controller import kube as kube_mod
from jobflow import decoded, kinds, names, phases

_FINISHED = phases.TERMINAL_STEP_PHASES


def _step_status(flow: Mapping[str, Any], step: str) -> Mapping[str, object]:
    for entry in decoded.items(decoded.path(flow, "status", "steps")):
        if entry.get("name") == step:
            return entry
    return {}


def _check_step(flow: Mapping[str, Any], step: str, *, ref: str) -> str:
    """The step's current phase; CommandError unless it is a Manual step that may be decided."""
    spec_steps = {
        decoded.string(s.get("name")): s for s in decoded.items(decoded.path(flow, "spec", "steps"))
    }
    if step not in spec_steps:
        manual = [n for n, s in spec_steps.items() if n and kinds.of_step(s).awaits_approval]
        hint = f"its Manual steps: {', '.join(manual)}" if manual else "it has no Manual steps"
        raise CommandError(f"JobFlow {ref} has no step {step!r}; {hint}")
    kind = kinds.of_step(spec_steps[step])
    if not kind.awaits_approval:
        raise CommandError(
            f"step {step!r} of JobFlow {ref} is a {kind.name} step; only Manual steps are approved"
        )
    phase = decoded.string(_step_status(flow, step).get("phase")) or "Pending"
    if phase in _FINISHED:
        raise CommandError(
            f"step {step!r} of JobFlow {ref} already finished ({phase}); nothing to decide",
            exit_code=EXIT_FAILED,
        )
    return phase


def decide(kube: kube_mod.Kube, namespace: str, flow_name: str, step: str, *, reject: bool) -> str:
    """Approve (or reject) ``step`` of the flow: the checks, then the annotation. Returns the line
    that says what was done; CommandError when it cannot be. Shared by the CLI and `zen-flow ui`.
    """
    ref = f"{namespace}/{flow_name}"
    try:
        flow = cluster.retrying(lambda: kube.get(kube_mod.JOBFLOWS, namespace, flow_name))
    except kube_mod.NotFound:
        raise CommandError(
            f"JobFlow {ref} not found; list them with: kubectl get jobflows -n {namespace}"
        ) from None
    phase = _check_step(flow, step, ref=ref)
    value = "false" if reject else "true"
    patch = {"metadata": {"annotations": {names.approve_annotation(step): value}}}
    try:
        cluster.retrying(lambda: kube.patch(kube_mod.JOBFLOWS, namespace, flow_name, patch))
    except kube_mod.ApiError as exc:
        raise CommandError(
            f"cannot annotate JobFlow {ref} at {cluster.server_url(kube)}: {exc}",
            exit_code=EXIT_FAILED,
        ) from None
    verb = "rejected" if reject else "approved"
    ahead = "" if phase == "PendingApproval" else f" ahead of time (the step is {phase})"
    return f"{verb} step {step} of JobFlow {ref}{ahead}"


def _command(args: argparse.Namespace) -> int:
    namespace = (
        args.namespace
        or cluster.kubeconfig_namespace(args.kubeconfig, args.context)
        or run_cmd.DEFAULT_NAMESPACE
    )
    kube = cluster.connect(args.kubeconfig, args.context)
    try:
        cluster.check_installed(kube, namespace)
        where.say_cluster(
            "approve",
            where.real_cluster_words(args.kubeconfig, args.context, cluster.server_url(kube)),
        )
        said = decide(kube, namespace, args.flow, args.step, reject=args.reject)
    except kube_mod.ApiError as exc:
        raise cluster.unreachable(kube, exc) from None
    finally:
        kube.close()
    print(said)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "approve",
        help="approve (or reject) a Manual step of a JobFlow",
        description="Approve a Manual step waiting in PendingApproval (sets the annotation "
        f"{names.APPROVE_ANNOTATION_PREFIX}STEP=true on the JobFlow); --reject fails it. "
        "Exit 0: done; 1: the cluster could not be used or the step already finished; "
        "2: no such flow or step, or not a Manual step.",
    )
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    parser.add_argument("step", metavar="STEP", help="name of its Manual step")
    parser.add_argument("--reject", action="store_true", help="reject: the step fails")
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig of the cluster")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.set_defaults(func=_command)
