"""`zen-flow watch FLOW... [--timeout D] [-n NS] [--kubeconfig P | --context C]`: the live view
of `zen-flow run` (a row per step, each step's logs prefixed by step and attempt, a summary),
attached to flows that already exist, running or finished.

Exit codes as `run`'s: 0 every flow Succeeded, 1 one Failed (or the cluster could not be
used), 2 no such flow, 3 --timeout reached (the flows keep running), 130/143 interrupted.
`retry`, `stop` and `terminate` take ``-w`` to end the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app import progress, run_cmd, target, where
from app.cli import interrupt_exit
from controller import kube as kube_mod


def follow_flows(
    kube: kube_mod.Kube,
    keys: Sequence[tuple[str, str]],
    *,
    timeout: float | None,
    output: str = "text",
    command: str = "watch",
) -> int:
    """Follow ``keys`` to their end with `run`'s display; returns `run`'s exit code."""
    display = progress.choose(output=output)
    try:
        follower = run_cmd.Follower(kube, list(keys), display, by_step=True)
        try:
            done = run_cmd.follow(follower, timeout=timeout)
        except KeyboardInterrupt as exc:
            display.close()
            said, code = interrupt_exit(exc)
            listed = ", ".join(f"{ns}/{name}" for ns, name in keys)
            print(f"zen-flow {command}: {said}; JobFlow {listed} keeps running", file=sys.stderr)
            return code
        display.summary(follower.flows)
        if not done:
            running = [
                f"{f['metadata'].get('name')} ({progress.flow_phase(f)})"
                for f in follower.flows
                if progress.flow_phase(f) not in progress.TERMINAL_FLOW_PHASES
            ]
            print(
                f"zen-flow {command}: --timeout {timeout:g}s reached; JobFlow "
                f"{', '.join(running)} did not finish (it keeps running in the cluster)",
                file=sys.stderr,
            )
            return run_cmd.EXIT_TIMEOUT
        failed = any(progress.flow_phase(f) != "Succeeded" for f in follower.flows)
        return run_cmd.EXIT_FAILED if failed else run_cmd.EXIT_SUCCEEDED
    finally:
        display.close()


def _command(args: argparse.Namespace) -> int:
    timeout = where.duration(args.timeout)
    with target.real_cluster(args, "watch") as (kube, namespace):
        for name in args.flows:
            target.read_flow(kube, namespace, name)
        return follow_flows(kube, [(namespace, n) for n in args.flows], timeout=timeout)


def add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        help="stop following after DURATION (90s, 10m; exit 3)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="follow existing JobFlows live, as run does",
        description="Follow JobFlows that exist (running or finished) with the live view of "
        "`zen-flow run`: a row per step, step logs prefixed by step and attempt, a summary. "
        "Exit 0: all Succeeded; 1: a flow Failed; 2: no such flow; 3: --timeout reached.",
    )
    parser.add_argument("flows", nargs="+", metavar="FLOW", help="name of a JobFlow")
    add_timeout(parser)
    target.add_cluster_flags(parser)
    parser.set_defaults(func=_command)
