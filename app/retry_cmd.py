"""`zen-flow retry FLOW [--step S]... [-p NAME=VALUE]... [-w] [-n NS] [--kubeconfig P |
--context C]`: run a finished flow again from its failed steps (jobflow.requests).

It writes ``spec.retry {id, steps, parameters}`` with a JSON merge patch, exactly what
``kubectl patch jobflow FLOW --type merge -p '{"spec":{"retry":{"id":"r2"}}}'`` does; the
controller acts on each id once. In the same patch the approval annotations of the Manual
steps that run again are removed, so that they wait for a new decision. The checks before it
make a mistake one clear line: the flow exists, the steps and parameters are its own, the flow
has finished (or a stop is in effect: the retry then waits for the flow to end), and there is
something to run again. With ``-w`` it then follows the flow as `watch` does.

Exit 0 requested (with -w: the flow Succeeded); 1 the flow is running, nothing to retry, or the
cluster could not be used (with -w: the flow Failed); 2 usage (no such flow, step or parameter).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

from app import target, watch_cmd, where
from app.cli import EXIT_FAILED, EXIT_OK, CommandError
from controller import kube as kube_mod
from jobflow import decoded, kinds, names, phases, requests


def check_retry(flow: dict[str, Any], retry: requests.Retry, *, ref: str) -> list[str]:
    """The steps the retry runs again; CommandError when it cannot be asked for."""
    spec_steps = [
        decoded.string(s.get("name")) or ""
        for s in decoded.items(flow["spec"]["steps"]) + decoded.items(flow["spec"].get("finally"))
    ]
    unknown = [s for s in retry.steps if s not in spec_steps]
    if unknown:
        raise CommandError(
            f"JobFlow {ref} has no step {', '.join(map(repr, unknown))}; its steps: "
            f"{', '.join(spec_steps)}"
        )
    declared = requests.declared_parameters(decoded.mapping(flow.get("spec")))
    extra = [p for p in retry.parameters if p not in declared]
    if extra:
        known = ", ".join(sorted(declared)) or "none"
        raise CommandError(
            f"JobFlow {ref} has no parameter {', '.join(map(repr, extra))} (spec.parameters: "
            f"{known})"
        )
    status = decoded.mapping(flow.get("status"))
    phase = decoded.string(status.get("phase")) or "Pending"
    if phase not in phases.TERMINAL_FLOW_PHASES and requests.stop_in_effect(status) is None:
        raise CommandError(
            f"JobFlow {ref} is {phase}; a retry runs a finished flow again: stop it first "
            f"(zen-flow stop {flow['metadata']['name']}), or wait for it to end",
            exit_code=EXIT_FAILED,
        )
    chosen = requests.rerun_for(flow, retry)
    if not chosen:
        raise CommandError(
            f"JobFlow {ref} {phase.lower()} with no Failed or Skipped step: nothing to retry; "
            "name the steps to run again with --step",
            exit_code=EXIT_FAILED,
        )
    return chosen


def retry_patch(flow: dict[str, Any], retry: requests.Retry, chosen: list[str]) -> dict[str, Any]:
    """The merge patch: the request (absent fields null, so an older request's go) and the
    removal of the approvals of the Manual steps that run again."""
    body: dict[str, Any] = {
        "id": retry.id,
        "steps": list(retry.steps) or None,
        "parameters": dict(retry.parameters) or None,
        "requestedBy": None,
    }
    patch: dict[str, Any] = {"spec": {"retry": body}}
    annotations = decoded.string_map(decoded.path(flow, "metadata", "annotations"))
    manual = {
        decoded.string(s.get("name"))
        for s in decoded.items(flow["spec"]["steps"])
        if kinds.of_step(s).awaits_approval
    }
    drop = {
        names.approve_annotation(s): None
        for s in chosen
        if s in manual and names.approve_annotation(s) in annotations
    }
    if drop:
        patch["metadata"] = {"annotations": drop}
    return patch


def request_retry(
    kube: kube_mod.Kube,
    namespace: str,
    name: str,
    *,
    steps: Sequence[str] = (),
    parameters: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Write the retry request; returns (request id, the line that says what runs again).
    CommandError when it cannot be asked for. Shared with `zen-flow ui`."""
    ref = f"{namespace}/{name}"
    flow = target.read_flow(kube, namespace, name)
    retry = requests.Retry(
        id=target.request_id(),
        steps=tuple(dict.fromkeys(steps)),
        parameters=dict(parameters or {}),
        requested_by=None,
    )
    chosen = check_retry(flow, retry, ref=ref)
    target.patch_flow(kube, namespace, name, retry_patch(flow, retry, chosen))
    attempts = {
        decoded.string(e.get("name")): decoded.integer(e.get("attempts")) or 0
        for e in decoded.items(decoded.path(flow, "status", "steps"))
    }
    shown = [f"{s} (attempt {attempts[s] + 1})" if attempts.get(s) else s for s in chosen]
    params = ", ".join(f"{k}={v}" for k, v in sorted(retry.parameters.items()))
    said = f"retry {retry.id} of JobFlow {ref} requested: runs again {', '.join(shown)}" + (
        f"; parameters {params}" if params else ""
    )
    return retry.id, said


def _command(args: argparse.Namespace) -> int:
    timeout = where.duration(args.timeout)
    with target.real_cluster(args, "retry") as (kube, namespace):
        request, said = request_retry(
            kube,
            namespace,
            args.flow,
            steps=args.steps or (),
            parameters=target.parameters(args.parameters),
        )
        print(said)
        if args.watch:
            target.wait_acknowledged(
                kube, namespace, args.flow, kind="retry", request=request, command="retry"
            )
            return watch_cmd.follow_flows(
                kube, [(namespace, args.flow)], timeout=timeout, command="retry"
            )
    return EXIT_OK


def add_watch(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-w", "--watch", action="store_true", help="then follow the flow to its end, as watch"
    )
    watch_cmd.add_timeout(parser)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "retry",
        help="run a finished JobFlow again from its failed steps",
        description="Run a Failed (or stopped) JobFlow again: its Failed and Skipped steps, or "
        "the --step steps and everything downstream of them, run as new attempts; Succeeded "
        "steps keep their results. Writes spec.retry (kubectl patch does the same). Exit 0: "
        "requested; 1: the flow runs or has nothing to retry; 2: no such flow, step or "
        "parameter.",
    )
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    parser.add_argument(
        "--step",
        dest="steps",
        action="append",
        metavar="STEP",
        help="run this step and everything downstream of it again (repeatable)",
    )
    where.add_parameter_flag(
        parser,
        "a new value of a flow parameter for the steps that run again (repeatable)",
    )
    add_watch(parser)
    target.add_cluster_flags(parser)
    parser.set_defaults(func=_command)
