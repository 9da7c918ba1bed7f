"""What the commands that act on an existing flow share: their cluster flags and the cluster
kubectl would use (app.where), reading and patching one flow, request ids and waiting for the
controller to act on a request.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from app import cluster, run_cmd, where
from app.cli import EXIT_FAILED, EXIT_USAGE, CommandError
from controller import kube as kube_mod
from jobflow import decoded
from jobflow.phases import TERMINAL_FLOW_PHASES


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig of the cluster")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")


def real_cluster_words(kube: kube_mod.Kube, args: argparse.Namespace) -> str:
    return where.real_cluster_words(args.kubeconfig, args.context, cluster.server_url(kube))


@contextlib.contextmanager
def real_cluster(args: argparse.Namespace, command: str) -> Iterator[tuple[kube_mod.Kube, str]]:
    """(client, namespace) of the cluster kubectl would use; zen-flow must be installed there.
    Errors while talking to it are one line (exit 1)."""
    namespace = (
        args.namespace
        or cluster.kubeconfig_namespace(args.kubeconfig, args.context)
        or run_cmd.DEFAULT_NAMESPACE
    )
    kube = cluster.connect(args.kubeconfig, args.context)
    try:
        cluster.check_installed(kube, namespace)
        where.say_cluster(command, real_cluster_words(kube, args))
        try:
            yield kube, namespace
        except kube_mod.ApiError as exc:
            raise cluster.unreachable(kube, exc) from None
    finally:
        kube.close()


def read_flow(kube: kube_mod.Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cluster.retrying(lambda: kube.get(kube_mod.JOBFLOWS, namespace, name))
    except kube_mod.NotFound:
        raise CommandError(
            f"JobFlow {namespace}/{name} not found; list them with: zen-flow list -n {namespace}"
        ) from None


def patch_flow(
    kube: kube_mod.Kube, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """A JSON merge patch; a denial by the webhook is one line (exit 2)."""
    try:
        return cluster.retrying(lambda: kube.patch(kube_mod.JOBFLOWS, namespace, name, patch))
    except (kube_mod.Invalid, kube_mod.Forbidden) as exc:
        if exc.code == 401:
            raise cluster.unauthorized(kube) from None
        raise CommandError(
            f"the cluster refused the change to JobFlow {namespace}/{name}: {exc}",
            exit_code=EXIT_USAGE,
        ) from None
    except kube_mod.NotFound:
        raise CommandError(
            f"JobFlow {namespace}/{name} was deleted", exit_code=EXIT_FAILED
        ) from None


# Seconds a request may wait for the controller to act on it before `-w` says so and follows
# anyway: a running controller acts in well under a second.
ACK_TIMEOUT: Final = 30.0


def wait_acknowledged(
    kube: kube_mod.Kube, namespace: str, name: str, *, kind: str, request: str, command: str
) -> None:
    """Wait until the controller recorded ``request`` in ``status.requests.<kind>``, so that
    following the flow shows the new run, not the old end. Says once if none does in time.
    While a stop is in effect a retry waits for the flow to end: so does this (no limit)."""
    deadline = time.monotonic() + ACK_TIMEOUT
    said = False
    while True:
        flow = cluster.retrying(lambda: kube.get(kube_mod.JOBFLOWS, namespace, name))
        status = decoded.mapping(flow.get("status"))
        if decoded.string(decoded.path(status, "requests", kind)) == request:
            return
        # only a retry waits out a stop in effect; a stop or terminate is acted on at once
        stopping = status.get("stop") and status.get("phase") not in TERMINAL_FLOW_PHASES
        if kind == "retry" and stopping:
            deadline = time.monotonic() + ACK_TIMEOUT
            if not said:
                said = True
                print(
                    f"zen-flow {command}: JobFlow {namespace}/{name} is stopping; the retry "
                    "runs once its running steps have finished",
                    file=sys.stderr,
                    flush=True,
                )
        elif time.monotonic() >= deadline:
            break
        time.sleep(run_cmd.POLL_INTERVAL)
    print(
        f"zen-flow {command}: no controller acted on request {request} of JobFlow "
        f"{namespace}/{name} after {ACK_TIMEOUT:g} s: is zen-flow running? Following anyway.",
        file=sys.stderr,
        flush=True,
    )


def request_id(now: datetime | None = None) -> str:
    """A new request id: the UTC time to the microsecond (a valid, sortable, unique-enough
    token; two requests in the same microsecond are one request)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")


def parameters(pairs: list[tuple[str, str]] | None) -> dict[str, str]:
    return dict(pairs or [])


def set_suspended(kube: kube_mod.Kube, namespace: str, name: str, *, suspend: bool) -> str:
    """Set ``spec.suspend`` (as ``kubectl patch jobflow NAME --type merge -p
    '{"spec":{"suspend":true}}'``): while true no new step starts. Returns the line that says
    so; CommandError when the flow finished or the cluster refused."""
    ref = f"{namespace}/{name}"
    flow = read_flow(kube, namespace, name)
    phase = decoded.string(decoded.path(flow, "status", "phase")) or "Pending"
    if phase in TERMINAL_FLOW_PHASES:
        verb = "suspend" if suspend else "resume"
        raise CommandError(
            f"JobFlow {ref} already finished ({phase}); nothing to {verb}", exit_code=EXIT_FAILED
        )
    patch_flow(kube, namespace, name, {"spec": {"suspend": True if suspend else None}})
    if suspend:
        return f"suspended JobFlow {ref}: no new step starts (running steps finish)"
    return f"resumed JobFlow {ref}"
