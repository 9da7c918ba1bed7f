"""`zen-flow run FILE... [--kubeconfig P | --context C] [--exec sim|local] [--timeout S] [-o json]
[-n NS]`: apply JobFlows, follow them to the end, exit with their outcome.

```
read + validate locally ──(problems)──> exit 2, nothing applied
target: embedded cluster (default; started in this process, --exec picks sim|local Jobs)
        or the cluster of --kubeconfig/--context (zen-flow must be installed there)
create every flow ──(webhook denial / name taken)──> exit 2
poll until every flow is Succeeded or Failed (or --timeout, or Ctrl-C):
   flows -> Display.update (rows / transitions); pods of each flow -> new log lines
summary; exit 0 all Succeeded, 1 any Failed, 3 timed out, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM: handled as Ctrl-C, see app.cli)
```
Polling, not watching: one GET per flow and one pod LIST per flow every ``POLL_INTERVAL`` is a
negligible load, survives any proxy or dropped watch, and the same loop then serves both the
rows and the logs. Logs are read per pod (one pod per attempt, since every attempt is its own
Job): the text already shown is remembered by length, so each poll prints only new complete
lines, and a finished pod's last partial line is printed once. A pod still Pending has no log.

API errors: one-shot requests (the install check, creates) are retried on 5xx/429; the follow
loop keeps polling through errors and gives up only after ``UNREACHABLE_GRACE`` seconds of them.

A flow that is created is never deleted by this command: on a real cluster it keeps running
after a timeout or Ctrl-C (we say so and how to follow it); the embedded cluster stops with the
command (we say the flow did not finish).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from app import documents, progress, where
from app.cli import CommandError, interrupt_exit
from app.cluster import (
    brief,
    check_installed,
    connect,
    kubeconfig_namespace,
    retrying,
    server_url,
    unauthorized,
)
from controller import kube as kube_mod
from jobflow import decoded, fanout, names, validation

log = logging.getLogger(__name__)

EXIT_SUCCEEDED: Final = 0
EXIT_FAILED: Final = 1
EXIT_REJECTED: Final = 2
EXIT_TIMEOUT: Final = 3
# Seconds between two observations: fast enough that a sub-second simulated step shows its
# transitions, slow enough to cost nothing on the API server.
POLL_INTERVAL: Final = 0.2
DEFAULT_NAMESPACE: Final = "default"
# Seconds the cluster may stay unreachable while we follow before `run` gives up (exit 1).
UNREACHABLE_GRACE: Final = 30.0
# Seconds a created flow may go without its first status from a controller (observedGeneration
# or an Accepted condition) before `run` says that nothing picks it up: a running controller
# writes it in its first pass, well under a second, or a few seconds on a loaded cluster.
NO_CONTROLLER_AFTER: Final = 10.0
_POD_TERMINAL: Final = frozenset({"Succeeded", "Failed"})
NAMESPACES: Final = kube_mod.Resource("", "v1", "namespaces", namespaced=False)


# -- reading and validating ------------------------------------------------------------------
@dataclass(frozen=True)
class Flow:
    body: dict[str, Any]
    label: str  # where it came from, for messages

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def name(self) -> str:
        meta = self.body["metadata"]
        return str(meta.get("name") or meta.get("generateName") or "?")


def load_flows(
    sources: Sequence[str], *, namespace: str, overrides: Mapping[str, str] | None = None
) -> tuple[list[Flow], list[str]]:
    """The JobFlows of ``sources`` (namespace filled in, ``overrides`` set as the values of
    the spec.parameters they name) and every problem found, as lines."""
    flows: list[Flow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], str] = {}
    used: set[str] = set()
    for source in sources:
        docs = documents.load(source)  # CommandError (exit 2) when unreadable
        if not docs:
            problems.append(f"{source}: no documents (empty file)")
        for doc in docs:
            if doc.parse_error is not None:
                problems.append(f"{doc.label}: {doc.parse_error}")
                continue
            if not doc.is_jobflow:
                problems.append(
                    f"{doc.label}: not a JobFlow: {doc.describe_kind()}; expected kind JobFlow"
                )
                continue
            # is_jobflow holds only for a mapping; mypy cannot see through the property.
            assert isinstance(doc.content, Mapping)
            body = _with_parameters(dict(doc.content), overrides or {}, used)
            meta = (
                dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}
            )
            if not meta.get("name") and meta.get("generateName"):
                # Validation wants a name; a generated one is checked with a stand-in suffix.
                checked = {**body, "metadata": {**meta, "name": f"{meta['generateName']}x"}}
            else:
                checked = body
            found = validation.validate(checked)
            for problem in found:
                where = f"{problem.path}: " if problem.path else ""
                problems.append(f"{doc.label}: {where}{problem.message}")
            if found:
                continue
            meta.setdefault("namespace", namespace)
            body["metadata"] = meta
            flow = Flow(body=body, label=doc.label)
            if meta.get("name"):
                key = (flow.namespace, flow.name)
                if key in seen:
                    problems.append(
                        f"{doc.label}: JobFlow {flow.namespace}/{flow.name} is also defined in "
                        f"{seen[key]}; give each flow its own name"
                    )
                    continue
                seen[key] = doc.label
            flows.append(flow)
    for name in sorted(set(overrides or {}) - used):
        problems.append(
            f"-p {name}: no JobFlow declares a parameter {name!r} (spec.parameters); check the name"
        )
    return flows, problems


def _with_parameters(
    body: dict[str, Any], overrides: Mapping[str, str], used: set[str]
) -> dict[str, Any]:
    """``body`` with the values of its declared spec.parameters that ``overrides`` names."""
    spec = body.get("spec")
    if not overrides or not isinstance(spec, dict) or not isinstance(spec.get("parameters"), list):
        return body
    declared = spec["parameters"]
    replaced = []
    for entry in declared:
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and name in overrides:
            used.add(name)
            entry = {**entry, "value": overrides[name]}
        replaced.append(entry)
    return {**body, "spec": {**spec, "parameters": replaced}}


# -- the cluster -----------------------------------------------------------------------------


def ensure_namespaces(kube: kube_mod.Kube, namespaces: set[str]) -> None:
    """Create missing namespaces: only for the embedded cluster, which this command owns."""
    for ns in sorted(namespaces):
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        with contextlib.suppress(kube_mod.AlreadyExists):
            retrying(functools.partial(kube.create, NAMESPACES, None, body))


def apply(kube: kube_mod.Kube, flow: Flow) -> tuple[str, str]:
    """Create ``flow``; returns (namespace, name) as created. Rejections are CommandErrors."""
    ns = flow.namespace
    tries = 0

    def create() -> dict[str, Any]:
        nonlocal tries
        tries += 1
        try:
            return kube.create(kube_mod.JOBFLOWS, ns, flow.body)
        except kube_mod.AlreadyExists:
            if tries > 1 and flow.body["metadata"].get("name"):
                # our first create answered 5xx but was stored: the flow is ours
                return kube.get(kube_mod.JOBFLOWS, ns, flow.body["metadata"]["name"])
            raise

    try:
        created = retrying(create)
    except kube_mod.AlreadyExists:
        raise CommandError(
            f"{flow.label}: JobFlow {ns}/{flow.name} already exists; delete it first "
            f"(kubectl delete jobflow {flow.name} -n {ns}) or use metadata.generateName",
            exit_code=EXIT_REJECTED,
        ) from None
    except (kube_mod.Invalid, kube_mod.Forbidden) as exc:
        if exc.code == 401:
            raise unauthorized(kube) from None
        raise CommandError(
            f"{flow.label}: the cluster rejected JobFlow {ns}/{flow.name}: {exc}",
            exit_code=EXIT_REJECTED,
        ) from None
    except kube_mod.NotFound:
        # The user named a namespace that is not there: rejected (exit 2), nothing applied.
        raise CommandError(
            f"{flow.label}: cannot create JobFlow {ns}/{flow.name}: namespace {ns} does not "
            f"exist; create it first (kubectl create namespace {ns}) or pick another with -n",
            exit_code=EXIT_REJECTED,
        ) from None
    except kube_mod.ApiError as exc:
        raise CommandError(
            f"{flow.label}: cannot create JobFlow {ns}/{flow.name} at {server_url(kube)}: "
            f"{brief(exc)}",
            exit_code=EXIT_FAILED,
        ) from None
    meta = created.get("metadata") or {}
    return str(meta.get("namespace") or ns), str(meta.get("name") or flow.name)


# -- following -------------------------------------------------------------------------------
@dataclass
class _PodLog:
    shown: int = 0  # characters of the log already printed
    done: bool = False


@dataclass
class Follower:
    """Observes the flows and feeds the display; ``poll()`` is one observation."""

    kube: kube_mod.Kube
    keys: list[tuple[str, str]]  # (namespace, name)
    display: progress.Display
    approve_hint: str = ""  # extra flags for the approve command shown to the user
    show_logs: bool = True
    # Say once when no controller has picked the flows up after NO_CONTROLLER_AFTER (a real
    # cluster with the CRD but no zen-flow running; the embedded one runs its own controller).
    watch_controller: bool = False
    # Only this step's pods (`zen-flow logs FLOW STEP`), and the order pods are read in within
    # one poll: creation order, then step order (`run`); step order (`logs`, `watch`).
    step: str | None = None
    by_step: bool = False
    flows: list[dict[str, Any]] = field(default_factory=list)
    _pods: dict[str, _PodLog] = field(default_factory=dict)
    _hinted: set[tuple[str, str]] = field(default_factory=set)
    _since: float = field(default_factory=time.monotonic)
    _said_unclaimed: bool = False

    @property
    def multi(self) -> bool:
        return len(self.keys) > 1

    def poll(self) -> list[dict[str, Any]]:
        flows: list[dict[str, Any]] = []
        for ns, name in self.keys:
            try:
                flows.append(self.kube.get(kube_mod.JOBFLOWS, ns, name))
            except kube_mod.NotFound:
                raise CommandError(
                    f"JobFlow {ns}/{name} was deleted while it ran", exit_code=EXIT_FAILED
                ) from None
        self.flows = flows
        # Rows (transitions) first, then the logs: "fetch: Running" reads before its output.
        self.display.update(flows)
        self._say_if_unclaimed()
        for (ns, name), flow in zip(self.keys, flows, strict=True):
            self._hint_approvals(ns, flow)
            self._follow_logs(ns, name)
        return flows

    def _say_if_unclaimed(self) -> None:
        """One line, once, if a flow still has no status from a controller after
        NO_CONTROLLER_AFTER seconds; following goes on (--timeout still applies)."""
        if not self.watch_controller or self._said_unclaimed:
            return
        if time.monotonic() - self._since < NO_CONTROLLER_AFTER:
            return
        waiting = [
            f"{ns}/{name}"
            for (ns, name), flow in zip(self.keys, self.flows, strict=True)
            if not _claimed(flow)
        ]
        if not waiting:
            return
        self._said_unclaimed = True
        print(
            f"zen-flow run: no controller has picked up JobFlow {', '.join(waiting)} after "
            f"{NO_CONTROLLER_AFTER:g} s: is zen-flow running (kubectl get pods -A -l "
            "app.kubernetes.io/name=zen-flow)? Still waiting.",
            file=sys.stderr,
            flush=True,
        )

    @property
    def finished(self) -> bool:
        return bool(self.flows) and all(
            progress.flow_phase(f) in progress.TERMINAL_FLOW_PHASES for f in self.flows
        )

    def _prefix(self, flow: str, labels: Mapping[str, str]) -> str:
        step = labels.get(names.LABEL_STEP, "?")
        item = labels.get(fanout.LABEL_ITEM)
        if item is not None:
            step = fanout.item_key(step, int(item) if item.isdigit() else 0)  # step[3]
        attempt = labels.get(names.LABEL_ATTEMPT, "0")
        label = f"{flow}/{step}" if self.multi else step
        return label if attempt in ("", "0") else f"{label}#{int(attempt) + 1}"

    def _follow_logs(self, ns: str, name: str) -> None:
        if not self.show_logs:
            return
        selector = f"{names.LABEL_FLOW}={names.label_value(name)}"
        if self.step is not None:
            selector += f",{names.LABEL_STEP}={self.step}"
        try:
            pods = self.kube.list_all(kube_mod.PODS, ns, label_selector=selector)["items"]
        except kube_mod.Forbidden as exc:
            # RBAC may allow JobFlows but not pods: follow the flow without its logs.
            self.show_logs = False
            self.display.note(f"not showing step logs: listing pods in {ns} is forbidden ({exc})")
            return
        flow = next((f for f in self.flows if (f.get("metadata") or {}).get("name") == name), {})
        pods.sort(key=pod_order(flow, by_step=self.by_step))
        for pod in pods:
            meta = pod.get("metadata") or {}
            state = self._pods.setdefault(str(meta.get("uid") or meta.get("name")), _PodLog())
            phase = (pod.get("status") or {}).get("phase")
            if state.done or phase not in ("Running", *_POD_TERMINAL):
                continue
            try:
                text = self.kube.pod_log(ns, str(meta.get("name")))
            except kube_mod.NotFound:
                state.done = True  # deleted (step timeout, TTL): nothing more to read
                continue
            except kube_mod.ApiError as exc:
                log.debug(
                    "pod log not readable yet", extra={"pod": meta.get("name"), "error": str(exc)}
                )
                continue
            new = text[state.shown :]
            if phase in _POD_TERMINAL:
                state.done = True
            else:
                new = new[: new.rfind("\n") + 1]  # hold back a partial line until it ends
            state.shown += len(new)
            prefix = self._prefix(name, meta.get("labels") or {})
            for line in new.splitlines():
                self.display.log(prefix, line)

    def _hint_approvals(self, ns: str, flow: Mapping[str, Any]) -> None:
        for row in progress.step_rows(flow):
            if row.phase != "PendingApproval" or (row.flow, row.step) in self._hinted:
                continue
            self._hinted.add((row.flow, row.step))
            ns_flag = f" -n {ns}" if ns != DEFAULT_NAMESPACE else ""
            self.display.note(
                f"{row.flow}/{row.step} waits for approval; approve with: zen-flow approve "
                f"{row.flow} {row.step}{ns_flag}{self.approve_hint}  (or add --reject)"
            )


def pod_order(
    flow: Mapping[str, Any], *, by_step: bool
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """The key pods' logs are read in: step order (spec order, then attempt) with ``by_step``,
    else creation time first (timestamps have one-second precision: step order breaks ties)."""
    spec = flow.get("spec") or {}
    spec_steps = decoded.items(spec.get("steps")) + decoded.items(spec.get("finally"))
    rank = {s.get("name"): i for i, s in enumerate(spec_steps)}

    def key(pod: Mapping[str, Any]) -> tuple[Any, ...]:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        attempt = str(labels.get(names.LABEL_ATTEMPT, "0"))
        in_flow = (
            rank.get(labels.get(names.LABEL_STEP), len(rank)),
            int(attempt) if attempt.isdigit() else 0,
        )
        created = str(meta.get("creationTimestamp") or "")
        name = str(meta.get("name"))
        return (*in_flow, created, name) if by_step else (created, *in_flow, name)

    return key


def _claimed(flow: Mapping[str, Any]) -> bool:
    """A controller has seen this flow: it wrote observedGeneration or an Accepted condition."""
    status = flow.get("status")
    if not isinstance(status, Mapping):
        return False
    if status.get("observedGeneration") is not None:
        return True
    conditions = status.get("conditions")
    return isinstance(conditions, list) and any(
        isinstance(c, Mapping) and c.get("type") == "Accepted" for c in conditions
    )


def follow(follower: Follower, *, timeout: float | None) -> bool:
    """Poll until every flow finished (True) or ``timeout`` seconds passed (False)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    failing_since: float | None = None
    while True:
        try:
            follower.poll()
            if follower.finished:
                follower.poll()  # the last log lines of pods that ended with the flow
                return True
            failing_since = None
        except kube_mod.Transient:
            # A restarting API server or a dropped connection is not the flow's outcome: keep
            # following, and give up only when the cluster stays unreachable.
            now = time.monotonic()
            failing_since = failing_since or now
            if now - failing_since > UNREACHABLE_GRACE:
                raise
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)


