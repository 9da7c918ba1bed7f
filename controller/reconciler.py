"""One reconcile pass: read the world from the caches, ask the pure planner, apply its Plan.

``reconcile(key)`` receives only a key (``namespace/name``), never an event, and returns the
seconds after which it wants to run again (or None); an exception means "retry with backoff".

Invariants:
- Idempotent: applying a Plan twice changes nothing the second time. Job names are
  deterministic, so AlreadyExists for a Job this flow owns is adoption (the Job is put into the
  cache), never a second attempt. Deletes treat NotFound as done.
- Order: resourceTemplates objects, then Jobs, then deletes, then status, then Events, then the
  TTL delete. Status is written last among the flow's writes so it never claims a Job that was
  neither created nor refused; if a create fails the pass fails before status is written and
  the next pass adopts what was created.
- Errors follow ``kube.policy``, decided by the error's class. A Job create the server refuses
  for good (422 Invalid, 403 from RBAC, an admission webhook or a quota, a namesake Job we do
  not own) does not fail the pass: its message is remembered by Job name (per flow uid, in
  memory), the status is written (the attempt started) and the key is requeued at once; the
  next pass hands the refusals to ``plan(rejected=...)``, which fails that attempt
  (CreateRejected) so the retry policy applies. A restarted controller has forgotten them: it
  creates the Job again, is refused again, and ends the same way. Any other error fails the
  pass (the worker retries it: transient ones back off, refused ones are logged as errors).
- Status goes through the status subresource with PUT (carrying the resourceVersion we read),
  and only when the desired status differs from the cached one: a stale read fails with Conflict
  instead of overwriting a newer status.
- Our own writes are put into the caches at once (write-through, ordered by resourceVersion), so
  the next pass sees them even before the watch event arrives.
- The pods of a Job are read only when the planner names that Job in ``needs_pod_details``;
  the answer is remembered per Job uid (a finished Job's pods do not change).
- A crash while validating or planning one flow (a planner bug, or a native library's panic,
  which may be a ``BaseException``) is that flow's problem, not the controller's: the flow gets
  ``Accepted=False`` with reason ``ReconcileError`` naming the error (written only when the
  condition does not already say so, with one Warning Event), and ``PlanningCrashed`` is
  raised so the worker retries the key with backoff. A later pass that plans normally sets
  ``Accepted=True`` again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

import orjson

from controller import cache as cache_mod
from controller import kube as kube_mod
from controller import packing
from controller.capacity import Capacity
from controller.events import EventRecorder
from controller.kube import (
    JOBFLOWS,
    JOBS,
    PODS,
    RESOURCE_BY_KIND,
    AlreadyExists,
    ApiError,
    JSONDict,
    Kube,
    NotFound,
)
from controller.metrics import ControllerMetrics
from controller.supervisor import PROPAGATE
from jobflow import artifacts, decoded, names, phases, planning, status
from jobflow import jobs as jobs_mod
from jobflow import pods as pods_mod
from jobflow.errors import Problem

log = logging.getLogger(__name__)

FLOW_INDEX = "flow"  # jobs: "<namespace>/<flow label value>"
CONCURRENCY_INDEX = "concurrency"  # flows: "<namespace>/<concurrencyKey>"
TERMINAL_STEP_PHASES = phases.TERMINAL_STEP_PHASES
# Recent dispatch latencies kept for benchmarks and debugging (the histogram is the metric).
DISPATCH_SAMPLES = 100_000
# Accepted=False reason when validating or planning the flow crashed.
RECONCILE_ERROR = "ReconcileError"
# The condition names the error class and the first line of its message, cut to this length
# (a native panic's message can carry a whole backtrace).
MAX_CRASH_TEXT = 300
# A refused create's message goes into the step's status and an Event: a 422 listing every
# cause of a large template can be long, the status entry must not be.
MAX_REFUSAL_TEXT = 1000


class ForeignObject(ApiError):
    """An object with the name we need exists but is not owned by this flow."""


class PlanningCrashed(Exception):
    """Validating or planning one flow raised ``error`` (any ``BaseException`` but the ones
    ``controller.supervisor.PROPAGATE`` lets through); the flow already says so."""

    def __init__(self, key: str, error: BaseException) -> None:
        super().__init__(f"planning {key} raised {type(error).__name__}")
        self.key = key
        self.error = error


def refusal_message(error: ApiError) -> str:
    """The server's message for a refused create, as the step and its Event show it."""
    text = " ".join(str(error).split()) or f"HTTP {error.code} {error.reason}".strip()
    if len(text) > MAX_REFUSAL_TEXT:
        text = text[: MAX_REFUSAL_TEXT - 3] + "..."
    return text


