"""`zen-flow stop FLOW [-w]` and `zen-flow terminate FLOW [-w]` (with -n, --kubeconfig,
--context): end a running flow (jobflow.requests).

Both write ``spec.stop {id, mode}`` with a JSON merge patch (``kubectl patch`` does the same).
``stop`` (mode Stop): nothing new starts, running steps finish, the flow ends Failed (reason
Stopped). ``terminate`` (mode Terminate): the running Jobs and their pods are deleted now and
the flow ends Failed (reason Terminated). A finished flow is left alone (exit 1).

Exit 0 requested (with -w: as `watch`); 1 the flow already finished or the cluster could not
be used; 2 usage (no such flow).
"""

from __future__ import annotations

import argparse

from app import retry_cmd, target, watch_cmd, where
from app.cli import EXIT_FAILED, EXIT_OK, CommandError
from controller import kube as kube_mod
from jobflow import decoded, phases
from jobflow.spec import StopMode


def stop_flow(kube: kube_mod.Kube, namespace: str, name: str, mode: StopMode) -> tuple[str, str]:
    """Write the stop request; returns (request id, the line that says what it does).
    CommandError when the flow already finished or the cluster refused. Shared with `ui`."""
    command = "terminate" if mode == StopMode.TERMINATE else "stop"
    ref = f"{namespace}/{name}"
    flow = target.read_flow(kube, namespace, name)
    status = decoded.mapping(flow.get("status"))
    phase = decoded.string(status.get("phase")) or "Pending"
    if phase in phases.TERMINAL_FLOW_PHASES:
        raise CommandError(
            f"JobFlow {ref} already finished ({phase}); nothing to {command}",
            exit_code=EXIT_FAILED,
        )
    request_id = target.request_id()
    patch = {"spec": {"stop": {"id": request_id, "mode": str(mode), "requestedBy": None}}}
    target.patch_flow(kube, namespace, name, patch)
    running = [
        decoded.string(s.get("name")) or "?"
        for s in decoded.items(status.get("steps"))
        if s.get("phase") == "Running"
    ]
    listed = f" ({', '.join(running)})" if running else ""
    if mode == StopMode.TERMINATE:
        effect = f"nothing new starts; running Jobs are deleted{listed}"
    else:
        effect = "nothing new starts" + (f"; running steps finish first{listed}" if running else "")
    return request_id, f"{command} {request_id} of JobFlow {ref} requested: {effect}"


def request_stop(args: argparse.Namespace, mode: StopMode) -> int:
    command = "terminate" if mode == StopMode.TERMINATE else "stop"
    timeout = where.duration(args.timeout)
    with target.real_cluster(args, command) as (kube, namespace):
        request_id, said = stop_flow(kube, namespace, args.flow, mode)
        print(said)
        if args.watch:
            target.wait_acknowledged(
                kube, namespace, args.flow, kind="stop", request=request_id, command=command
            )
            return watch_cmd.follow_flows(
                kube, [(namespace, args.flow)], timeout=timeout, command=command
            )
    return EXIT_OK


def _stop(args: argparse.Namespace) -> int:
    return request_stop(args, StopMode.STOP)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *, terminate: bool
) -> None:
    what = (
        "delete its running Jobs and their pods now; it ends Failed (Terminated)"
        if terminate
        else "start nothing new and let running steps finish; it ends Failed (Stopped)"
    )
    parser = subparsers.add_parser(
        name,
        help="end a running JobFlow: running Jobs deleted now"
        if terminate
        else "end a running JobFlow: running steps finish, nothing new starts",
        description=f"{name.capitalize()} a running JobFlow: {what}. Writes spec.stop "
        "(kubectl patch does the same). Exit 0: requested; 1: the flow already finished; "
        "2: no such flow.",
    )
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    retry_cmd.add_watch(parser)
    target.add_cluster_flags(parser)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add_parser(subparsers, "stop", terminate=False)
    subparsers.choices["stop"].set_defaults(func=_stop)