# -- the command -----------------------------------------------------------------------------
@contextlib.contextmanager
def _target(args: argparse.Namespace, namespace: str) -> Iterator[tuple[kube_mod.Kube, Any]]:
    """(client, embedded cluster or None) for the run; everything is closed on exit."""
    if not where.uses_embedded(args):
        kube = connect(args.kubeconfig, args.context)
        try:
            check_installed(kube, namespace)
            where.say_cluster(
                "run", where.real_cluster_words(args.kubeconfig, args.context, server_url(kube))
            )
            yield kube, None
        finally:
            kube.close()
        return
    from app import embedded  # imported here: a run against a real cluster never loads kubesim

    try:
        cluster = embedded.start(exec_mode=args.exec_mode or "sim")
    except embedded.EmbeddedError as exc:
        raise CommandError(str(exc), exit_code=EXIT_FAILED) from None
    with cluster:
        kube = cluster.connect()
        where.say_cluster("run", where.EMBEDDED_WORDS[args.exec_mode or "sim"])
        try:
            yield kube, cluster
        finally:
            kube.close()


def _quiet_logging() -> None:
    # The embedded cluster's servers and controller log to the root logger; `run` shows the
    # flows, not its machinery. Errors still come through (ZEN_FLOW_DEBUG=1 shows everything).
    from app.logging import configure

    debug = os.environ.get("ZEN_FLOW_DEBUG") == "1"
    configure(level="DEBUG" if debug else "ERROR", fmt="text")


