"""kubesim's kubelet side: it runs a pod's containers (simulated, or as local processes by the
``LocalKubelet`` subclass in ``localprocess``) and reports their state in the pod's status.

Job pods are started by the Job controller (``runner``), which then reads their outcome; pods
no Job owns (``kubectl run``, a test's pod) are the kubelet's own from start to end
(``_sync_bare_pod``: restartPolicy, CrashLoopBackOff back-off). The state lives on the
``JobRunner`` instance that inherits these methods; the attributes below are what they use.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError
from kubesim.localexec import (
    MAX_TERMINATION_MESSAGE,
    log_tail,
)
from kubesim.podstatus import (
    WAITING_INIT,
    Outcome,
    init_container_status,
    pod_status,
    terminated_state,
)
from kubesim.resources import GVR
from kubesim.simspec import ANN_DURATION, AnnotationError, SimSpec
from kubesim.timestamps import now_rfc3339
from kubesim.workqueue import Key, Timers, WorkQueue

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)


PODS = GVR("", "v1", "pods")
PVCS = GVR("", "v1", "persistentvolumeclaims")
MAX_STEPS = 10_000  # bound on create/finish rounds in one reconcile (instant retries loop)
NODE_NAME = "kubesim-node"
DEFAULT_SCHEDULER = "default-scheduler"
# A bare pod's queue key: names of Jobs and pods never hold "/", so the prefix cannot clash.
POD_KEY_PREFIX = "pod/"
CRASH_BACKOFF_BASE = 10.0  # the kubelet's restart back-off: 10 s, doubling per restart ...
CRASH_BACKOFF_MAX = 300.0  # ... capped at 5 minutes


def is_bare_pod(pod: Mapping[str, Any]) -> bool:
    """A pod the kubelet side runs by itself: not one of a Job's (the Job runner runs those),
    and one the default scheduler would bind to kubesim's node (a pod naming another
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


@dataclass(eq=False)
class Run:
    """One active pod and its current container run."""

    key: Key
    job_uid: str
    pod: dict[str, Any]  # the pod as last written by us (metadata, spec, status)
    index: int | None
    started_at: str = ""
    container_started_at: str = ""
    restarts: int = 0
    last_state: dict[str, Any] | None = None
    due: float | None = None  # sim: monotonic time the container finishes
    planned: Outcome | None = None  # sim: outcome decided at start
    outcome: Outcome | None = None  # local: set by the process thread
    process: subprocess.Popen[bytes] | None = None
    gone: bool = False  # deleted from the Store behind our back
    cancelled: bool = False  # killed by us or by a deletion; no process may start after this
    # local mode, pods with init containers: state of each init container in the current run
    # (name -> state), restarts caused by each, and the one whose failure is ``outcome``
    init_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_restarts: dict[str, int] = field(default_factory=dict)
    init_last: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_init: str | None = None
    restart_due: float | None = None  # bare pods: monotonic time of the back-off's restart

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])


def run_init_containers(run: Run) -> list[Mapping[str, Any]]:
    """The init containers local mode runs (sidecars, restartPolicy Always, are not emulated)."""
    inits = (run.pod.get("spec") or {}).get("initContainers") or []
    return [c for c in inits if isinstance(c, Mapping) and c.get("restartPolicy") != "Always"]


def waiting_init_state() -> dict[str, Any]:
    return {"waiting": {"reason": WAITING_INIT}}


def run_container_id(run: Run) -> str:
    return f"kubesim://{run.uid[:8]}-{run.restarts}"


def first_container_name(run: Run) -> str:
    containers = (run.pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))


