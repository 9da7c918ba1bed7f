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

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim import ttl
from kubesim.errors import ApiError
from kubesim.jobcontrol import (
    Decision,
    JobSpec,
    decide,
    finished_condition,
    format_indexes,
    parse_indexes,
    pod_backoff_delay,
    restarts_exceed,
    set_condition,
)
from kubesim.kubelet import (
    MAX_STEPS,
    NODE_NAME,
    POD_KEY_PREFIX,
    PODS,
    Run,
    bare_pod_key,
    first_container_name,
    is_bare_pod,
    run_container_id,
    waiting_init_state,
)

# re-exported: callers outside kubesim's tests import these from kubesim.runner
from kubesim.localexec import expand_vars as expand_vars
from kubesim.localexec import local_command as local_command
from kubesim.localexec import local_mounts as local_mounts
from kubesim.localprocess import LocalKubelet
from kubesim.podstatus import terminated_state
from kubesim.resources import GVR
from kubesim.simspec import AnnotationError, SimSpec
from kubesim.timestamps import now_rfc3339, parse_rfc3339
from kubesim.workqueue import Key, Timers, WorkQueue

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

JOBS = GVR("batch", "v1", "jobs")
LOCAL_STOP_TIMEOUT = 5.0  # seconds stop() waits for local-mode process threads


LABEL_JOB_NAME = "job-name"
LABEL_CONTROLLER_UID = "controller-uid"
LABEL_BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
POD_NAME_MAX = 63
GENERATE_SUFFIX = 5  # the store appends 5 random characters to generateName
REQUEUE_AFTER_ERROR = 1.0  # seconds before a reconcile that raised is retried


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
class _JobState:
    uid: str
    succeeded: int = 0
    failed: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    runs: dict[str, Run] = field(default_factory=dict)  # pod uid -> active run
    start_wall: float | None = None
    last_failure: float = 0.0  # monotonic time of the last pod failure (for pod-backoff)
    deadline_armed: bool = False
    finished: bool = False


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner(LocalKubelet):
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
        self._runs: dict[str, Run] = {}  # pod uid -> run, for DELETED events
        self._bare: dict[Key, Run] = {}  # the kubelet's runs of pods no Job owns
        self._generations: dict[str, Any] = {}  # job uid -> generation last reconciled
        self._attempts: dict[tuple[str, str], int] = {}  # (namespace, attempt key) -> runs
        self._threads: list[threading.Thread] = []
        # local mode: the process thread of each run (pod threads), so stop() can wait for them
        self._local: dict[threading.Thread, Run] = {}
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
            ttl.expire_finished(self.store, self._timers, key, job)

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
    ) -> Run | None:
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
        run = Run(key=key, job_uid=st.uid, pod=created, index=index, started_at=now_rfc3339())
        st.runs[run.uid] = run
        with self._lock:
            self._runs[run.uid] = run
        self._start_container(run, sim, bad_annotation=bad_annotation)
        return run

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
                container_id=run_container_id(run),
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
                                "message": f"back-off restarting failed container {first_container_name(run)}",
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

    def _init_failed(self, st: _JobState, spec: JobSpec, sim: SimSpec, run: Run, name: str) -> None:
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
                self._write_pod_status(run, "Pending", waiting_init_state())
                run.planned, run.due, run.outcome, run.failed_init = (
                    None,
                    None,
                    None,
                    None,
                )
            else:
                self._start_container(run, sim)
            return
        self._write_pod_status(run, "Failed", waiting_init_state())
        del st.runs[run.uid]
        with self._lock:
            self._runs.pop(run.uid, None)
        st.failed += 1
        st.last_failure = time.monotonic()

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

    def _forget(self, key: Key) -> None:
        st = self._jobs.pop(key, None)
        if st is None:
            return
        with self._lock:
            self._generations.pop(st.uid, None)
        self._stop_runs(st, delete=False)  # the Store's garbage collector deletes the pods

    # -- the kubelet's bare pods --------------------------------------------------------------

    # -- local processes -------------------------------------------------------------------
