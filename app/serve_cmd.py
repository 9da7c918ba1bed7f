"""`zen-flow serve [--embedded]`: the command line of the serving process.

A deployed replica runs `app.serve` against the cluster of its kubeconfig; with ``--embedded``
the same servers and controller run against an in-process kubesim (`app.embedded`), which
builds on `app.serve`. This module is the one place that knows both, so neither of them
imports the other back.
"""

from __future__ import annotations

import argparse
import sys

from app import embedded, serve
from app import settings as settings_mod
from app.logging import configure as configure_logging
from app.settings import SettingsError


def _command(args: argparse.Namespace) -> int:
    prog = "zen-flow serve"
    try:
        settings = settings_mod.load(args)
    except SettingsError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if settings.embedded:
        return embedded.serve_command(args)
    configure_logging(level=settings.log_level, fmt=settings.log_format.value)
    try:
        return serve.run(settings)
    except serve.ServeError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the admission webhook, probes/metrics and the controller",
        description="Run the admission webhook (HTTPS), /healthz /readyz /metrics (HTTP) and "
        "the controller. Every flag can also be set as ZEN_FLOW_<FLAG> in the environment.",
    )
    settings_mod.add_arguments(parser)
    embedded.add_arguments(parser)  # --exec, --kubeconfig-out, --data-dir (with --embedded)
    parser.set_defaults(func=_command)
