"""The `zen-flow` command line (entry point ``app.cli:main``).

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds its
parser and ``set_defaults(func=handler)``; ``handler(args) -> int`` returns the exit code.
To add a command, add ONE line to ``COMMANDS`` below (name -> module).

Only the module of the command being run is imported (``zen-flow validate`` does not pay for
the server's imports); ``--help`` and unknown commands import them all to list them.

Error contract (DESIGN section 7): a user's mistake is one line on stderr (what, where, what
to do), never a traceback. Handlers raise ``CommandError`` for that; anything unexpected is
reported as one line too, with the traceback only when ZEN_FLOW_DEBUG=1.

Exit codes shared by the commands: 0 ok, 1 failed (or the cluster could not be used), 2
rejected / usage / unreadable input, 3 timed out (`run`), 130 interrupted (Ctrl-C), 143
terminated (SIGTERM).

SIGTERM (CI cancelling a job, `timeout`, `kill`) ends a command exactly as Ctrl-C does: the
handler raises ``Terminated``, a ``KeyboardInterrupt``, in the main thread, so every ``with``
and ``finally`` on the way out runs (the embedded cluster stops and its temporary directories,
which hold a token and a TLS key, are removed) and the command says one line. Further SIGTERMs
are ignored while it cleans up. Commands that serve until stopped (`serve`) install their own
handlers.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Final

PROG: Final = "zen-flow"

# name -> module with register(subparsers). Keep in the order `zen-flow --help` shows them.
COMMANDS: Final[dict[str, str]] = {
    "validate": "app.validate_cmd",
    "graph": "app.graph_cmd",
    "crd": "app.crd_cmd",
    "certs": "app.certs_cmd",
    "serve": "app.serve_cmd",
    "run": "app.run_cmd",
    "approve": "app.approve_cmd",
    "reject": "app.approve_cmd",  # registered with approve
    "retry": "app.retry_cmd",
    "stop": "app.stop_cmd",
    "terminate": "app.terminate_cmd",
    "watch": "app.watch_cmd",
    "logs": "app.logs_cmd",
    "get": "app.get_cmd",
    "list": "app.list_cmd",
    "ui": "app.ui_cmd",
}

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
EXIT_TERMINATED: Final = 128 + signal.SIGTERM  # 143, as a shell reports a SIGTERM'd process


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwind as for Ctrl-C (cleanup runs), then exit ``EXIT_TERMINATED``."""


def interrupt_exit(exc: KeyboardInterrupt) -> tuple[str, int]:
    """How an interrupt is said and the exit code: ("terminated (SIGTERM)", 143) or
    ("interrupted", 130)."""
    if isinstance(exc, Terminated):
        return "terminated (SIGTERM)", EXIT_TERMINATED
    return "interrupted", EXIT_INTERRUPTED


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Once: a second SIGTERM during cleanup must not cut the cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


class CommandError(Exception):
    """A user's mistake: printed as ``zen-flow <command>: <message>``, exit ``exit_code``."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("zen-flow")
    except metadata.PackageNotFoundError:  # run from a checkout that was not installed
        return "unknown"


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Kubernetes-native DAG orchestrator: JobFlow steps run as batch/v1 Jobs.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    # One module may register several commands (approve and reject): import each once.
    modules = (
        [COMMANDS[selected]] if selected in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    )
    for module_name in modules:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a command whose module is not written yet
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = args_list[0] if args_list and args_list[0] in COMMANDS else None
    parser = build_parser(selected)
    args = parser.parse_args(args_list)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # Only the main thread may set handlers (tests call main() from others); the previous
    # handler comes back afterwards, for callers that run main() in-process.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if in_main else None
    try:
        return handler(args)
    except CommandError as exc:
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        said, code = interrupt_exit(exc)
        print(f"{PROG} {args.command}: {said}", file=sys.stderr)
        return code
    except BrokenPipeError:
        # `zen-flow crd | head`: the reader went away; nothing left to say.
        sys.stderr.close()
        return EXIT_FAILED
    except Exception as exc:  # the process boundary: one line, traceback on request
        if os.environ.get("ZEN_FLOW_DEBUG") == "1":
            traceback.print_exc()
        print(
            f"{PROG} {args.command}: internal error: {type(exc).__name__}: {exc}"
            " (set ZEN_FLOW_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
