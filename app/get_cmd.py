"""`zen-flow get FLOW [-o text|json|yaml] [-n NS] [--kubeconfig P | --context C]`: one flow as
`argo get` shows a workflow: phase, times, progress, parameters, its runs and retries, and a
tree of its steps (phase, attempts, duration, message) with a row per attempt of a step that
had several (read from its Jobs). Rendering: app.views.get_lines, 80 columns or the terminal's
width. Exit 0; 1 cluster unusable; 2 no such flow.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime

import yaml

from app import cluster, target, views
from app.cli import EXIT_OK
from controller import kube as kube_mod
from jobflow import names


def _command(args: argparse.Namespace) -> int:
    with target.real_cluster(args, "get") as (kube, namespace):
        flow = target.read_flow(kube, namespace, args.flow)
        selector = f"{names.LABEL_FLOW}={names.label_value(args.flow)}"
        jobs = cluster.retrying(
            lambda: kube.list_all(kube_mod.JOBS, namespace, label_selector=selector)["items"]
        )
    uid = flow["metadata"].get("uid")
    jobs = [
        j
        for j in jobs
        if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or ())
    ]
    if args.output == "json":
        print(json.dumps(flow, indent=2))
    elif args.output == "yaml":
        print(yaml.safe_dump(flow, sort_keys=False), end="")
    else:
        width = shutil.get_terminal_size((views.DEFAULT_WIDTH, 24)).columns
        for line in views.get_lines(flow, jobs, now=datetime.now(UTC), width=width):
            print(line)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "get",
        help="show one JobFlow as a tree of its steps (phases, durations, attempts, messages)",
        description="Show a JobFlow like `argo get`: its phase, times, parameters, runs and "
        "retries, and a tree of its steps with a row per attempt.",
    )
    parser.add_argument("flow", metavar="FLOW", help="name of the JobFlow")
    parser.add_argument(
        "-o", "--output", choices=("text", "json", "yaml"), default="text", help="output format"
    )
    target.add_cluster_flags(parser)
    parser.set_defaults(func=_command)
