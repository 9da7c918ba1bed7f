"""`zen-flow crd`: print the JobFlow CRD (identical to crds/jobflows.yaml)."""

from __future__ import annotations

import argparse
import sys

from app.cli import EXIT_OK
from jobflow import crd


def _command(args: argparse.Namespace) -> int:
    sys.stdout.write(crd.crd_yaml())
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "crd",
        help="print the JobFlow CustomResourceDefinition",
        description="Print the CRD generated from the model; `zen-flow crd | kubectl apply -f -`.",
    )
    parser.set_defaults(func=_command)
