"""`zen-flow ui [-n NS] [--kubeconfig P | --context C | --embedded [--exec sim|local]]
[--host H] [--port N] [--flow NAME] [--no-browser]`: serve the web view of flows (app.ui) on
127.0.0.1 until Ctrl-C, with the user's own kubeconfig, chosen as `run` chooses it: the
cluster of --kubeconfig/--context/$KUBECONFIG (zen-flow installed there), else (or with
--embedded) an embedded cluster started in this process, whose kubeconfig is printed so that
flows can be applied to it.

It prints the address to open, with a random token (the only way in; see app.ui.server), and
opens it in a browser when run from a terminal (not with --no-browser).

Exit 0 stopped with Ctrl-C; 1 the cluster could not be used; 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import webbrowser
from collections.abc import Iterator

from app import cluster, run_cmd, target, where
from app.cli import EXIT_FAILED, EXIT_OK, CommandError
from app.logging import configure as configure_logging
from app.ui import server
from controller import kube as kube_mod


@contextlib.contextmanager
def _cluster(args: argparse.Namespace, namespace: str) -> Iterator[tuple[kube_mod.Kube, str]]:
    """(client, words for the page) of the cluster `run` would use."""
    if not where.uses_embedded(args):
        kube = cluster.connect(args.kubeconfig, args.context)
        try:
            cluster.check_installed(kube, namespace)
            words = target.real_cluster_words(kube, args)
            where.say_cluster("ui", words)
            yield kube, words
        finally:
            kube.close()
        return
    from app import embedded

    configure_logging(level="ERROR", fmt="text")  # the cluster's machinery stays quiet
    try:
        running = embedded.start(exec_mode=args.exec_mode or "sim")
    except embedded.EmbeddedError as exc:
        raise CommandError(str(exc), exit_code=EXIT_FAILED) from None
    with running:
        kube = running.connect()
        try:
            run_cmd.ensure_namespaces(kube, {namespace})
            words = where.EMBEDDED_WORDS[args.exec_mode or "sim"]
            where.say_cluster("ui", words)
            print(
                f"zen-flow ui: the embedded cluster's kubeconfig: {running.kubeconfig} (apply "
                f"flows with: kubectl --kubeconfig {running.kubeconfig} apply -f FILE)",
                file=sys.stderr,
                flush=True,
            )
            yield kube, words
        finally:
            kube.close()


def _command(args: argparse.Namespace) -> int:
    if args.embedded and (args.kubeconfig or args.context):
        raise CommandError(
            "--embedded runs on a cluster of its own; leave out --kubeconfig/--context"
        )
    real = not where.uses_embedded(args)
    if real and args.exec_mode:
        raise CommandError("--exec applies to the embedded cluster only")
    if args.port < 0 or args.port > 65535:
        raise CommandError(f"--port {args.port}: must be 0 (any free port) to 65535")
    namespace = (
        args.namespace
        or (cluster.kubeconfig_namespace(args.kubeconfig, args.context) if real else None)
        or run_cmd.DEFAULT_NAMESPACE
    )
    if not server.is_loopback(args.host):
        print(
            f"zen-flow ui: warning: --host {args.host} is not loopback: anyone who can reach "
            "it and learns the token acts with your credentials",
            file=sys.stderr,
        )
    with _cluster(args, namespace) as (kube, words):
        place = server.Place(namespace=namespace, cluster=words, flow=args.flow)
        ui = server.UiServer(kube, place, host=args.host, port=args.port).start()
        try:
            print(f"zen-flow ui: open {ui.url}", flush=True)
            print("zen-flow ui: Ctrl-C to stop", file=sys.stderr, flush=True)
            if not args.no_browser and sys.stdout.isatty():
                webbrowser.open(ui.url)
            ui.wait()
        except KeyboardInterrupt:
            print("zen-flow ui: stopped", file=sys.stderr)
        finally:
            ui.stop()
    return EXIT_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="serve a web view of flows (graph, live status, logs, actions) on 127.0.0.1",
        description="Serve a web view of the JobFlows of a namespace on 127.0.0.1: the DAG as a "
        "graph updated live, step attempts and logs, Events, and approve/reject, retry, stop, "
        "terminate, suspend/resume. Uses the cluster of --kubeconfig/--context/KUBECONFIG, else "
        "(or with --embedded) an embedded one. The printed address carries a random token.",
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig of the cluster")
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument(
        "-n", "--namespace", metavar="NS", help="namespace (default: the context's, else default)"
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="serve an embedded cluster started in this process (the default when no "
        "--kubeconfig, --context or KUBECONFIG names a cluster)",
    )
    parser.add_argument(
        "--exec",
        dest="exec_mode",
        choices=("sim", "local"),
        default=None,
        help="embedded cluster only: sim simulates Jobs (default); local runs them as processes",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=0, help="port to listen on (default: any free port)"
    )
    parser.add_argument("--flow", metavar="NAME", help="open this flow's page")
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the address, open no browser"
    )
    parser.set_defaults(func=_command)
