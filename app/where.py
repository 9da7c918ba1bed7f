"""Where a command runs, decided as kubectl decides it, and the command-line values every
command parses alike (durations, ``NAME=VALUE`` parameters). Imports nothing of the cluster
client, so that `run` and the commands that act on existing flows share it without a cycle.

kubectl's order: ``--kubeconfig`` (one file), ``--context`` (a context of the kubeconfig in
use), then ``$KUBECONFIG`` (a list of files), then ``~/.kube/config``. `zen-flow run` uses the
embedded cluster (started in the process) when none of ``--kubeconfig``, ``--context`` and
``$KUBECONFIG`` is given, or with ``--embedded``; every other command needs a real cluster (an
embedded one would be empty). Each command says once, on stderr, which cluster it uses:
``cluster: context NAME at URL``, ``cluster: embedded, steps simulated`` or ``cluster:
embedded, steps run as local processes``; on stderr, so that ``-o json`` and the command's
own output stay clean for pipes.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Final

import yaml

from app.cli import CommandError
from jobflow import quantities

EMBEDDED_WORDS: Final = {
    "sim": "embedded, steps simulated",
    "local": "embedded, steps run as local processes",
}


def kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    """The files kubectl would read: --kubeconfig, else $KUBECONFIG's list, else ~/.kube/config."""
    if kubeconfig:
        return [Path(kubeconfig)]
    env = os.environ.get("KUBECONFIG", "")
    return [Path(p) for p in env.split(os.pathsep) if p] or [Path.home() / ".kube" / "config"]


def uses_embedded(args: argparse.Namespace) -> bool:
    """`run`'s choice: the embedded cluster with --embedded, or when nothing names a cluster."""
    if getattr(args, "embedded", False):
        return True
    return not (args.kubeconfig or args.context or os.environ.get("KUBECONFIG"))


def context_name(kubeconfig: str | None, context: str | None) -> str:
    """The context kubectl would use: --context, else the first current-context found."""
    if context:
        return context
    for path in kubeconfig_paths(kubeconfig):
        try:
            config = yaml.safe_load(path.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        if isinstance(config, dict) and config.get("current-context"):
            return str(config["current-context"])
    return "(in-cluster)"


def real_cluster_words(kubeconfig: str | None, context: str | None, url: str) -> str:
    return f"context {context_name(kubeconfig, context)} at {url}"


def say_cluster(command: str, words: str) -> None:
    print(f"zen-flow {command}: cluster: {words}", file=sys.stderr, flush=True)


def duration(text: str | None, *, flag: str = "--timeout") -> float | None:
    """A command-line duration as kubectl takes it: ``90s``, ``10m``, ``1h30m``, or a plain
    number of seconds; positive and finite (``nan``, ``inf``, ``0``, ``-5s`` are refused with
    one line, exit 2). None stays None (no limit)."""
    if text is None:
        return None
    value: float | None
    try:
        value = float(text)
    except ValueError:
        parsed = quantities.parse_duration(text.strip())
        value = float(parsed) if parsed is not None else None
    if value is None or math.isnan(value) or math.isinf(value) or value <= 0:
        raise CommandError(
            f"{flag} {text}: must be a positive duration, written as kubectl takes it: 90s, "
            "10m, 1h30m (or a number of seconds)"
        )
    return value


def parameter(text: str) -> tuple[str, str]:
    """``-p NAME=VALUE``."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write a parameter as NAME=VALUE")
    return name.strip(), value


def add_parameter_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``-p/--parameter NAME=VALUE`` (repeatable) into ``args.parameters``."""
    parser.add_argument(
        "-p",
        "--parameter",
        dest="parameters",
        action="append",
        type=parameter,
        metavar="NAME=VALUE",
        help=help_text,
    )