def _print_json(flows: Sequence[Mapping[str, Any]]) -> None:
    if len(flows) == 1:
        print(json.dumps(flows[0], indent=2))
    else:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(flows)}, indent=2))


def _command(args: argparse.Namespace) -> int:
    if args.embedded and (args.kubeconfig or args.context):
        raise CommandError(
            "--embedded runs on a cluster of its own; leave out --kubeconfig/--context"
        )
    timeout = where.duration(args.timeout)
    real = not where.uses_embedded(args)
    if real and args.exec_mode:
        why = "" if args.kubeconfig or args.context else " (KUBECONFIG is set: add --embedded)"
        raise CommandError(
            "--exec applies to the embedded cluster only; a real cluster runs its Jobs itself" + why
        )
    namespace = (
        args.namespace
        or (kubeconfig_namespace(args.kubeconfig, args.context) if real else None)
        or DEFAULT_NAMESPACE
    )
    flows, problems = load_flows(
        args.files, namespace=namespace, overrides=dict(args.parameters or [])
    )
    if problems:
        for line in problems:
            print(line, file=sys.stderr)
        raise CommandError(
            f"{len(problems)} problem(s) found; nothing was applied", exit_code=EXIT_REJECTED
        )
    _quiet_logging()
    display = progress.choose(output=args.output)
    try:
        with _target(args, namespace) as (kube, cluster), contextlib.ExitStack() as stack:
            if cluster is not None:
                ensure_namespaces(kube, {flow.namespace for flow in flows})
            keys: list[tuple[str, str]] = []
            try:
                for flow in flows:
                    keys.append(apply(kube, flow))
                if args.ui:
                    stack.callback(_open_ui(args, cluster, keys[0]).stop)
                follower = Follower(
                    kube,
                    keys,
                    display,
                    approve_hint=_approve_hint(args, cluster),
                    watch_controller=cluster is None,
                )
                done = follow(follower, timeout=timeout)
            except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (app.cli.Terminated)
                if not keys:
                    raise  # nothing applied yet: app.cli says "interrupted" / "terminated"
                display.close()
                return _say_interrupted(exc, keys, embedded=cluster is not None)
            except kube_mod.ApiError as exc:
                raise _lost(kube, exc) from None
            display.summary(follower.flows)
            if args.logs_dir:
                from app import kept_logs

                kept_logs.save(kube, keys, args.logs_dir)
            if args.output == "json":
                _print_json(follower.flows)
            if not done:
                _say_timed_out(follower.flows, timeout, embedded=cluster is not None)
                return EXIT_TIMEOUT
            failed = any(progress.flow_phase(f) != "Succeeded" for f in follower.flows)
            return EXIT_FAILED if failed else EXIT_SUCCEEDED
    finally:
        display.close()


