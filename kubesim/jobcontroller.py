"""kubesim's Job controller (kube-controller-manager's, for batch/v1 Jobs).

For every Job in the Store it creates pods named ``<job>-<5 chars>`` (labels ``job-name``,
``controller-uid``, ``batch.kubernetes.io/job-name``, ``batch.kubernetes.io/controller-uid``
plus the template's; a controller ownerReference to the Job), hands them to the kubelet and
writes the Job's status the way Kubernetes 1.31+ does (``startTime``,
``active``/``succeeded``/``failed``/``ready``, conditions ``SuccessCriteriaMet`` + ``Complete``
or ``FailureTarget`` + ``Failed`` with reasons ``CompletionsReached``, ``BackoffLimitExceeded``,
``DeadlineExceeded``; ``Suspended`` with ``JobSuspended``/``JobResumed``; ``completionTime``),
then lets the TTL controller (``ttl``) expire finished Jobs. Its decisions are ``jobcontrol``'s
(pure); this module holds the per-Job state and the reconcile that applies them.

Interface with the kubelet (``kubelet.Kubelet``), by pod uid: ``run_pod`` for a pod it created,
``settle`` to learn what became of each active pod (``PodReport``: still active after an
in-place ``OnFailure`` restart, succeeded, failed or deleted behind its back, and its restart
count; the backoffLimit is the ``may_restart`` callback), ``is_ready`` for the ``ready`` count,
``release`` for the pods it stops before deleting them, ``cancel_owned`` when its Job is
deleted. It never sees the kubelet's runs.

Design and invariants:

* Level-triggered: Store events only enqueue a key ``(namespace, job name)``; ``sync(key)`` is
  called by the runner's workers, never for one key twice at once. Timers and process threads
  never touch Job state; they record an outcome and enqueue the key.
* ``self._lock`` guards only ``_generations`` (read by the event callback) and is never held
  while calling the Store, because Store subscribers run under the Store's own lock.
* Counts (succeeded/failed) live in memory per Job uid, seeded from ``job.status`` when the
  controller first meets a Job, so a restarted server continues from what it had written.
* Pods the controller deletes are released by the kubelet *before* the delete call, so their
  DELETED event is not mistaken for a pod deleted by a user (which counts as a failure and gets
  a replacement, as in Kubernetes with pod-failure tracking).
* An instant ``sim`` Job settles in the reconcile that created its pod: three Store writes (pod
  create, pod status, Job status) and no thread.

Simplifications: no Events are written; pods go Running without a Pending phase; pod
re-creation after a failure has no exponential delay unless ``kubesim.io/pod-backoff`` asks for
one (Kubernetes waits 10 s, 20 s, ...); podFailurePolicy, successPolicy, backoffLimitPerIndex
and podReplacementPolicy are ignored.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubesim import ttl
from kubesim.clone import clone
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
from kubesim.kubelet import MAX_STEPS, Kubelet
from kubesim.podrun import NODE_NAME, PODS
from kubesim.resources import GVR
from kubesim.simspec import AnnotationError, SimSpec
from kubesim.timestamps import now_rfc3339, parse_rfc3339
from kubesim.workqueue import Key, Timers

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

JOBS = GVR("batch", "v1", "jobs")
LABEL_JOB_NAME = "job-name"
LABEL_CONTROLLER_UID = "controller-uid"
LABEL_BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
POD_NAME_MAX = 63
GENERATE_SUFFIX = 5  # the store appends 5 random characters to generateName
REQUEUE_AFTER_ERROR = 1.0  # seconds before a reconcile that raised is retried


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


def _delete_pod(store: Store, name: str, namespace: str) -> None:
    try:
        store.delete(PODS, name, namespace=namespace)
    except ApiError as exc:
        if exc.code != 404:
            raise


@dataclass(eq=False)
class _ActivePod:
    """What the controller knows of one of its active pods: what it created, and the restart
    count the kubelet last reported."""

    uid: str
    name: str
    namespace: str
    index: int | None
    restarts: int = 0


@dataclass(eq=False)
class _JobState:
    uid: str
    succeeded: int = 0
    failed: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    pods: dict[str, _ActivePod] = field(default_factory=dict)  # pod uid -> active pod
    start_wall: float | None = None
    last_failure: float = 0.0  # monotonic time of the last pod failure (for pod-backoff)
    deadline_armed: bool = False
    finished: bool = False


class JobController:
    """Reconciles the Jobs of one Store (see module docstring)."""

    def __init__(self, store: Store, kubelet: Kubelet, *, timers: Timers) -> None:
        self.store = store
        self._kubelet = kubelet
        self._timers = timers
        self._lock = threading.Lock()
        self._jobs: dict[Key, _JobState] = {}  # touched only by the key's worker
        self._generations: dict[str, Any] = {}  # job uid -> generation last reconciled

    def job_keys(self) -> list[Key]:
        """The key of every Job in the Store (at start)."""
        out = []
        for job in self.store.list(JOBS):
            meta = job.get("metadata") or {}
            out.append((str(meta.get("namespace", "")), str(meta.get("name", ""))))
        return out

    def on_event(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> Key | None:
        """A Job event (called under the Store's lock: never block, never call the Store);
        the key to reconcile, or None."""
        if gvr.group != "batch" or gvr.resource != "jobs":
            return None
        meta = obj.get("metadata") or {}
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
                return None
        elif event_type == "DELETED":
            with self._lock:
                self._generations.pop(uid, None)
            self._kubelet.cancel_owned(uid)
        return (str(meta.get("namespace", "")), str(meta.get("name", "")))

    def sync(self, key: Key) -> None:
        """Reconcile one Job (its key's worker)."""
        namespace, name = key
        try:
            # the stored Job itself, read only: its status write is a new object (_reconcile)
            # and its pods copy what they take of it (_start_pod)
            job = self.store.get(JOBS, name, namespace=namespace, copy=False)
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
            job = self._reconcile(key, job, st)
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
                    pmeta = pod.get("metadata") or {}
                    _delete_pod(self.store, str(pmeta.get("name")), str(pmeta.get("namespace")))
        return st

    def _reconcile(self, key: Key, job: dict[str, Any], st: _JobState) -> dict[str, Any]:
        """Create, settle and count the Job's pods and write its status; returns the Job as
        written (``job`` itself when its status did not change)."""
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
            # the new status is ours (dicts built here; conditions replaced, never changed in
            # place); the stored Job's parts are shared, read only
            return self.store.write_status(JOBS, job, status, namespace=key[0])
        return job

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
                active=len(st.pods),
                restarts=sum(p.restarts for p in st.pods.values()),
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
                ended = self._start_pod(
                    key, job, st, spec, sim, index=index, bad_annotation=bad_annotation
                )
                instant = instant or ended
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

    def _set_counts(self, status: dict[str, Any], st: _JobState, spec: JobSpec) -> None:
        now_mono = time.monotonic()
        ready = sum(1 for uid in st.pods if self._kubelet.is_ready(uid, now_mono))
        for name, value in (
            ("active", len(st.pods)),
            ("succeeded", st.succeeded),
            ("failed", st.failed),
        ):
            if value:
                status[name] = value
            else:
                status.pop(name, None)  # int32 with omitempty upstream
        status["ready"] = ready if st.pods else 0
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        if spec.indexed and st.succeeded_indexes:
            status["completedIndexes"] = format_indexes(st.succeeded_indexes)

    def _next_indexes(self, spec: JobSpec, st: _JobState, count: int) -> list[int | None]:
        if not spec.indexed or spec.completions is None:
            return [None] * count
        busy = {p.index for p in st.pods.values()}
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
    ) -> bool:
        """Create one pod and hand it to the kubelet; True when its run ended at once (an
        instant ``sim`` run, for the caller's next pass to settle)."""
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
        # the pod's one copy of the template (the Job is the stored one, read only): the pod's
        # defaulting changes its spec in place, and the Store keeps the pod as built here
        pod_spec = clone(template.get("spec") or {})
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
            created = self.store.create(
                PODS, pod, namespace=namespace, owned=True, copy_result=False
            )
        except ApiError as exc:
            log.warning(
                "pod creation failed",
                extra={"namespace": namespace, "job": name, "error": exc.message},
            )
            self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            return False
        ended = self._kubelet.run_pod(
            dict(created),  # the kubelet's own top level (it sets its status), the rest read only
            sim,
            key=key,
            job_uid=st.uid,
            index=index,
            bad_annotation=bad_annotation,
        )
        meta = created["metadata"]
        uid = str(meta["uid"])
        st.pods[uid] = _ActivePod(uid, str(meta["name"]), namespace, index)
        return ended

    def _collect(self, st: _JobState, spec: JobSpec, sim: SimSpec) -> bool:
        """Settle the Job's pods with the kubelet and count those that ended; returns whether
        anything changed."""
        changed = False
        now_mono = time.monotonic()

        def may_restart() -> bool:
            # one more restart of a pod, counted with every restart the kubelet reported
            total = sum(p.restarts for p in st.pods.values()) + 1
            return not restarts_exceed(total, spec.backoff_limit)

        for pod in list(st.pods.values()):
            report = self._kubelet.settle(
                pod.uid, sim, restart_policy=spec.restart_policy, may_restart=may_restart
            )
            if report is None:
                continue
            changed = True
            pod.restarts = report.restarts
            if report.settled == "active":
                continue
            # "gone": deleted while active, a failure replaced like one (pod-failure tracking)
            del st.pods[pod.uid]
            if report.settled == "succeeded":
                st.succeeded += 1
                if pod.index is not None:
                    st.succeeded_indexes.add(pod.index)
            else:
                st.failed += 1
                st.last_failure = now_mono
        return changed

    def _stop_runs(self, st: _JobState, *, delete: bool) -> int:
        """Stop every active pod's run (and delete the pod); returns how many there were."""
        pods = list(st.pods.values())
        st.pods.clear()
        self._kubelet.release([p.uid for p in pods])
        if delete:
            for pod in pods:
                _delete_pod(self.store, pod.name, pod.namespace)
        return len(pods)

    def _forget(self, key: Key) -> None:
        st = self._jobs.pop(key, None)
        if st is None:
            return
        with self._lock:
            self._generations.pop(st.uid, None)
        self._stop_runs(st, delete=False)  # the Store's garbage collector deletes the pods
