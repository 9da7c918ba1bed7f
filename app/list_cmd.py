"""`zen-flow list [-A] [-n NS] [--kubeconfig P | --context C]`: the JobFlows of a namespace as
`kubectl get jf` shows them (NAME, PHASE, PROGRESS, AGE), plus REASON: why a flow failed (its
failed steps and their reasons, or Stopped / Terminated / DeadlineExceeded), or what it waits
for (approval, a queue). Rendering: app.views.list_lines. Exit 0; 1 cluster unusable.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from app import cluster, target, views
from app.cli import EXIT_OK
from controller import kube as kube_mod


def _command(args: argparse.Namespace) -> int:
    with target.real_cluster(args, "list") as (kube, namespace):
        where = None if args.all_namespaces else namespace
        items = cluster.retrying(lambda: kube.list_all(kube_mod.JOBFLOWS, where)["items"])
    if not items:
        scope = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"No JobFlows in {scope}.")
        return EXIT_OK
    items.sort(key=lambda f: (f["metadata"].get("namespace", ""), f["metadata"]["name"]))
    for line in views.list_lines(items, now=datetime.now(UTC), all_namespaces=args.all_namespaces):
        print(line)
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "list",
        help="list JobFlows: phase, progress, age and why they failed",
        description="List the JobFlows of a namespace like `kubectl get jf`, with the failed "
        "steps' reasons.",
    )
    parser.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list the flows of every namespace"
    )
    target.add_cluster_flags(parser)
    parser.set_defaults(func=_command)
