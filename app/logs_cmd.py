"""`zen-flow logs FLOW [STEP] [-f] [-n NS] [--kubeconfig P | --context C]`: the logs of every
step's pods (one per attempt), each line prefixed by its step and attempt (``build``,
``build#2`` from the second attempt on, as `run` shows them), in step order (spec order, then
attempt). For a running or finished flow; with ``-f`` it follows until the flow ends (the same
log follower as `run`: each poll prints only new complete lines). Pods deleted with their
Jobs (a step timeout, terminate, TTL) have no logs left to show.

Exit 0; 1 cluster unusable; 2 no such flow or step.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from app import run_cmd, target
from app.cli import EXIT_OK, CommandError
from jobflow import decoded, fanout


class LogLines:
    """A display that shows only log lines (``prefix | line``), prefixes padded to ``width``."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.lines = 0

    def update(self, flows: Sequence[Mapping[str, Any]]) -> None:
        pass

    def log(self, prefix: str, line: str) -> None:
        self.lines += 1
        print(f"{prefix:<{self.width}} | {line}", flush=True)

    def note(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def summary(self, flows: Sequence[Mapping[str, Any]]) -> None:
        pass

    def close(self) -> None:
        pass


def _prefix_width(flow: Mapping[str, Any], step: str | None) -> int:
    widths = []
    for entry in decoded.items(decoded.path(flow, "status", "steps")):
        name = decoded.string(entry.get("name")) or ""
        if step is not None and name != step:
            continue
        attempts = decoded.integer(entry.get("attempts")) or 0
        items = decoded.integer(decoded.path(entry, "items", "count"))
        if items:  # a fan-out's lines are prefixed step[i]
            name = fanout.item_key(name, items - 1)
        widths.append(len(name) + (len(f"#{attempts}") if attempts > 1 else 0))
    return max(widths, default=0)


def _command(args: argparse.Namespace) -> int:
    with target.real_cluster(args, "logs") as (kube, namespace):
        flow = target.read_flow(kube, namespace, args.flow)
        spec = flow["spec"]
        order = [
            decoded.string(s.get("name")) or ""
            for s in decoded.items(spec.get("steps")) + decoded.items(spec.get("finally"))
        ]
        if args.step is not None and args.step not in order:
            raise CommandError(
                f"JobFlow {namespace}/{args.flow} has no step {args.step!r}; its steps: "
                f"{', '.join(order)}"
            )
        shown = LogLines(_prefix_width(flow, args.step))
        follower = run_cmd.Follower(
            kube,
            [(namespace, args.flow)],
            shown,
            step=args.step,
            by_step=True,
        )
        if args.follow:
            run_cmd.follow(follower, timeout=None)
        else:
            follower.poll()
        if not shown.lines:
            what = f"step {args.step} of JobFlow" if args.step else "JobFlow"
            print(
                f"zen-flow logs: no log lines from {what} {namespace}/{args.flow}: no pod has "
                "run yet, or its pods are gone with their Jobs (terminate, a step timeout, TTL)",
                file=sys.stderr,
            )
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "logs",
        help="print the logs of a JobFlow's steps, prefixed by step and attempt",
        description="Print the logs of every step of a JobFlow (or of STEP), each line prefixed "
        "by its step and attempt, in step order; -f follows them until the flow ends.",
    )
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    parser.add_argument("step", metavar="STEP", nargs="?", help="only this step")
    parser.add_argument(
        "-f", "--follow", action="store_true", help="follow the logs until the flow ends"
    )
    target.add_cluster_flags(parser)
    parser.set_defaults(func=_command)
