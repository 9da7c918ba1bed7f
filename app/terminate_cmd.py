"""`zen-flow terminate FLOW [-w]`: see app.stop_cmd (mode Terminate)."""

from __future__ import annotations

import argparse

from app import stop_cmd
from jobflow.spec import StopMode


def _terminate(args: argparse.Namespace) -> int:
    return stop_cmd.request_stop(args, StopMode.TERMINATE)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stop_cmd.add_parser(subparsers, "terminate", terminate=True)
    subparsers.choices["terminate"].set_defaults(func=_terminate)