def _open_ui(args: argparse.Namespace, cluster: Any, key: tuple[str, str]) -> Any:
    """`zen-flow ui` on the run's cluster, showing its first flow (app.ui_launch)."""
    from app import ui_launch

    kubeconfig = cluster.kubeconfig if cluster is not None else args.kubeconfig
    return ui_launch.UiProcess(kubeconfig, args.context, key[0], key[1])


def _approve_hint(args: argparse.Namespace, cluster: Any) -> str:
    """The flags `zen-flow approve` needs to reach the cluster this run uses."""
    hint = ""
    if cluster is not None:
        hint = f" --kubeconfig {cluster.kubeconfig}"
    elif args.kubeconfig:
        hint = f" --kubeconfig {args.kubeconfig}"
    if args.context:
        hint += f" --context {args.context}"
    return hint


def _lost(kube: kube_mod.Kube, exc: kube_mod.ApiError) -> CommandError:
    """The cluster stopped answering (or stopped accepting us) while we followed."""
    if exc.code == 401:
        return unauthorized(kube)
    return CommandError(
        f"lost the cluster at {server_url(kube)}: {brief(exc)}", exit_code=EXIT_FAILED
    )


def _say_interrupted(
    exc: KeyboardInterrupt, keys: Sequence[tuple[str, str]], *, embedded: bool
) -> int:
    """One line for Ctrl-C or SIGTERM once flows exist; returns the exit code (130 or 143).
    The embedded cluster stops (and its temporary directories go) as ``_target`` exits."""
    said, code = interrupt_exit(exc)
    listed = ", ".join(f"{ns}/{name}" for ns, name in keys)
    if embedded:
        print(
            f"zen-flow run: {said}; JobFlow {listed} did not finish (the embedded cluster "
            "stopped with this command)",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"zen-flow run: {said}; JobFlow {listed} keeps running in the cluster "
            f"(follow it with: kubectl get jobflow -n {keys[0][0]} -w)",
            file=sys.stderr,
            flush=True,
        )
    return code


