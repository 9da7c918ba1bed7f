"""Which cluster a command talks to, decided as kubectl decides it, and what the commands that
act on an existing flow share (flags, the "which cluster" line, reading one flow, durations).

kubectl's order: ``--kubeconfig`` (one file), ``--context`` (a context of the kubeconfig in
use), then ``$KUBECONFIG`` (a list of files), then ``~/.kube/config``. `zen-flow run` uses the
embedded cluster (started in the process) when none of ``--kubeconfig``, ``--context`` and
``$KUBECONFIG`` is given, or with ``--embedded``; every other command needs a real cluster (an
embedded one would be empty). Each command says once, on stderr, which cluster it uses:
``cluster: context NAME at URL`` or ``cluster: embedded, steps simulated``; stderr, so that
``-o json`` and the command's own output stay clean for pipes.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import yaml

from app import run_cmd
from app.cli import EXIT_FAILED, EXIT_USAGE, CommandError
from controller import kube as kube_mod
from jobflow import decoded, quantities

EMBEDDED_WORDS: Final = {
    "sim": "embedded, steps simulated",
    "local": "embedded, steps run as local processes",
}


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig of the cluster")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")


def uses_embedded(args: argparse.Namespace) -> bool:
    """`run`'s choice: the embedded cluster with --embedded, or when nothing names a cluster."""
    if getattr(args, "embedded", False):
        return True
    return not (args.kubeconfig or args.context or os.environ.get("KUBECONFIG"))


def context_name(kubeconfig: str | None, context: str | None) -> str:
    """The context kubectl would use: --context, else the first current-context found."""
    if context:
        return context
    for path in run_cmd._kubeconfig_paths(kubeconfig):
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(config, dict) and config.get("current-context"):
            return str(config["current-context"])
    return "(in-cluster)"


def say_cluster(command: str, words: str) -> None:
    print(f"zen-flow {command}: cluster: {words}", file=sys.stderr, flush=True)


def real_cluster_words(kube: kube_mod.Kube, args: argparse.Namespace) -> str:
    return f"context {context_name(args.kubeconfig, args.context)} at {run_cmd.server_url(kube)}"


@contextlib.contextmanager
def real_cluster(args: argparse.Namespace, command: str) -> Iterator[tuple[kube_mod.Kube, str]]:
    """(client, namespace) of the cluster kubectl would use; zen-flow must be installed there.
    Errors while talking to it are one line (exit 1)."""
    namespace = (
        args.namespace
        or run_cmd.kubeconfig_namespace(args.kubeconfig, args.context)
        or run_cmd.DEFAULT_NAMESPACE
    )
    kube = run_cmd.connect(args.kubeconfig, args.context)
    try:
        run_cmd.check_installed(kube, namespace)
        say_cluster(command, real_cluster_words(kube, args))
        try:
            yield kube, namespace
        except kube_mod.ApiError as exc:
            raise run_cmd.unreachable(kube, exc) from None
    finally:
        kube.close()


def read_flow(kube: kube_mod.Kube, namespace: str, name: str) -> dict[str, Any]:
    try:
        return run_cmd.retrying(lambda: kube.get(kube_mod.JOBFLOWS, namespace, name))
    except kube_mod.NotFound:
        raise CommandError(
            f"JobFlow {namespace}/{name} not found; list them with: zen-flow list -n {namespace}"
        ) from None


def patch_flow(
    kube: kube_mod.Kube, namespace: str, name: str, patch: Mapping[str, Any]
) -> dict[str, Any]:
    """A JSON merge patch; a denial by the webhook is one line (exit 2)."""
    try:
        return run_cmd.retrying(lambda: kube.patch(kube_mod.JOBFLOWS, namespace, name, patch))
    except (kube_mod.Invalid, kube_mod.Forbidden) as exc:
        if exc.code == 401:
            raise run_cmd.unauthorized(kube) from None
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
    following the flow shows the new run, not the old end. Says once if none does in time."""
    deadline = time.monotonic() + ACK_TIMEOUT
    while time.monotonic() < deadline:
        flow = run_cmd.retrying(lambda: kube.get(kube_mod.JOBFLOWS, namespace, name))
        if decoded.string(decoded.path(flow, "status", "requests", kind)) == request:
            return
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


def duration(text: str) -> float:
    """A command-line duration as kubectl takes it: ``90s``, ``10m``, ``1h30m``, or a plain
    number of seconds; positive and finite (``nan``, ``inf``, ``0``, ``-5s`` are refused)."""
    value: float | None
    try:
        value = float(text)
    except ValueError:
        parsed = quantities.parse_duration(text.strip())
        value = float(parsed) if parsed is not None else None
    if value is None or math.isnan(value) or math.isinf(value) or value <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive duration; write it as kubectl does: 90s, 10m, 1h30m"
        )
    return value


def parameter(text: str) -> tuple[str, str]:
    """``-p NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write a parameter as NAME=VALUE")
    return name.strip(), value


def parameters(pairs: list[tuple[str, str]] | None) -> dict[str, str]:
    return dict(pairs or [])