class Kubelet:
    """Container runs and pod status (see module docstring); ``JobRunner`` sets the state."""

    store: Store
    exec_mode: str
    work_dir: Path
    _lock: threading.Lock
    _queue: WorkQueue
    _timers: Timers
    _runs: dict[str, Run]  # pod uid -> run, for DELETED events
    _bare: dict[Key, Run]  # the runs of pods no Job owns
    _attempts: dict[tuple[str, str], int]  # (namespace, attempt key) -> runs
    _local: dict[threading.Thread, Run]  # local mode: the process thread of each run
    _stopping: bool

    def _start_container(self, run: Run, sim: SimSpec, *, bad_annotation: str = "") -> None:
        """Begin one container run (first run or an OnFailure restart)."""
        run.container_started_at = now_rfc3339()
        run.outcome = None
        namespace = run.key[0]
        if bad_annotation:
            run.planned, run.due = Outcome(2, bad_annotation), time.monotonic()
            return
        if self.exec_mode == "sim":
            with self._lock:
                akey = (namespace, sim.attempt_key)
                attempt = self._attempts[akey] = self._attempts.get(akey, 0) + 1
            run.planned = sim.outcome(attempt)
            run.due = time.monotonic() + sim.duration
            if sim.log:
                self._set_log(run, sim.log)
            if sim.duration > 0:
                self._write_running(run)
                self._timers.at(run.due, run.key)
            return
        run.due = None
        run.failed_init = None
        self._set_log(
            run, "", container=first_container_name(run)
        )  # a (re)started run's log starts empty
        inits = run_init_containers(run)
        if inits:
            # as a pod whose init containers have not run yet: Pending, everything waiting
            run.init_states = {str(c.get("name", "")): waiting_init_state() for c in inits}
            self._write_pod_status(run, "Pending", waiting_init_state())
        else:
            self._write_running(run)
        thread = threading.Thread(
            target=self._run_local,
            args=(run,),
            name=f"kubesim-pod-{run.name}",
            daemon=True,
        )
        with self._lock:
            if self._stopping:
                run.cancelled = True  # stop() has taken its snapshot: start nothing new
                return
            self._local[thread] = run
            # started under the lock, so stop() never sees (and joins) an unstarted thread
            thread.start()

    def _termination_message(
        self, run: Run, container: Mapping[str, Any], exit_code: int, message: str
    ) -> str:
        """``container``'s termination message as the kubelet reports it: at most 4 KiB, and
        with ``FallbackToLogsOnError`` a failed run's empty message is its log's tail."""
        message = message.encode()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "ignore")
        policy = container.get("terminationMessagePolicy")
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            name = str(container.get("name", ""))
            with contextlib.suppress(ApiError):
                message = log_tail(self.store.get_pod_log(run.key[0], run.name, container=name))
        return message

    def _write_running(self, run: Run) -> None:
        self._write_pod_status(run, "Running", {"running": {"startedAt": run.container_started_at}})

    def _write_pod_status(self, run: Run, phase: str, state: dict[str, Any]) -> None:
        now = now_rfc3339()
        containers = (run.pod.get("spec") or {}).get("containers") or []
        inits = run_init_containers(run) if self.exec_mode == "local" else []
        init_statuses = [
            init_container_status(
                c,
                run.init_states.get(str(c.get("name", "")), waiting_init_state()),
                restarts=run.init_restarts.get(str(c.get("name", "")), 0),
                last_state=run.init_last.get(str(c.get("name", ""))),
                container_id=f"{run_container_id(run)}-init{i}",
            )
            for i, c in enumerate(inits)
        ]
        run.pod["status"] = pod_status(
            containers,
            phase=phase,
            start_time=run.started_at,
            state=state,
            # the app container's own restarts: those caused by init containers are theirs
            restarts=run.restarts - sum(run.init_restarts.values()),
            last_state=run.last_state,
            container_id=run_container_id(run),
            now=now,
            init_statuses=init_statuses if inits else None,
        )
        body = dict(run.pod)
        body["metadata"] = {k: v for k, v in run.pod["metadata"].items() if k != "resourceVersion"}
        try:
            self.store.update(
                PODS,
                body,
                namespace=run.key[0],
                subresource="status",
                copy_result=False,
            )
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _set_log(
        self,
        run: Run,
        text: str,
        *,
        container: str | None = None,
        append: bool = False,
    ) -> bool:
        """Write one container's log (the pod's default container when None); False when the
        pod is gone (a run outliving its pod keeps draining its process, writing nothing)."""
        try:
            self.store.set_pod_log(run.key[0], run.name, text, container=container, append=append)
        except ApiError:
            return False
        return True

    def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        try:
            self.store.delete(PODS, str(meta.get("name")), namespace=meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _sync_bare_pod(self, key: Key) -> None:
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
            self.exec_mode == "sim"
            and policy == "Always"
            and not bad_annotation
            and ANN_DURATION not in annotations
        ):
            # a long-running server: it runs until the pod is deleted
            run.container_started_at = now_rfc3339()
            run.planned, run.due = None, None
            if sim.log:
                self._set_log(run, sim.log)
            self._write_running(run)
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
        with self._lock:
            outcome = run.outcome
        if outcome is None and run.planned is not None and run.due is not None:
            outcome = run.planned if run.due <= now_mono else None
        if outcome is None:
            return False
        run.planned, run.due, run.outcome = None, None, None
        containers = (run.pod.get("spec") or {}).get("containers") or [{}]
        message = self._termination_message(run, containers[0], outcome.exit_code, outcome.message)
        term = terminated_state(
            outcome.exit_code,
            message,
            started_at=run.container_started_at,
            finished_at=now_rfc3339(),
            container_id=run_container_id(run),
            reason=outcome.reason,
        )
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
            self._write_pod_status(run, "Running", {"waiting": waiting})
            self._timers.at(run.restart_due, key)
            return False
        self._write_pod_status(
            run,
            "Succeeded" if outcome.exit_code == 0 else "Failed",
            {"terminated": term},
        )
        self._drop_bare(key, run)
        return False

    def _drop_bare(self, key: Key, run: Run) -> None:
        self._bare.pop(key, None)
        with self._lock:
            self._runs.pop(run.uid, None)
        self._cancel(run)

    def _cancel(self, run: Run) -> None:
        """Kill the run's process group; a process not yet started never will be."""
        with self._lock:
            run.cancelled = True
            proc = run.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _run_local(self, run: Run) -> None:
        """Thread body of a local run: ``localprocess.LocalKubelet``'s."""
        raise NotImplementedError