def _say_timed_out(
    flows: Sequence[Mapping[str, Any]], timeout: float | None, *, embedded: bool
) -> None:
    running = [
        f"{f['metadata'].get('name')} ({progress.flow_phase(f)})"
        for f in flows
        if progress.flow_phase(f) not in progress.TERMINAL_FLOW_PHASES
    ]
    place = (
        "the embedded cluster stopped with this command"
        if embedded
        else "it keeps running in the cluster"
    )
    print(
        f"zen-flow run: --timeout {timeout or 0:g}s reached; JobFlow {', '.join(running)} did "
        f"not finish ({place})",
        file=sys.stderr,
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "run",
        help="apply JobFlows and follow them to the end (KUBECONFIG's cluster, else embedded)",
        description="Validate, apply and follow JobFlows: a row per step, each step's logs "
        "prefixed by its name, a summary. Without --kubeconfig/--context the flows run on an "
        "embedded cluster started in this process. Exit 0: all Succeeded; 1: a flow Failed "
        "(or the cluster could not be used); 2: rejected (invalid, or denied by the cluster); "
        "3: --timeout reached; 130: interrupted (Ctrl-C); 143: terminated (SIGTERM).",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="manifest file, or - for stdin")
    parser.add_argument(
        "--kubeconfig", metavar="PATH", help="run on this cluster (zen-flow installed there)"
    )
    parser.add_argument(
        "--context", metavar="NAME", help="kubeconfig context of the cluster to run on"
    )
    parser.add_argument(
        "--exec",
        dest="exec_mode",
        choices=("sim", "local"),
        default=None,
        help="embedded cluster only: sim simulates Jobs from kubesim.io/ annotations "
        "(default); local runs each container's command as a local process",
    )
    parser.add_argument(
        "--embedded",
        action="store_true",
        help="run on an embedded cluster even when KUBECONFIG is set (the default when no "
        "--kubeconfig, --context or KUBECONFIG names a cluster)",
    )
    parser.add_argument(
        "--timeout",
        metavar="DURATION",
        help="stop following after DURATION (90s, 10m, 1h30m, or seconds; exit 3)",
    )
    parser.add_argument(
        "--logs-dir",
        metavar="DIR",
        help="when the run ends, keep every step's log in DIR/<flow>/<step>-<attempt>.log (an "
        "embedded cluster's logs go with it)",
    )
    parser.add_argument(
        "--ui",
        action="store_true",
        help="also serve the web view (zen-flow ui) of the run's first flow while it runs; "
        "the address to open is printed",
    )
    where.add_parameter_flag(
        parser,
        "set a flow parameter (spec.parameters) of the flows that declare it (repeatable)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text: live progress and logs (default); json: only the final JobFlows as JSON",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        metavar="NS",
        help="namespace of flows that name none (default: the context's, else default)",
    )
    parser.set_defaults(func=_command)
