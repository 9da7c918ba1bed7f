"""``python -m controller --kubeconfig PATH``: the controller alone, until SIGTERM/SIGINT.

`zen-flow serve` is the product (webhook + controller in one process); this entry point exists
so tests and benchmarks can run the controller as a real separate process: kill it with SIGKILL
mid-flow, run two of them against one Lease, measure its RSS.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from controller import kube
from controller.leader import LeaderTimings
from controller.runner import Controller, ControllerConfig, default_identity


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--qps", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--namespace", default=None)
    parser.add_argument("--no-leader-elect", action="store_true")
    parser.add_argument("--lease-namespace", default="default")
    parser.add_argument("--lease-name", default="zen-flow-leader")
    parser.add_argument("--identity", default=None)
    parser.add_argument("--lease-duration", type=float, default=15.0)
    parser.add_argument("--renew-deadline", type=float, default=10.0)
    parser.add_argument("--retry-period", type=float, default=2.0)
    parser.add_argument("--resync-period", type=float, default=300.0)
    parser.add_argument(
        "--max-active-jobs",
        type=int,
        default=0,
        help="cap on unfinished Jobs of all flows at once, shared fairly (0: no cap)",
    )
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if args.max_active_jobs < 0:
        print(
            f"python -m controller: --max-active-jobs {args.max_active_jobs}: must be 0 (no cap)"
            " or more",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)

    try:
        timings = LeaderTimings(args.lease_duration, args.renew_deadline, args.retry_period)
    except ValueError as exc:
        print(f"python -m controller: {exc}", file=sys.stderr)
        return 2
    config = ControllerConfig(
        workers=args.workers,
        resync_period=args.resync_period,
        namespace=args.namespace,
        leader_elect=not args.no_leader_elect,
        lease_name=args.lease_name,
        lease_namespace=args.lease_namespace,
        identity=args.identity or default_identity(),
        timings=timings,
        max_active_jobs=args.max_active_jobs or None,
    )
    try:
        ctl = Controller.connect(args.kubeconfig, config, qps=args.qps, burst=args.burst)
    except kube.ConfigError as exc:
        print(f"python -m controller: {exc}; check --kubeconfig", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    ctl.start()
    print("controller started", file=sys.stderr, flush=True)
    done.wait()
    clean = ctl.stop(timeout=10.0)
    ctl.close()
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
