"""``python -m kubesim``: run an embedded Kubernetes API server until interrupted.

Prints the kubeconfig path (first line of stdout, so scripts can capture it) and serves until
SIGINT/SIGTERM. Exit codes: 0 after a clean stop, 2 for a usage error or a port that cannot be
bound.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import kubesim
from kubesim import auth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubesim",
        description="Run kubesim, an embedded Kubernetes API server for tests and demos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    parser.add_argument(
        "--exec",
        dest="exec_mode",
        choices=("sim", "local"),
        default="sim",
        help="Job runner mode: sim (simulated outcomes) or local (run commands)",
    )
    parser.add_argument("--data-dir", default=None, help="persist objects, CA and token here")
    parser.add_argument(
        "--no-runner", action="store_true", help="serve the API without a Job runner"
    )
    parser.add_argument(
        "--token-auth-file",
        default=None,
        metavar="FILE",
        help="more users, as the API server's static token file: one CSV line per user,"
        ' token,user,uid,"group1,group2"; each gets a kubeconfig context named after it',
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        users = auth.read_token_file(args.token_auth_file) if args.token_auth_file else []
        handle = kubesim.start(
            exec_mode=args.exec_mode,
            host=args.host,
            port=args.port,
            data_dir=args.data_dir,
            runner=not args.no_runner,
            users=users,
        )
    except kubesim.UsersError as exc:
        print(f"kubesim: --token-auth-file: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as exc:
        print(f"kubesim: cannot start: {exc}; choose another --port or --host", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(handle.kubeconfig, flush=True)
    print(
        f"kubesim serving {handle.url}; use: kubectl --kubeconfig {handle.kubeconfig} get ns",
        file=sys.stderr,
        flush=True,
    )
    try:
        stop.wait()
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
