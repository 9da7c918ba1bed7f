"""kubesim's kubelet: it runs every pod bound to kubesim's node, through an executor (``sim``:
``simexec``, ``local``: ``localprocess``), and reports their state in the pod's status.

It owns the node's runs (pod uid -> ``podrun.Run``) and reacts to pod events: a deleted pod's
run is cancelled (its process killed) and the key that reconciles it enqueued. Pods no Job owns
(``kubectl run``, a test's pod) are its own from start to end (``sync_bare_pod``: restartPolicy,
CrashLoopBackOff back-off). A Job's pods are handed to it by the Job controller (``run_pod``);
the controller knows them by uid only and asks, in its own reconcile, what became of each
(``settle``: still active after an in-place ``OnFailure`` restart or in CrashLoopBackOff,
succeeded, failed, or gone, with the restart count; the terminal status is written here) and
whether it is ready (``is_ready``), so an instant ``sim`` Job still settles in one reconcile.
``release`` forgets and kills the runs of pods the controller stops; ``cancel_owned`` those of
a deleted Job.

``self._lock`` guards the run registry and is never held while calling the Store (Store
subscribers run under the Store's own lock); each run's own fields are guarded by ``Run.lock``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from kubesim.errors import ApiError
from kubesim.podrun import (
    NODE_NAME,
    PODS,
    Executor,
    Run,
    first_container_name,
    run_container_id,
    waiting_init_state,
)
from kubesim.podstatus import Outcome, terminated_state
from kubesim.podwrites import PodWriter
from kubesim.resources import GVR
from kubesim.simspec import ANN_DURATION, AnnotationError, SimSpec
from kubesim.timestamps import now_rfc3339
from kubesim.workqueue import Key, Timers

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

MAX_STEPS = 10_000  # bound on create/finish rounds in one reconcile (instant retries loop)
DEFAULT_SCHEDULER = "default-scheduler"
# A bare pod's queue key: names of Jobs and pods never hold "/", so the prefix cannot clash.
POD_KEY_PREFIX = "pod/"
CRASH_BACKOFF_BASE = 10.0  # the kubelet's restart back-off: 10 s, doubling per restart ...
CRASH_BACKOFF_MAX = 300.0  # ... capped at 5 minutes

# What ``settle`` saw happen to a Job's pod: still active (restarted, or waiting in
# CrashLoopBackOff), ended with its terminal phase, or deleted behind our back.
Settled = Literal["active", "succeeded", "failed", "gone"]


class PodReport(NamedTuple):
    """What ``settle`` reports of a Job's pod, as its status would show it: ``settled``, and
    its restart count (init containers' restarts included; 0 when gone)."""

    settled: Settled
    restarts: int


def is_bare_pod(pod: Mapping[str, Any]) -> bool:
    """A pod the kubelet runs by itself: not one of a Job's (the Job controller hands those
    over), and one the default scheduler would bind to kubesim's node (a pod naming another
    scheduler, or bound to another node, stays Pending as no scheduler or kubelet takes it)."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return False
    spec = pod.get("spec") or {}
    return spec.get("schedulerName") in (None, "", DEFAULT_SCHEDULER) and spec.get("nodeName") in (
        None,
        "",
        NODE_NAME,
    )


def bare_pod_key(pod: Mapping[str, Any]) -> Key:
    meta = pod.get("metadata") or {}
    return (str(meta.get("namespace", "")), POD_KEY_PREFIX + str(meta.get("name", "")))


def _restart_policy(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _pod_sim_spec(pod: Mapping[str, Any]) -> tuple[SimSpec, str]:
    """A bare pod's simulation spec from its own kubesim.io/ annotations (attempts counted per
    pod name unless kubesim.io/attempt-key says otherwise)."""
    name = str(pod["metadata"].get("name", ""))
    try:
        sim = SimSpec.from_annotations(pod["metadata"].get("annotations") or {}, {}, job_name=name)
    except AnnotationError as exc:
        return SimSpec(attempt_key=name), str(exc)
    return sim, ""


def _due_outcome(run: Run, now_mono: float) -> Outcome | None:
    """The run's outcome if its container has exited: recorded (local) or planned and due."""
    with run.lock:
        outcome = run.outcome
    if outcome is None and run.planned is not None and run.due is not None:
        outcome = run.planned if run.due <= now_mono else None
    return outcome


