"""The Job runner: kubesim's Job controller and kubelet in one.

Its pure parts live beside it: ``jobcontrol`` (the Job controller's decisions), ``podstatus``
(what the kubelet reports), ``simspec`` (``sim`` mode's annotations), ``localexec`` (how a
container becomes a local process) and ``workqueue`` (keys and timers); this module holds the
stateful loop that ties them to the Store.

For every batch/v1 Job in the Store it creates pods named ``<job>-<5 chars>`` (labels
``job-name``, ``controller-uid``, ``batch.kubernetes.io/job-name``,
``batch.kubernetes.io/controller-uid`` plus the template's; a controller ownerReference to the Job),
"runs" them and writes pod and Job status the way Kubernetes 1.31+ does (``startTime``,
``active``/``succeeded``/``failed``/``ready``, conditions ``SuccessCriteriaMet`` + ``Complete``
or ``FailureTarget`` + ``Failed`` with reasons ``CompletionsReached``, ``BackoffLimitExceeded``,
``DeadlineExceeded``; ``Suspended`` with ``JobSuspended``/``JobResumed``; ``completionTime``).

Two execution modes (chosen per server):

* ``sim`` (default): the outcome of each container run comes from annotations on the Job or its
  pod template (``kubesim.io/duration``, ``exit-code``, ``fail-attempts``, ``attempt-key``,
  ``log``, ``termination-message``...; see RUNNER.md). A run with duration 0 finishes inside the
  same reconcile that created its pod, so an instant Job costs three Store writes (pod create,
  pod status, Job status) and no thread; longer runs sit in one timer heap.
* ``local`` (opt-in): the init containers, then the first container's command + args run as
  local processes (each in its own session, cwd a per-pod temp dir shared by them, env from
  ``env[].value``), stdout+stderr of each stream into its own container log, the exit code
  becomes ``state.terminated.exitCode`` and what the process writes to its termination message
  file becomes ``state.terminated.message``; init containers report ``initContainerStatuses``
  and one that fails ends the run there. One thread per running pod.

Design and invariants:

* Level-triggered: Store events only enqueue a key ``(namespace, job name)``; a small pool of
  workers reconciles keys, and one key is never reconciled by two workers at once (the queue has
  the dirty/processing sets of client-go's workqueue). Timers and process threads never touch
  Job state; they record an outcome and enqueue the key.
* ``self._lock`` guards the in-memory run bookkeeping and is never held while calling the Store,
  because Store subscribers run under the Store's own lock (a lock-order inversion otherwise).
* Counts (succeeded/failed) live in memory per Job uid, seeded from ``job.status`` when the runner
  first meets a Job, so a restarted server continues from what it had written.
* Pods the runner deletes are forgotten *before* the delete call, so their DELETED event is not
  mistaken for a pod deleted by a user (which counts as a failure and gets a replacement, as in
  Kubernetes with pod-failure tracking).
* Deleting a pod or its Job kills the local process at once (SIGKILL to its process group);
  every process start checks ``run.cancelled`` under ``self._lock``, so nothing starts after.
* The pod thread writes pod status only before its outcome is recorded (init container
  transitions); workers write it only before the thread starts or after the outcome, so the
  two never race on ``run.pod``.

Simplifications: no Events are written; pods go Running without a Pending phase; pod
re-creation after a failure has no exponential delay unless ``kubesim.io/pod-backoff`` asks for
one (Kubernetes waits 10 s, 20 s, ...); only the first app container is run (others mirror it);
podFailurePolicy, successPolicy, backoffLimitPerIndex and podReplacementPolicy are ignored.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError
from kubesim.jobcontrol import (
    Decision,
    JobSpec,
    decide,
    finish_time,
    finished_condition,
    format_indexes,
    parse_indexes,
    pod_backoff_delay,
    restarts_exceed,
    set_condition,
)
from kubesim.localexec import (
    MAX_TERMINATION_MESSAGE,
    local_command,
    local_mounts,
    log_tail,
)
from kubesim.localexec import expand_vars as expand_vars  # callers of kubesim.runner.expand_vars
from kubesim.podstatus import (
    EXIT_START_ERROR,
    REASON_START_ERROR,
    WAITING_INIT,
    Outcome,
    init_container_status,
    pod_status,
    start_error,
    terminated_state,
)
from kubesim.resources import GVR
from kubesim.simspec import ANN_DURATION, AnnotationError, SimSpec
from kubesim.timestamps import now_rfc3339, parse_rfc3339
from kubesim.workqueue import Key, Timers, WorkQueue

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

JOBS = GVR("batch", "v1", "jobs")
PODS = GVR("", "v1", "pods")
PVCS = GVR("", "v1", "persistentvolumeclaims")
LOCAL_STOP_TIMEOUT = 5.0  # seconds stop() waits for local-mode process threads


LABEL_JOB_NAME = "job-name"
LABEL_CONTROLLER_UID = "controller-uid"
LABEL_BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
POD_NAME_MAX = 63
GENERATE_SUFFIX = 5  # the store appends 5 random characters to generateName
REQUEUE_AFTER_ERROR = 1.0  # seconds before a reconcile that raised is retried
MAX_STEPS = 10_000  # bound on create/finish rounds in one reconcile (instant retries loop)
NODE_NAME = "kubesim-node"
DEFAULT_SCHEDULER = "default-scheduler"


# A bare pod's queue key: names of Jobs and pods never hold "/", so the prefix cannot clash.
POD_KEY_PREFIX = "pod/"
CRASH_BACKOFF_BASE = 10.0  # the kubelet's restart back-off: 10 s, doubling per restart ...
CRASH_BACKOFF_MAX = 300.0  # ... capped at 5 minutes


# --------------------------------------------------------------------------------------------
# Pure parts: spec parsing, simulated outcomes, decisions, status documents


def _sim_spec(key: Key, job: dict[str, Any]) -> tuple[SimSpec, str]:
    """The Job's simulation spec, and the error of a bad kubesim.io/ annotation ("" if none:
    a Job with one gets the defaults and its pods fail with that message)."""
    template_meta = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    try:
        sim = SimSpec.from_annotations(
            job["metadata"].get("annotations") or {},
            template_meta.get("annotations") or {},
            job_name=key[1],
        )
    except AnnotationError as exc:
        return SimSpec(attempt_key=key[1]), str(exc)
    return sim, ""


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


def _deadline_passed(spec: JobSpec, st: _JobState) -> bool:
    """activeDeadlineSeconds has passed since the (unsuspended) Job started."""
    return (
        spec.active_deadline is not None
        and st.start_wall is not None
        and not spec.suspend
        and time.time() >= st.start_wall + spec.active_deadline
    )


# --------------------------------------------------------------------------------------------
# Work queue and timers


# --------------------------------------------------------------------------------------------
# In-memory state


@dataclass(eq=False)
class _Run:
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


@dataclass(eq=False)
class _JobState:
    uid: str
    succeeded: int = 0
    failed: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    runs: dict[str, _Run] = field(default_factory=dict)  # pod uid -> active run
    start_wall: float | None = None
    last_failure: float = 0.0  # monotonic time of the last pod failure (for pod-backoff)
    deadline_armed: bool = False
    finished: bool = False


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner:
    """Runs the Jobs of one Store (see module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        exec_mode: str = "sim",
        work_dir: Path,
        workers: int = 2,
    ) -> None:
        if exec_mode not in ("sim", "local"):
            raise ValueError(f"exec_mode must be 'sim' or 'local', got {exec_mode!r}")
        self.store = store
        self.exec_mode = exec_mode
        self.work_dir = Path(work_dir)
        self._n_workers = max(int(workers), 1)
        self._queue = WorkQueue()
        self._timers = Timers(self._queue.add)
        self._lock = threading.Lock()
        self._jobs: dict[Key, _JobState] = {}
        self._runs: dict[str, _Run] = {}  # pod uid -> run, for DELETED events
        self._bare: dict[Key, _Run] = {}  # the kubelet's runs of pods no Job owns
        self._generations: dict[str, Any] = {}  # job uid -> generation last reconciled
        self._attempts: dict[tuple[str, str], int] = {}  # (namespace, attempt key) -> runs
        self._threads: list[threading.Thread] = []
        # local mode: the process thread of each run (pod threads), so stop() can wait for them
        self._local: dict[threading.Thread, _Run] = {}
        self._stopping = False  # set once by stop(); no process starts after it (under _lock)
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._unsubscribe = self.store.subscribe(self._on_event)
        self._timers.start()
        for i in range(self._n_workers):
            t = threading.Thread(target=self._work, name=f"kubesim-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for job in self.store.list(JOBS):
            meta = job.get("metadata") or {}
            self._queue.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
        for pod in self.store.list(PODS):
            if is_bare_pod(pod):
                self._queue.add(bare_pod_key(pod))

    def stop(self) -> None:
        """Stop reconciling, kill every local process and wait (bounded) for its thread.

        The caller may delete the work directory right after this returns, so a pod thread
        still running then could only fail noisily; it is made quiet instead (``_stopping``).
        A thread can outlive the bound only if its process left a child outside the process
        group holding the output pipe open.
        """
        with self._lock:
            self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._queue.close()
        self._timers.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        with self._lock:
            runs = {*self._runs.values(), *self._local.values()}
        for run in runs:
            self._cancel(run)
        deadline = time.monotonic() + LOCAL_STOP_TIMEOUT
        with self._lock:
            threads = list(self._local)
        for t in threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        with self._lock:
            left = [t.name for t in self._local]
        if left:
            log.warning(
                "kubesim local runs still draining at stop",
                extra={"threads": left, "timeout": LOCAL_STOP_TIMEOUT},
            )

    def idle(self) -> bool:
        """True when no reconcile is queued or running (timers may still be pending)."""
        return self._queue.idle()

    # -- events (called under the Store's lock: never block, never call the Store) -----------

    def _on_event(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if gvr.group == "batch" and gvr.resource == "jobs":
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            uid = str(meta.get("uid", ""))
            if event_type == "MODIFIED":
                with self._lock:
                    seen = self._generations.get(uid)
                # our own status writes do not change the generation: nothing to do for them
                if (
                    seen is not None
                    and seen == meta.get("generation")
                    and not meta.get("deletionTimestamp")
                ):
                    return
            elif event_type == "DELETED":
                with self._lock:
                    runs = [r for r in self._runs.values() if r.job_uid == uid]
                    self._generations.pop(uid, None)
                for run in runs:
                    self._cancel(run)
            self._queue.add(key)
        elif gvr.group == "" and gvr.resource == "pods" and event_type == "ADDED":
            if is_bare_pod(obj):
                self._queue.add(bare_pod_key(obj))
        elif gvr.group == "" and gvr.resource == "pods" and event_type == "DELETED":
            with self._lock:
                victim = self._runs.pop(str(meta.get("uid", "")), None)
                if victim is not None:
                    victim.gone = True
            if victim is not None:
                self._cancel(victim)
                self._queue.add(victim.key)

    # -- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            try:
                self._sync(key)
            except Exception:  # thread boundary: log once, retry the key later
                log.exception("job reconcile failed", extra={"namespace": key[0], "job": key[1]})
                self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            finally:
                self._queue.done(key)

    def _sync(self, key: Key) -> None:
        if key[1].startswith(POD_KEY_PREFIX):
            self._sync_bare_pod(key)
            return
        namespace, name = key
        try:
            job = self.store.get(JOBS, name, namespace=namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            self._forget(key)
            return
        meta = job["metadata"]
        uid = str(meta["uid"])
        st = self._jobs.get(key)
        if st is None or st.uid != uid:
            if st is not None:
                self._forget(key)
            st = self._adopt(job)
            self._jobs[key] = st
        with self._lock:
            self._generations[uid] = meta.get("generation")
        if meta.get("deletionTimestamp"):
            self._stop_runs(st, delete=False)
            return
        if not st.finished and finished_condition(job.get("status") or {}):
            st.finished = True
            self._stop_runs(st, delete=True)
        if not st.finished:
            self._reconcile(key, job, st)
        if st.finished:
            self._expire(key, job)

    def _expire(self, key: Key, job: dict[str, Any]) -> None:
        """The TTL-after-finished controller: delete a finished Job once its TTL has passed."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished_at = finish_time(job.get("status") or {})
        if finished_at is None:
            return
        wait = finished_at + float(ttl) - time.time()
        if wait > 0:
            self._timers.at(time.monotonic() + wait, key)
            return
        try:
            self.store.delete(JOBS, key[1], namespace=key[0], propagation="Background")
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _adopt(self, job: dict[str, Any]) -> _JobState:
        """State for a Job first seen: counts from its status; pods left running by a previous
        server are deleted and replaced (their processes did not survive)."""
        status = job.get("status") or {}
        meta = job["metadata"]
        st = _JobState(
            uid=str(meta["uid"]),
            succeeded=int(status.get("succeeded") or 0),
            failed=int(status.get("failed") or 0),
            succeeded_indexes=parse_indexes(status.get("completedIndexes")),
            start_wall=parse_rfc3339(str(status.get("startTime") or "")),
        )
        if status.get("active"):
            for pod in self.store.list(
                PODS,
                namespace=meta.get("namespace"),
                label_selector=f"{LABEL_BATCH_CONTROLLER_UID}={st.uid}",
            ):
                phase = (pod.get("status") or {}).get("phase")
                if phase not in ("Succeeded", "Failed"):
                    self._delete_pod(pod)
        return st

    def _reconcile(self, key: Key, job: dict[str, Any], st: _JobState) -> None:
        spec = JobSpec.from_job(job)
        prev = job.get("status") or {}
        status: dict[str, Any] = dict(prev)
        now = now_rfc3339()
        sim, bad_annotation = _sim_spec(key, job)
        conditions = self._follow_suspension(key, spec, st, status, now)
        decision = self._run_pods(key, job, st, spec, sim, bad_annotation=bad_annotation)
        if decision.finish is not None:
            conditions = self._finish(st, decision.finish, conditions, status, now)
        status["conditions"] = conditions
        if not conditions:
            status.pop("conditions")
        self._set_counts(status, st, spec)
        if status != prev:
            job["status"] = status
            job["metadata"].pop("resourceVersion", None)
            try:
                self.store.update(
                    JOBS,
                    job,  # our own copy (store.get), not used after this write
                    namespace=key[0],
                    subresource="status",
                    copy_result=False,
                    owned=True,
                )
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _follow_suspension(
        self, key: Key, spec: JobSpec, st: _JobState, status: dict[str, Any], now: str
    ) -> list[dict[str, Any]]:
        """The Job's conditions after (un)suspending it; a running Job has its startTime and its
        activeDeadlineSeconds timer armed.

        As upstream syncJob: a Job created suspended gets no startTime until it is resumed; a
        suspended Job keeps the startTime it had (the deadline does not count while suspended,
        ``_deadline_passed``), and resuming sets startTime to now, so activeDeadlineSeconds
        counts the time the Job has been continuously active since the resume."""
        conditions = list(status.get("conditions") or [])
        suspended = any(
            c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions
        )
        if spec.suspend:
            self._stop_runs(st, delete=True)
            if not suspended:
                conditions = set_condition(
                    conditions,
                    "Suspended",
                    "True",
                    "JobSuspended",
                    "Job suspended",
                    now,
                )
            st.deadline_armed = False
            return conditions
        if suspended:
            conditions = set_condition(
                conditions, "Suspended", "False", "JobResumed", "Job resumed", now
            )
            st.start_wall = time.time()  # resuming restarts the activeDeadlineSeconds clock
        if st.start_wall is None:
            st.start_wall = time.time()
        status["startTime"] = now_rfc3339(st.start_wall)
        if spec.active_deadline is not None and not st.deadline_armed:
            st.deadline_armed = True
            remaining = st.start_wall + spec.active_deadline - time.time()
            self._timers.at(time.monotonic() + max(remaining, 0.0), key)
        return conditions

    def _run_pods(
        self,
        key: Key,
        job: dict[str, Any],
        st: _JobState,
        spec: JobSpec,
        sim: SimSpec,
        *,
        bad_annotation: str,
    ) -> Decision:
        """Collect finished pods and start the ones the Job needs, until nothing changes
        (instant outcomes settle in one pass, bounded by MAX_STEPS); the last decision."""
        decision = Decision()
        for _ in range(MAX_STEPS):
            changed = self._collect(st, spec, sim)
            decision = decide(
                spec,
                succeeded=st.succeeded,
                failed=st.failed,
                active=len(st.runs),
                restarts=sum(r.restarts for r in st.runs.values()),
                deadline_exceeded=_deadline_passed(spec, st),
            )
            if decision.finish is not None:
                break
            if decision.create == 0:
                if changed:
                    continue  # an instant OnFailure restart may be due already
                break
            delay = pod_backoff_delay(sim.pod_backoff, st.failed)
            wait = st.last_failure + delay - time.monotonic()
            if st.failed and wait > 0:
                self._timers.at(time.monotonic() + wait, key)
                break
            instant = False
            for index in self._next_indexes(spec, st, decision.create):
                run = self._start_pod(
                    key, job, st, spec, sim, index=index, bad_annotation=bad_annotation
                )
                if run is None:
                    continue
                instant = instant or (run.due is not None and run.due <= time.monotonic())
            if not (changed or instant):
                break
        return decision

    def _finish(
        self,
        st: _JobState,
        finish: tuple[str, str, str],
        conditions: list[dict[str, Any]],
        status: dict[str, Any],
        now: str,
    ) -> list[dict[str, Any]]:
        """Stop the Job's pods and set its terminal conditions (and completionTime)."""
        ctype, reason, message = finish
        stopped = self._stop_runs(st, delete=True)
        if ctype == "Failed":
            st.failed += stopped  # upstream counts the pods it terminates as failed
        st.finished = True
        target = "SuccessCriteriaMet" if ctype == "Complete" else "FailureTarget"
        conditions = set_condition(conditions, target, "True", reason, message, now)
        conditions = set_condition(conditions, ctype, "True", reason, message, now)
        if ctype == "Complete":
            status["completionTime"] = now
        return conditions

    @staticmethod
    def _set_counts(status: dict[str, Any], st: _JobState, spec: JobSpec) -> None:
        ready = sum(1 for r in st.runs.values() if r.due is None or r.due > time.monotonic())
        for name, value in (
            ("active", len(st.runs)),
            ("succeeded", st.succeeded),
            ("failed", st.failed),
        ):
            if value:
                status[name] = value
            else:
                status.pop(name, None)  # int32 with omitempty upstream
        status["ready"] = ready if st.runs else 0
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        if spec.indexed and st.succeeded_indexes:
            status["completedIndexes"] = format_indexes(st.succeeded_indexes)

    def _next_indexes(self, spec: JobSpec, st: _JobState, count: int) -> list[int | None]:
        if not spec.indexed or spec.completions is None:
            return [None] * count
        busy = {r.index for r in st.runs.values()}
        free = [
            i for i in range(spec.completions) if i not in st.succeeded_indexes and i not in busy
        ]
        return list(free[:count])

    # -- pods ----------------------------------------------------------------------------------

    def _start_pod(
        self,
        key: Key,
        job: dict[str, Any],
        st: _JobState,
        spec: JobSpec,
        sim: SimSpec,
        *,
        index: int | None,
        bad_annotation: str,
    ) -> _Run | None:
        namespace, name = key
        template = (job.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            LABEL_CONTROLLER_UID: st.uid,
            LABEL_JOB_NAME: name,
            LABEL_BATCH_CONTROLLER_UID: st.uid,
            LABEL_BATCH_JOB_NAME: name,
        }
        annotations = dict(tmeta.get("annotations") or {})
        prefix = f"{name}-" if index is None else f"{name}-{index}-"
        prefix = prefix[: POD_NAME_MAX - GENERATE_SUFFIX]
        if index is not None:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
        pod_spec = dict(template.get("spec") or {})
        pod_spec["nodeName"] = NODE_NAME
        if index is not None:
            pod_spec["containers"] = [
                {
                    **c,
                    "env": [
                        *(c.get("env") or []),
                        {"name": "JOB_COMPLETION_INDEX", "value": str(index)},
                    ],
                }
                for c in pod_spec.get("containers") or []
            ]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": prefix,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": st.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        if not annotations:
            del pod["metadata"]["annotations"]
        try:
            created = self.store.create(PODS, pod, namespace=namespace)
        except ApiError as exc:
            log.warning(
                "pod creation failed",
                extra={"namespace": namespace, "job": name, "error": exc.message},
            )
            self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            return None
        run = _Run(key=key, job_uid=st.uid, pod=created, index=index, started_at=now_rfc3339())
        st.runs[run.uid] = run
        with self._lock:
            self._runs[run.uid] = run
        self._start_container(run, sim, bad_annotation=bad_annotation)
        return run

    def _start_container(self, run: _Run, sim: SimSpec, *, bad_annotation: str = "") -> None:
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
        self._set_log(run, "", container=_first_name(run))  # a (re)started run's log starts empty
        inits = _init_containers(run)
        if inits:
            # as a pod whose init containers have not run yet: Pending, everything waiting
            run.init_states = {str(c.get("name", "")): _waiting_init() for c in inits}
            self._write_pod_status(run, "Pending", _waiting_init())
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

    def _collect(self, st: _JobState, spec: JobSpec, sim: SimSpec) -> bool:
        """Finish the runs whose outcome is known; returns whether anything changed."""
        changed = False
        now_mono = time.monotonic()
        for run in list(st.runs.values()):
            with self._lock:
                gone = run.gone
                outcome = run.outcome
            if gone:
                # deleted while active: a failure, replaced like one (pod-failure tracking)
                del st.runs[run.uid]
                st.failed += 1
                st.last_failure = now_mono
                changed = True
                continue
            if (
                outcome is None
                and run.planned is not None
                and run.due is not None
                and (run.due <= now_mono)
            ):
                outcome = run.planned
            if outcome is None:
                continue
            changed = True
            if run.failed_init is not None:
                self._init_failed(st, spec, sim, run, run.failed_init)
                continue
            exit_code = outcome.exit_code
            containers = (run.pod.get("spec") or {}).get("containers") or [{}]
            message = self._termination_message(run, containers[0], exit_code, outcome.message)
            finished = now_rfc3339()
            term = terminated_state(
                exit_code,
                message,
                started_at=run.container_started_at,
                finished_at=finished,
                container_id=_container_id(run),
                reason=outcome.reason,
            )
            if exit_code != 0 and spec.restart_policy == "OnFailure":
                # the kubelet restarts the container in the same pod; the Job controller
                # compares the restart count with backoffLimit (decide())
                run.restarts += 1
                run.last_state = {"terminated": term}
                total = sum(r.restarts for r in st.runs.values())
                if restarts_exceed(total, spec.backoff_limit):
                    self._write_pod_status(
                        run,
                        "Running",
                        {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": f"back-off restarting failed container {_first_name(run)}",
                            }
                        },
                    )
                    run.planned, run.due, run.outcome = None, None, None
                else:
                    self._start_container(run, sim)
                continue
            phase = "Succeeded" if exit_code == 0 else "Failed"
            self._write_pod_status(run, phase, {"terminated": term})
            del st.runs[run.uid]
            with self._lock:
                self._runs.pop(run.uid, None)
            if exit_code == 0:
                st.succeeded += 1
                if run.index is not None:
                    st.succeeded_indexes.add(run.index)
            else:
                st.failed += 1
                st.last_failure = now_mono
        return changed

    def _init_failed(
        self, st: _JobState, spec: JobSpec, sim: SimSpec, run: _Run, name: str
    ) -> None:
        """An init container exited non-zero (local mode). restartPolicy Never: the pod fails
        without its app containers having run. OnFailure: counted as a restart of the pod's run
        (which starts again from the first init container), like a failed app container."""
        if spec.restart_policy == "OnFailure":
            run.restarts += 1
            run.init_restarts[name] = run.init_restarts.get(name, 0) + 1
            run.init_last[name] = {"terminated": run.init_states.get(name, {}).get("terminated")}
            total = sum(r.restarts for r in st.runs.values())
            if restarts_exceed(total, spec.backoff_limit):
                run.init_states[name] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {name}",
                    }
                }
                self._write_pod_status(run, "Pending", _waiting_init())
                run.planned, run.due, run.outcome, run.failed_init = (
                    None,
                    None,
                    None,
                    None,
                )
            else:
                self._start_container(run, sim)
            return
        self._write_pod_status(run, "Failed", _waiting_init())
        del st.runs[run.uid]
        with self._lock:
            self._runs.pop(run.uid, None)
        st.failed += 1
        st.last_failure = time.monotonic()

    def _termination_message(
        self, run: _Run, container: Mapping[str, Any], exit_code: int, message: str
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

    def _write_running(self, run: _Run) -> None:
        self._write_pod_status(run, "Running", {"running": {"startedAt": run.container_started_at}})

    def _write_pod_status(self, run: _Run, phase: str, state: dict[str, Any]) -> None:
        now = now_rfc3339()
        containers = (run.pod.get("spec") or {}).get("containers") or []
        inits = _init_containers(run) if self.exec_mode == "local" else []
        init_statuses = [
            init_container_status(
                c,
                run.init_states.get(str(c.get("name", "")), _waiting_init()),
                restarts=run.init_restarts.get(str(c.get("name", "")), 0),
                last_state=run.init_last.get(str(c.get("name", ""))),
                container_id=f"{_container_id(run)}-init{i}",
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
            container_id=_container_id(run),
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
        run: _Run,
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

    def _stop_runs(self, st: _JobState, *, delete: bool) -> int:
        """Kill every active run (and delete its pod); returns how many there were."""
        runs = list(st.runs.values())
        st.runs.clear()
        with self._lock:
            for run in runs:
                self._runs.pop(run.uid, None)
        for run in runs:
            self._cancel(run)
            if delete:
                self._delete_pod(run.pod)
        return len(runs)

    def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        try:
            self.store.delete(PODS, str(meta.get("name")), namespace=meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _forget(self, key: Key) -> None:
        st = self._jobs.pop(key, None)
        if st is None:
            return
        with self._lock:
            self._generations.pop(st.uid, None)
        self._stop_runs(st, delete=False)  # the Store's garbage collector deletes the pods

    # -- the kubelet's bare pods --------------------------------------------------------------

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
            run = _Run(key=key, job_uid="", pod=pod, index=None, started_at=now_rfc3339())
            self._bare[key] = run
            with self._lock:
                self._runs[run.uid] = run
            self._start_bare(run, sim, bad_annotation)
        for _ in range(MAX_STEPS):  # instant sim runs settle in one pass
            if not self._collect_bare(key, run, sim, bad_annotation):
                return

    def _start_bare(self, run: _Run, sim: SimSpec, bad_annotation: str) -> None:
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

    def _collect_bare(self, key: Key, run: _Run, sim: SimSpec, bad_annotation: str) -> bool:
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
            container_id=_container_id(run),
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
                f"{_first_name(run)} pod={run.name}_{key[0]}({run.uid})",
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

    def _drop_bare(self, key: Key, run: _Run) -> None:
        self._bare.pop(key, None)
        with self._lock:
            self._runs.pop(run.uid, None)
        self._cancel(run)

    # -- local processes -------------------------------------------------------------------

    def _cancel(self, run: _Run) -> None:
        """Kill the run's process group; a process not yet started never will be."""
        with self._lock:
            run.cancelled = True
            proc = run.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _run_local(self, run: _Run) -> None:
        """Thread body: run the first container as a process and record its outcome."""
        namespace = run.key[0]
        workdir = self.work_dir / "pods" / f"{namespace}_{run.name}_{run.restarts}"
        try:
            try:
                outcome = self._execute(run, workdir)
            except Exception as exc:  # thread boundary: a runner bug must still finish the pod
                with self._lock:
                    stopping = self._stopping
                if stopping:
                    # the server is going away (its work dir may already be deleted): an
                    # error now is expected and nobody will read the outcome
                    log.debug(
                        "local run ended by shutdown",
                        extra={
                            "namespace": namespace,
                            "pod": run.name,
                            "error": repr(exc),
                        },
                    )
                else:
                    log.exception(
                        "local run failed",
                        extra={"namespace": namespace, "pod": run.name},
                    )
                outcome = Outcome(128, f"kubesim could not run the container: {exc}")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            with self._lock:
                run.outcome = outcome
                run.process = None
            self._queue.add(run.key)
        finally:
            with self._lock:
                self._local.pop(threading.current_thread(), None)

    def _claim_dir(self, namespace: str, claim: str) -> Path:
        """The host directory of a PersistentVolumeClaim (local mode): one per claim object, so
        a re-created claim of the same name starts empty."""
        try:
            uid = str(
                (self.store.get(PVCS, claim, namespace=namespace).get("metadata") or {}).get("uid")
                or ""
            )
        except ApiError:
            uid = ""  # no such claim: a kubelet would wait; local mode still gives a directory
        return self.work_dir / "volumes" / namespace / (f"{claim}-{uid}" if uid else claim)

    def _execute(self, run: _Run, workdir: Path) -> Outcome:
        """Run the init containers in order, then the first app container, in one work dir
        (so emptyDir volumes are shared). An init container that fails (or a cancel) ends the
        run there: ``run.failed_init`` names it and its outcome is the run's."""
        containers = (run.pod.get("spec") or {}).get("containers") or [{}]
        workdir.mkdir(parents=True, exist_ok=True)
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "HOSTNAME": run.name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        inits = _init_containers(run)
        for i, init in enumerate(inits):
            name = str(init.get("name", ""))
            started = now_rfc3339()
            with self._lock:
                if run.cancelled:
                    return Outcome(137, "")
                run.init_states[name] = {"running": {"startedAt": started}}
            self._write_pod_status(run, "Pending", _waiting_init())
            ran = self._exec_container(
                run,
                init,
                workdir,
                base_env,
                tfile=workdir / f"termination-log.init-{i}",
            )
            code = ran.exit_code
            message = self._termination_message(run, init, code, ran.message)
            term = terminated_state(
                code,
                message,
                started_at=started,
                finished_at=now_rfc3339(),
                container_id=f"{_container_id(run)}-init{i}",
                reason=ran.reason,
            )
            with self._lock:
                run.init_states[name] = {"terminated": term}
                if code != 0 or run.cancelled:
                    run.failed_init = name
                    return Outcome(code, message, ran.reason)
        run.container_started_at = now_rfc3339()
        if inits:
            with self._lock:
                if run.cancelled:
                    return Outcome(137, "")
            self._write_running(run)
        return self._exec_container(
            run,
            containers[0],
            workdir,
            base_env,
            tfile=workdir / "termination-log",
            app=True,
        )

    def _exec_container(
        self,
        run: _Run,
        container: Mapping[str, Any],
        workdir: Path,
        base_env: Mapping[str, str],
        *,
        tfile: Path,
        app: bool = False,
    ) -> Outcome:
        """One container as a process in its own session (killable by ``_cancel``); its
        stdout+stderr stream into its own container log, which an init container's run starts
        afresh (the app container's was reset when the run started, so a restarted run does not
        show the previous output meanwhile). ``app`` is the first app container. The caller
        turns the raw message into the reported one (``_termination_message``)."""
        namespace = run.key[0]
        name = str(container.get("name", ""))
        if not app:
            self._set_log(run, "", container=name)
        tfile.touch()
        mounts = local_mounts(
            run.pod.get("spec") or {},
            container,
            claim_dir=lambda claim: self._claim_dir(namespace, claim),
            pod_dir=workdir,
        )
        argv, env = local_command(
            container, termination_file=str(tfile), extra_env=base_env, mounts=mounts
        )
        if not argv:
            # A kubelet would run the image's entrypoint; kubesim runs no images.
            return Outcome(
                EXIT_START_ERROR,
                "kubesim local mode runs the container's command and args and no image"
                " entrypoint; give the container a command",
                REASON_START_ERROR,
            )
        with self._lock:
            if run.cancelled:
                return Outcome(137, "")
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                return start_error(argv[0], exc)
            run.process = proc
        if proc.stdout is not None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            fd = proc.stdout.fileno()
            log_ok = True
            while True:
                chunk = os.read(fd, 65536)
                text = decoder.decode(chunk, final=not chunk)
                if text and log_ok:
                    # False: the pod is gone; keep draining so the process can exit
                    log_ok = self._set_log(run, text, container=name, append=True)
                if not chunk:
                    break
            proc.stdout.close()
        code = proc.wait()
        with self._lock:
            run.process = None
        if code < 0:
            code = 128 - code  # killed by a signal: the shell convention the kubelet reports
        message = tfile.read_bytes()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "replace")
        return Outcome(code, message)


def _init_containers(run: _Run) -> list[Mapping[str, Any]]:
    """The init containers local mode runs (sidecars, restartPolicy Always, are not emulated)."""
    inits = (run.pod.get("spec") or {}).get("initContainers") or []
    return [c for c in inits if isinstance(c, Mapping) and c.get("restartPolicy") != "Always"]


def _waiting_init() -> dict[str, Any]:
    return {"waiting": {"reason": WAITING_INIT}}


def _container_id(run: _Run) -> str:
    return f"kubesim://{run.uid[:8]}-{run.restarts}"


def _first_name(run: _Run) -> str:
    containers = (run.pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))