def crash_message(error: BaseException) -> str:
    """The Accepted=False message for a planning crash: the error class and its first line."""
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    if len(text) > MAX_CRASH_TEXT:
        text = text[: MAX_CRASH_TEXT - 3] + "..."
    return f"the controller could not plan this flow ({text}); it retries with backoff"


# -- index functions --------------------------------------------------------------------------
def job_flow_index(job: JSONDict) -> list[str]:
    meta = job.get("metadata") or {}
    value = (meta.get("labels") or {}).get(names.LABEL_FLOW)
    return [f"{meta.get('namespace')}/{value}"] if value else []


def flow_concurrency_index(flow: JSONDict) -> list[str]:
    policy = (flow.get("spec") or {}).get("executionPolicy") or {}
    key = policy.get("concurrencyKey")
    ns = (flow.get("metadata") or {}).get("namespace")
    return [f"{ns}/{key}"] if key else []


def owner_flow_key(obj: JSONDict) -> str | None:
    """``namespace/name`` of the JobFlow controlling ``obj``, from its ownerReference."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == names.KIND and ref.get("controller"):
            return f"{meta.get('namespace')}/{ref.get('name')}"
    return None


def is_owned_by(obj: Mapping[str, Any], uid: str) -> bool:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or ()
    return any(ref.get("uid") == uid for ref in refs)


def job_finished(job: JSONDict | None) -> bool:
    return bool(job) and jobs_mod.job_outcome(job or {}).state != "running"


def job_signature(job: JSONDict) -> tuple[Any, ...]:
    """What of a Job the planner reacts to: its terminal and Suspended conditions, whether it
    is suspended (Kueue admits or preempts it by flipping spec.suspend), labels and deletion.
    Updates that change none of these (pod counters, ready, startTime) trigger no pass: a Job's
    status moves several times per run and each pass would only confirm the last one (the
    pending and run deadlines read them when they come due)."""
    meta = job.get("metadata") or {}
    conditions = tuple(
        (c.get("type"), c.get("status"), c.get("reason"))
        for c in (job.get("status") or {}).get("conditions") or ()
        if c.get("type") in ("Complete", "Failed", "Suspended")
    )
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    suspended = bool((job.get("spec") or {}).get("suspend"))
    return conditions, labels, suspended, meta.get("deletionTimestamp"), meta.get("uid")


def status_body(flow: JSONDict, status: JSONDict) -> JSONDict:
    """What a status write sends: the object's identity, its resourceVersion (the write is
    refused with 409 if the flow changed since it was read) and the new status. The API server
    takes nothing but the status from a /status PUT (the CRD status strategy copies the rest
    from the stored object), so the spec, often most of a flow, is not sent along."""
    meta = flow.get("metadata") or {}
    return {
        "apiVersion": flow.get("apiVersion"),
        "kind": flow.get("kind"),
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion") if k in meta
        },
        "status": status,
    }


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _normalise(value: Any) -> Any:
    """Plain JSON with null members dropped: the form the API server stores and returns, so a
    desired status compares equal to the stored one (a spurious difference would mean a status
    write on every pass)."""

    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    try:
        plain = orjson.loads(orjson.dumps(value))  # ~5x json's round trip
    except TypeError:  # orjson.JSONEncodeError is one: what orjson does not write (int keys)
        plain = json.loads(json.dumps(value))
    return strip(plain)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        flows: cache_mod.Informer,
        jobs: cache_mod.Informer,
        recorder: EventRecorder,
        metrics: ControllerMetrics,
        enqueue: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        pool: Executor | None = None,
        fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE,
        capacity: Capacity | None = None,
    ) -> None:
        self.kube = kube
        self.capacity = capacity  # --max-active-jobs (controller.capacity); None: no cap
        self.fetch_image = fetch_image  # init container image for http input artifacts
        self.flows = flows
        self.jobs = jobs
        self.recorder = recorder
        self.metrics = metrics
        self.enqueue = enqueue
        self.now = now
        self.pool = pool
        self._lock = threading.Lock()
        self._pod_details: dict[
            str, pods_mod.PodDetails
        ] = {}  # job uid -> what its failed pod said
        self._finished_at: dict[str, float] = {}  # job key -> monotonic time we saw it finish
        # flow uid -> (generation, spec problems): validation runs once per spec, not per pass
        self._problems: dict[str, tuple[int, list[Problem]]] = {}
        # flow uid -> {Job name: the API server's message}: Job creates refused for good, the
        # planner's ``rejected`` (lost on restart: the create is then refused again)
        self._refused: dict[str, dict[str, str]] = {}
        self.dispatch_samples: deque[float] = deque(maxlen=DISPATCH_SAMPLES)
        self.writes = 0  # create/update/delete calls made (benchmarks read it)

    # -- cache handlers (called from informer threads; must stay cheap) ----------------------
    def on_flow_change(self, old: JSONDict | None, new: JSONDict | None) -> None:
        obj = new or old
        if obj is None:
            return
        self.enqueue(cache_mod.key_of(obj))
        if new is None:
            with self._lock:
                uid = str((obj.get("metadata") or {}).get("uid"))
                self._problems.pop(uid, None)
                self._refused.pop(uid, None)
            if self.capacity is not None:
                self.capacity.forget(cache_mod.key_of(obj))
        old_phase = ((old or {}).get("status") or {}).get("phase")
        new_phase = ((new or {}).get("status") or {}).get("phase")
        if old is None or new is None or old_phase != new_phase:
            self.enqueue_peers(obj)

    def enqueue_peers(self, flow: JSONDict) -> None:
        own = cache_mod.key_of(flow)
        for value in flow_concurrency_index(flow):
            for peer in self.flows.by_index(CONCURRENCY_INDEX, value):
                key = cache_mod.key_of(peer)
                if key != own:
                    self.enqueue(key)

    def on_job_change(self, old: JSONDict | None, new: JSONDict | None) -> None:
        obj = new or old
        if obj is None:
            return
        key = cache_mod.key_of(obj)
        if self.capacity is not None:
            self.capacity.observe(old, new)
        if new is None:
            with self._lock:
                self._finished_at.pop(key, None)
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    self._pod_details.pop(uid, None)
        elif job_finished(new) and not job_finished(old):
            with self._lock:
                self._finished_at[key] = time.monotonic()
        flow_key = owner_flow_key(obj)
        if flow_key and (old is None or new is None or job_signature(old) != job_signature(new)):
            self.enqueue(flow_key)

    # -- the pass ----------------------------------------------------------------------------
    def reconcile(self, key: str) -> float | None:
        cached = self.flows.get(key)
        if cached is None:
            return None  # deleted: owner references clean up its objects
        flow = packing.unpack(cached)  # the whole spec, for this pass only
        meta = flow.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return None
        namespace, uid = str(meta.get("namespace")), str(meta.get("uid"))
        observed = self._observed_jobs(flow)
        peers = [
            p
            for value in flow_concurrency_index(flow)
            for p in self.flows.by_index(CONCURRENCY_INDEX, value)
            if (p.get("metadata") or {}).get("uid") != uid
        ]
        if self.capacity is None:
            return self._reconcile(flow, observed, peers, budget=None, planned=[])
        # The cap's share of this pass, held until its creates are counted (controller.capacity).
        budget = self.capacity.reserve(key)
        planned: list[planning.Plan] = []
        try:
            return self._reconcile(flow, observed, peers, budget=budget, planned=planned)
        finally:
            # Our own creates reach the cache without an event: count them here, even when the
            # pass failed after some were made.
            result = planned[-1] if planned else None
            created = [
                f"{namespace}/{_meta(job).get('name')}"
                for job in (result.create_jobs if result is not None else ())
            ]
            held = result.held_for_capacity if result is not None else 0
            self.capacity.settle(key, created, held=held, unfinished=self._job_unfinished)

    def _job_unfinished(self, job_key: str) -> bool:
        """The Job is in the cache (created, or adopted) and has not finished."""
        cached = self.jobs.get(job_key)
        return cached is not None and not job_finished(cached)

    def _reconcile(
        self,
        flow: JSONDict,
        observed: list[planning.ObservedJob],
        peers: list[JSONDict],
        *,
        budget: int | None,
        planned: list[planning.Plan],
    ) -> float | None:
        """The pass proper; each Plan it computes is appended to ``planned``."""
        meta = flow.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        uid = str(meta.get("uid"))
        now = self.now()
        result = self._plan(flow, observed, now, peers, budget=budget)
        if result.needs_pod_details:
            self._read_pod_details(flow, observed, result.needs_pod_details)
            observed = self._observed_jobs(flow)
            result = self._plan(flow, observed, now, peers, budget=budget)
        planned.append(result)

        if self._create_objects(flow, result.create_objects):
            # A resourceTemplates object was refused for good: start nothing that needs it.
            # The next pass hands the refusal to the planner, which ends the flow with it.
            return 0.0
        refused = self._create_jobs(flow, [dict(job) for job in result.create_jobs], observed)
        for job_name in result.delete_jobs:
            self._delete_job(str(namespace), job_name)

        # The cached status is what the server returned for our last write: already plain JSON
        # without nulls, so only the planner's side needs normalising.
        old_status = flow.get("status") or {}
        new_status = _normalise(result.status)
        if new_status != old_status:
            updated = self.kube.replace(
                JOBFLOWS, namespace, name, status_body(flow, new_status), subresource="status"
            )
            self._count_write()
            self.flows.upsert(updated, notify=False)
            self._observe_transitions(old_status, new_status)
            if old_status.get("phase") != new_status.get("phase"):
                self.enqueue_peers(flow)
        for event in result.events:
            self.recorder.record(flow, type_=event.type, reason=event.reason, message=event.message)

        if result.delete_flow:
            try:
                self.kube.delete(
                    JOBFLOWS, namespace, name, propagation_policy="Background", uid=uid
                )
                self._count_write()
                log.info("deleted finished flow (TTL)", extra={"flow": cache_mod.key_of(flow)})
            except NotFound:
                pass
            return None
        if refused:
            # The next pass plans with the refusals: the attempt fails and retries apply.
            return 0.0
        return None if result.requeue_after is None else float(result.requeue_after)

    def _plan(
        self,
        flow: JSONDict,
        observed: list[planning.ObservedJob],
        now: datetime,
        peers: list[JSONDict],
        *,
        budget: int | None = None,
    ) -> planning.Plan:
        """The pure part of the pass, as a boundary: whatever validation or the planner raises
        is reported on the flow and raised again as ``PlanningCrashed``."""
        uid = str((flow.get("metadata") or {}).get("uid"))
        with self._lock:
            rejected = dict(self._refused.get(uid) or {})
        try:
            problems = self._spec_problems(flow)
            return planning.plan(
                flow,
                observed,
                now,
                peers=peers,
                fetch_image=self.fetch_image,
                problems=problems,
                rejected=rejected,
                max_starts=budget,
            )
        except PROPAGATE:
            raise
        except BaseException as exc:
            self._report_crash(flow, exc, now)
            raise PlanningCrashed(cache_mod.key_of(flow), exc) from exc

    def _report_crash(self, flow: JSONDict, error: BaseException, now: datetime) -> None:
        """Write ``Accepted=False`` (``ReconcileError``) unless the flow already says exactly
        that; the other conditions, the phase and the steps are kept as they are."""
        meta = flow.get("metadata") or {}
        prior = flow.get("status") or {}
        message = crash_message(error)
        previous = list(prior.get("conditions") or ())
        kept = [
            status.Desired(
                type=str(c.get("type")),
                status=c.get("status") == "True",
                reason=str(c.get("reason") or ""),
                message=str(c.get("message") or ""),
            )
            for c in previous
            if c.get("type") in status.CONDITION_ORDER and c.get("type") != status.ACCEPTED
        ]
        generation = meta.get("generation")
        new_status = dict(prior)
        new_status["phase"] = prior.get("phase") or "Pending"
        new_status["conditions"] = status.merge_conditions(
            previous,
            [status.Desired(status.ACCEPTED, False, RECONCILE_ERROR, message), *kept],
            now=now,
            generation=generation if isinstance(generation, int) else None,
        )
        new_status = _normalise(new_status)
        if new_status == prior:
            return
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        updated = self.kube.replace(
            JOBFLOWS, namespace, name, status_body(flow, new_status), subresource="status"
        )
        self._count_write()
        self.flows.upsert(updated, notify=False)
        self.recorder.record(flow, type_="Warning", reason=RECONCILE_ERROR, message=message)

    # -- reading -----------------------------------------------------------------------------
    def _spec_problems(self, flow: JSONDict) -> list[Problem]:
        """``planning.spec_problems(flow)``, computed once per (uid, generation).

        The API server bumps ``metadata.generation`` on every spec change (the status and the
        metadata do not count, and validation reads only the spec and the immutable name). A
        server that does not set it gets no memo."""
        meta = flow.get("metadata") or {}
        uid, generation = str(meta.get("uid") or ""), meta.get("generation")
        if not uid or not isinstance(generation, int) or generation <= 0:
            return planning.spec_problems(flow)
        with self._lock:
            known = self._problems.get(uid)
        if known is not None and known[0] == generation:
            return known[1]
        problems = planning.spec_problems(flow)
        with self._lock:
            self._problems[uid] = (generation, problems)
        return problems

    def _observed_jobs(self, flow: JSONDict) -> list[planning.ObservedJob]:
        meta = flow.get("metadata") or {}
        uid = meta.get("uid") or ""
        index = f"{meta.get('namespace')}/{names.label_value(str(meta.get('name')))}"
        observed = []
        with self._lock:
            details = dict(self._pod_details)
        for job in self.jobs.by_index(FLOW_INDEX, index):
            if not is_owned_by(job, uid):
                continue  # a namesake flow's leftovers, not ours
            found = details.get((job.get("metadata") or {}).get("uid") or "")
            observed.append(
                planning.ObservedJob(
                    job=packing.unpack_job(job),  # its whole spec, for this pass only
                    exit_code=found.exit_code if found else None,
                    termination_message=found.termination_message if found else None,
                    failed_init_container=found.init_container if found else None,
                    pod_details_read=found is not None,
                )
            )
        observed.sort(key=lambda o: str(_meta(o.job).get("name")))
        return observed

    def _read_pod_details(
        self, flow: JSONDict, observed: Sequence[planning.ObservedJob], wanted: Sequence[str]
    ) -> None:
        namespace = (flow.get("metadata") or {}).get("namespace")
        container = pods_mod.failure_container(flow)
        by_name = {str(_meta(o.job).get("name")): o.job for o in observed}
        for job_name in wanted:
            job = by_name.get(job_name)
            if job is None:
                continue
            # The Job controller labels its pods job-name=<job> (old and new spellings); the
            # owner uid check keeps out pods of a deleted namesake Job.
            uid = str(_meta(job).get("uid") or "")
            listed = self.kube.list_all(PODS, namespace, label_selector=f"job-name={job_name}")
            pods = [p for p in listed.get("items") or () if is_owned_by(p, uid)]
            details = pods_mod.pick_pod_details(pods, container=container)
            with self._lock:
                self._pod_details[uid] = details

    # -- writing -----------------------------------------------------------------------------
    def _create_objects(self, flow: JSONDict, objects: Sequence[Mapping[str, Any]]) -> bool:
        """Create the resourceTemplates objects; True when one was refused for good (422, 403,
        another owner's object in the way), remembered by name for the planner like a refused
        Job. Any other error is raised (retried with backoff)."""
        uid = str(_meta(flow).get("uid"))
        for obj in objects:
            name = str(_meta(obj).get("name"))
            try:
                self._create_owned(flow, dict(obj))
            except ApiError as exc:
                if kube_mod.policy(exc) is not kube_mod.Policy.REFUSED:
                    raise
                message = refusal_message(exc)
                with self._lock:
                    self._refused.setdefault(uid, {})[name] = message
                log.warning(
                    "resource create refused",
                    extra={"flow": cache_mod.key_of(flow), "object": name, "error": message},
                )
                return True
        return False

    def _create_owned(self, flow: JSONDict, obj: JSONDict) -> None:
        resource = RESOURCE_BY_KIND.get((str(obj.get("apiVersion")), str(obj.get("kind"))))
        if resource is None:
            raise ApiError(f"cannot create a {obj.get('kind')}: not a resourceTemplates kind")
        meta = obj.get("metadata") or {}
        namespace = (flow.get("metadata") or {}).get("namespace")
        uid = str((flow.get("metadata") or {}).get("uid"))
        try:
            self.kube.create(resource, namespace, obj)
            self._count_write()
        except AlreadyExists:
            existing = self.kube.get(resource, namespace, str(meta.get("name")))
            if not is_owned_by(existing, uid):
                raise ForeignObject(
                    f"{obj.get('kind')} {namespace}/{meta.get('name')} exists and is not owned "
                    "by this flow; delete or rename it"
                ) from None

    def _create_jobs(
        self, flow: JSONDict, jobs: list[JSONDict], observed: Sequence[planning.ObservedJob]
    ) -> list[str]:
        """Create the pass's Jobs, concurrently when there are several (a fan-out step's
        dependants all become ready together; creating them one by one would add each create's
        latency to the next one's dispatch). All are attempted. Returns the names of the Jobs
        refused for good (remembered for the planner, see the module docstring); any other
        error is raised after all were attempted."""
        errors: list[BaseException | None] = []
        if len(jobs) <= 1 or self.pool is None:
            for job in jobs:
                try:
                    self._create_job(flow, job, observed)
                    errors.append(None)
                except ApiError as exc:
                    errors.append(exc)
        else:
            # The pass's own thread creates the first while the pool creates the others.
            futures = [self.pool.submit(self._create_job, flow, job, observed) for job in jobs[1:]]
            first: BaseException | None = None
            try:
                self._create_job(flow, jobs[0], observed)
            except Exception as exc:  # like the pool's: kept, raised once all were attempted
                first = exc
            errors = [first, *(f.exception() for f in futures)]
        uid = str(_meta(flow).get("uid"))
        refused: dict[str, str] = {}
        failed: BaseException | None = None
        for job, error in zip(jobs, errors, strict=True):
            name = str(_meta(job).get("name"))
            if isinstance(error, ApiError) and kube_mod.policy(error) is kube_mod.Policy.REFUSED:
                refused[name] = refusal_message(error)
            elif error is not None:
                failed = failed or error
        with self._lock:
            known = self._refused.setdefault(uid, {})
            for job, error in zip(jobs, errors, strict=True):
                if error is None:
                    known.pop(str(_meta(job).get("name")), None)  # refused before, not now
            known.update(refused)
            if not known:
                del self._refused[uid]
        for name, message in refused.items():
            log.warning(
                "job create refused",
                extra={"flow": cache_mod.key_of(flow), "job": name, "error": message},
            )
        if failed is not None:
            raise failed
        return list(refused)

    def _create_job(
        self, flow: JSONDict, job: JSONDict, observed: Sequence[planning.ObservedJob]
    ) -> None:
        namespace = (flow.get("metadata") or {}).get("namespace")
        uid = str((flow.get("metadata") or {}).get("uid"))
        job_name = str((job.get("metadata") or {}).get("name"))
        try:
            created = self.kube.create(JOBS, namespace, job)
            self._count_write()
        except AlreadyExists:
            created = self.kube.get(JOBS, namespace, job_name)
            if not is_owned_by(created, uid):
                raise ForeignObject(
                    f"Job {namespace}/{job_name} exists and is not owned by this flow"
                ) from None
            log.info("adopted existing job", extra={"job": job_name, "ns": namespace})
        self.jobs.upsert(created, notify=False)
        self._observe_dispatch(flow, job, observed)

    def _delete_job(self, namespace: str, job_name: str) -> None:
        try:
            self.kube.delete(JOBS, namespace, job_name, propagation_policy="Background")
            self._count_write()
        except NotFound:
            pass

    def _count_write(self) -> None:
        with self._lock:
            self.writes += 1

    # -- metrics -----------------------------------------------------------------------------
    def _observe_transitions(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        before = {s.get("name"): s.get("phase") for s in old.get("steps") or ()}
        for step in new.get("steps") or ():
            phase = step.get("phase")
            if not phase or before.get(step.get("name")) == phase:
                continue
            duration = None
            if phase in TERMINAL_STEP_PHASES:
                start = decoded.parse_time(step.get("startTime"))
                end = decoded.parse_time(step.get("completionTime"))
                if start and end:
                    duration = max(0.0, (end - start).total_seconds())
            self.metrics.step_entered(str(phase), duration)

    def _observe_dispatch(
        self, flow: JSONDict, job: JSONDict, observed: Sequence[planning.ObservedJob]
    ) -> None:
        labels = (job.get("metadata") or {}).get("labels") or {}
        if labels.get(names.LABEL_ATTEMPT, "0") != "0":
            return  # a retry waits on its own backoff, not on an upstream step
        step_name = labels.get(names.LABEL_STEP)
        deps: list[str] = []
        for step in (flow.get("spec") or {}).get("steps") or ():
            if step.get("name") == step_name:
                deps = list(step.get("dependencies") or ())
        if not deps:
            return
        namespace = (flow.get("metadata") or {}).get("namespace")
        latest: float | None = None
        with self._lock:
            for o in observed:
                meta = _meta(o.job)
                if str((meta.get("labels") or {}).get(names.LABEL_STEP)) in deps:
                    seen = self._finished_at.get(f"{namespace}/{meta.get('name')}")
                    if seen is not None and (latest is None or seen > latest):
                        latest = seen
        if latest is not None:
            latency = time.monotonic() - latest
            self.metrics.dispatch_latency.observe(latency)
            self.dispatch_samples.append(latency)