class Kubelet:
    """The node's pods (see module docstring)."""

    def __init__(
        self,
        store: Store,
        executor: Executor,
        writer: PodWriter,
        *,
        timers: Timers,
        enqueue: Callable[[Key], None],
    ) -> None:
        self.store = store
        self.executor = executor
        self._writer = writer
        self._timers = timers
        self._enqueue = enqueue
        self._lock = threading.Lock()
        self._runs: dict[str, Run] = {}  # pod uid -> run, for DELETED events
        self._bare: dict[Key, Run] = {}  # runs of pods no Job owns (touched by their key's worker)

    # -- events (called under the Store's lock: never block, never call the Store) -----------

    def on_event(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        if gvr.group != "" or gvr.resource != "pods":
            return
        if event_type == "ADDED":
            if is_bare_pod(obj):
                self._enqueue(bare_pod_key(obj))
        elif event_type == "DELETED":
            uid = str((obj.get("metadata") or {}).get("uid", ""))
            with self._lock:
                victim = self._runs.pop(uid, None)  # for a Job's pod, settle() reports "gone"
            if victim is not None:
                self.executor.cancel(victim)
                self._enqueue(victim.key)

    def resync(self) -> None:
        """Enqueue every bare pod in the Store (at start)."""
        for pod in self.store.list(PODS):
            if is_bare_pod(pod):
                self._enqueue(bare_pod_key(pod))

    def stop(self, timeout: float) -> None:
        """Kill every run and wait up to ``timeout`` seconds for the executor's processes."""
        self.executor.refuse_new()
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self.executor.cancel(run)
        self.executor.stop(timeout)

    # -- a Job's pods (called by the Job controller's worker for the pod's Job) -------------

    def run_pod(
        self,
        pod: dict[str, Any],
        sim: SimSpec,
        *,
        key: Key,
        job_uid: str,
        index: int | None,
        bad_annotation: str,
    ) -> bool:
        """Start the first container run of ``pod`` (just created by the Job controller, whose
        key ``key`` settles it); True when the run ended at once (an instant ``sim`` run)."""
        run = Run(key=key, job_uid=job_uid, pod=pod, index=index, started_at=now_rfc3339())
        with self._lock:
            self._runs[run.uid] = run
        self._start_container(run, sim, bad_annotation=bad_annotation)
        return run.due is not None and run.due <= time.monotonic()

    def is_ready(self, uid: str, now_mono: float) -> bool:
        """Whether the Job's ``ready`` count takes the pod as ready: a sim run not yet due, or
        any local run (init containers included, see RUNNER.md); False for a pod not here."""
        with self._lock:
            run = self._runs.get(uid)
        return run is not None and run.is_ready(now_mono)

    def settle(
        self,
        uid: str,
        sim: SimSpec,
        *,
        restart_policy: str,
        may_restart: Callable[[], bool],
    ) -> PodReport | None:
        """Act on the exit of a Job pod's container, if any (None: nothing happened). An exit
        that ``restart_policy`` OnFailure restarts in place counts as a restart; the pod then
        restarts unless ``may_restart()`` says one more is not allowed (the Job's backoffLimit:
        CrashLoopBackOff). Otherwise the pod's terminal status is written and the run forgotten.
        A pod no longer here was deleted behind the controller's back ("gone")."""
        with self._lock:
            run = self._runs.get(uid)
        if run is None:
            return PodReport("gone", 0)
        outcome = _due_outcome(run, time.monotonic())
        if outcome is None:
            return None
        if run.failed_init is not None:
            settled = self._init_failed(
                run, sim, run.failed_init, restart_policy=restart_policy, may_restart=may_restart
            )
            return PodReport(settled, run.restarts)
        exit_code = outcome.exit_code
        term = self._terminated(run, outcome)
        if exit_code != 0 and restart_policy == "OnFailure":
            # the kubelet restarts the container in the same pod; the Job controller
            # compares the restart count with backoffLimit (may_restart)
            allowed = may_restart()
            run.restarts += 1
            run.last_state = {"terminated": term}
            if allowed:
                self._start_container(run, sim)
            else:
                waiting = {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off restarting failed container {first_container_name(run)}",
                }
                self._writer.write_status(run, "Running", {"waiting": waiting})
                run.planned, run.due, run.outcome = None, None, None
            return PodReport("active", run.restarts)
        self._writer.write_status(
            run, "Succeeded" if exit_code == 0 else "Failed", {"terminated": term}
        )
        self._forget(run)
        return PodReport("succeeded" if exit_code == 0 else "failed", run.restarts)

    def release(self, uids: Iterable[str]) -> None:
        """Forget and kill the runs of pods the Job controller stops (before it deletes them,
        so the DELETED events are not taken for deletions behind its back)."""
        with self._lock:
            runs = [r for r in (self._runs.pop(uid, None) for uid in uids) if r is not None]
        for run in runs:
            self.executor.cancel(run)

    def cancel_owned(self, job_uid: str) -> None:
        """Kill the runs of a deleted Job's pods at once (the garbage collector deletes them)."""
        with self._lock:
            runs = [r for r in self._runs.values() if r.job_uid == job_uid]
        for run in runs:
            self.executor.cancel(run)

    def _init_failed(
        self,
        run: Run,
        sim: SimSpec,
        name: str,
        *,
        restart_policy: str,
        may_restart: Callable[[], bool],
    ) -> Settled:
        """An init container exited non-zero (local mode). restartPolicy Never: the pod fails
        without its app containers having run. OnFailure: counted as a restart of the pod's run
        (which starts again from the first init container), like a failed app container."""
        if restart_policy == "OnFailure":
            allowed = may_restart()
            run.restarts += 1
            run.init_restarts[name] = run.init_restarts.get(name, 0) + 1
            run.init_last[name] = {"terminated": run.init_states.get(name, {}).get("terminated")}
            if allowed:
                self._start_container(run, sim)
            else:
                run.init_states[name] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {name}",
                    }
                }
                self._writer.write_status(run, "Pending", waiting_init_state())
                run.planned, run.due, run.outcome, run.failed_init = None, None, None, None
            return "active"
        self._writer.write_status(run, "Failed", waiting_init_state())
        self._forget(run)
        return "failed"

    # -- container runs -----------------------------------------------------------------------

    def _start_container(self, run: Run, sim: SimSpec, *, bad_annotation: str = "") -> None:
        """Begin one container run (first run or a restart)."""
        run.container_started_at = now_rfc3339()
        run.outcome = None
        if bad_annotation:
            run.planned, run.due = Outcome(2, bad_annotation), time.monotonic()
            return
        self.executor.start(run, sim)

    def _terminated(self, run: Run, outcome: Outcome) -> dict[str, Any]:
        """The first app container's ``state.terminated`` for ``outcome``, ending now."""
        containers = (run.pod.get("spec") or {}).get("containers") or [{}]
        message = self._writer.termination_message(
            run, containers[0], outcome.exit_code, outcome.message
        )
        return terminated_state(
            outcome.exit_code,
            message,
            started_at=run.container_started_at,
            finished_at=now_rfc3339(),
            container_id=run_container_id(run),
            reason=outcome.reason,
        )

    def _forget(self, run: Run) -> None:
        with self._lock:
            self._runs.pop(run.uid, None)

    # -- bare pods (their own key's worker) ---------------------------------------------------

    def sync_bare_pod(self, key: Key) -> None:
        """Run a pod no Job owns (``kubectl run``, a test's pod) as the kubelet would: its
        restartPolicy (default Always) decides whether an exited container restarts (after the
        kubelet's back-off, CrashLoopBackOff meanwhile) or the pod ends Succeeded/Failed."""
        namespace, name = key[0], key[1][len(POD_KEY_PREFIX) :]
        try:
            pod = self.store.get(PODS, name, namespace=namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            pod = None
        run = self._bare.get(key)
        if run is not None and (pod is None or run.uid != pod["metadata"]["uid"]):
            self._drop_bare(key, run)
            run = None
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            if run is not None:
                self._drop_bare(key, run)
            return
        sim, bad_annotation = _pod_sim_spec(pod)
        if run is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            run = Run(key=key, job_uid="", pod=pod, index=None, started_at=now_rfc3339())
            self._bare[key] = run
            with self._lock:
                self._runs[run.uid] = run
            self._start_bare(run, sim, bad_annotation)
        for _ in range(MAX_STEPS):  # instant sim runs settle in one pass
            if not self._collect_bare(key, run, sim, bad_annotation):
                return

    def _start_bare(self, run: Run, sim: SimSpec, bad_annotation: str) -> None:
        run.restart_due = None
        policy = _restart_policy(run.pod)
        annotations = run.pod["metadata"].get("annotations") or {}
        if (
            self.executor.mode == "sim"
            and policy == "Always"
            and not bad_annotation
            and ANN_DURATION not in annotations
        ):
            # a long-running server: it runs until the pod is deleted
            run.container_started_at = now_rfc3339()
            run.planned, run.due = None, None
            if sim.log:
                self._writer.set_log(run, sim.log)
            self._writer.write_running(run)
            return
        self._start_container(run, sim, bad_annotation=bad_annotation)

    def _collect_bare(self, key: Key, run: Run, sim: SimSpec, bad_annotation: str) -> bool:
        """Act on the run's exit or due restart; True when another pass may do more."""
        now_mono = time.monotonic()
        if run.restart_due is not None:
            if now_mono < run.restart_due:
                return False
            self._start_bare(run, sim, bad_annotation)
            return True
        outcome = _due_outcome(run, now_mono)
        if outcome is None:
            return False
        run.planned, run.due, run.outcome = None, None, None
        term = self._terminated(run, outcome)
        policy = _restart_policy(run.pod)
        if policy == "Always" or (policy == "OnFailure" and outcome.exit_code != 0):
            run.restarts += 1
            run.last_state = {"terminated": term}
            delay = min(CRASH_BACKOFF_BASE * 2.0 ** (run.restarts - 1), CRASH_BACKOFF_MAX)
            run.restart_due = now_mono + delay
            waiting = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:g}s restarting failed container="
                f"{first_container_name(run)} pod={run.name}_{key[0]}({run.uid})",
            }
            self._writer.write_status(run, "Running", {"waiting": waiting})
            self._timers.at(run.restart_due, key)
            return False
        self._writer.write_status(
            run,
            "Succeeded" if outcome.exit_code == 0 else "Failed",
            {"terminated": term},
        )
        self._drop_bare(key, run)
        return False

    def _drop_bare(self, key: Key, run: Run) -> None:
        self._bare.pop(key, None)
        self._forget(run)
        self.executor.cancel(run)
