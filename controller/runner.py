"""The controller as one object: ``Controller(kube, config).start()`` ... ``.stop(timeout)``.

Threads (all daemons, all ended by ``stop``):
  leader elector ──(on becoming leader)──> a *term*: 2 informers (JobFlows; Jobs labelled
  managed-by=zen-flow) → handlers enqueue keys → work queue → N workers → Reconciler; an
  event writer; a resync ticker that re-queues every cached flow every ``resync_period``.
When leadership is lost the term is torn down completely (queue shut, workers joined, watches
closed) and a new one is built on the next win, so no state leaks from one term to the next.
Without leader election the term starts at once.

``ready`` is what /readyz reports: a follower is ready (it serves the webhook and waits for the
Lease); a leader is ready once both caches have synced, and for as long as it can reconcile:
some worker is alive, and keys that are ready do not wait ``stall_after`` seconds with no worker
finishing a key or idling (``controller.supervisor.reconcile_blocker``). Workers do not take
keys before the caches synced, so a pass never plans from an empty Job cache.

Errors from a pass follow ``kube.policy`` (by the error's class): a transient one (5xx, 429,
timeouts, conflicts) retries the key with per-key backoff, no sooner than the server's
Retry-After; a refusal for good (403, 422, an object in the way) is logged as an error and
retried no sooner than ``kube.REFUSED_RETRY_AFTER`` (a Job create refused for good never fails
a pass: the reconciler fails that step's attempt, CreateRejected).

Thread boundaries (controller.supervisor): a worker survives anything a pass raises except
SystemExit/KeyboardInterrupt/GeneratorExit (native panics included): it logs it once with the
key, retries the key with backoff, and a crash in validating/planning the flow leaves
``Accepted=False`` on it (controller.reconciler). Every thread above (elector, informers,
workers, resync, event writer) is watched by one supervisor thread, which restarts a thread
that ended anyway and counts it in ``zenflow_thread_restarts_total{thread}``; a worker killed
mid-pass has its key requeued first.

Shutdown (SIGTERM): stop taking keys, let in-flight reconciles finish within the timeout, stop
the watches, flush queued Events, release the Lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from controller import arenas, packing
from controller import cache as cache_mod
from controller import kube as kube_mod
from controller.capacity import Capacity
from controller.events import EventRecorder
from controller.kube import JOBFLOWS, JOBS, LEASES, ApiError, JSONDict, Kube
from controller.leader import LeaderElector, LeaderTimings
from controller.metrics import ControllerMetrics
from controller.queue import WorkQueue
from controller.reconciler import (
    CONCURRENCY_INDEX,
    FLOW_INDEX,
    PlanningCrashed,
    Reconciler,
    flow_concurrency_index,
    job_flow_index,
)
from controller.supervisor import (
    DEFAULT_STALL_AFTER,
    IDLE_BEAT,
    PROPAGATE,
    Progress,
    SupervisedThread,
    Supervisor,
    reconcile_blocker,
)
from jobflow import artifacts, names

log = logging.getLogger(__name__)

MANAGED_JOBS_SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
# JobFlows per LIST page (cache.LIST_PAGE, 20, for Jobs): flows are large objects.
FLOW_LIST_PAGE = 10
# A requeue sooner than this is rounded up: deadlines are second-precision timestamps, and a
# planner answer of "0 s" must not turn into a busy loop.
MIN_REQUEUE = 0.05


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ControllerConfig:
    workers: int = 4
    resync_period: float = 300.0  # 0: never
    namespace: str | None = None  # None: all namespaces
    leader_elect: bool = True
    lease_name: str = "zen-flow-leader"
    lease_namespace: str = "default"
    identity: str = field(default_factory=default_identity)
    timings: LeaderTimings = field(default_factory=LeaderTimings)
    # image of the init containers that download http input artifacts (needs curl)
    artifact_fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE
    # /readyz turns false when ready keys wait this long with no worker progress
    stall_after: float = DEFAULT_STALL_AFTER
    # --max-active-jobs: unfinished Jobs of all flows at once, shared fairly (controller.capacity)
    max_active_jobs: int | None = None


class KubeLeaseApi:
    """Adapts Kube to the elector's LeaseApi protocol."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def get_lease(self, namespace: str, name: str) -> JSONDict:
        return self.kube.get(LEASES, namespace, name)

    def create_lease(self, namespace: str, body: JSONDict) -> JSONDict:
        return self.kube.create(LEASES, namespace, body)

    def replace_lease(self, namespace: str, name: str, body: JSONDict) -> JSONDict:
        return self.kube.replace(LEASES, namespace, name, body)


LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def prepare_flow(flow: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    """What the JobFlow cache keeps: no managedFields, no kubectl last-applied-configuration
    (a second copy of the whole manifest, as text, on every flow `kubectl apply` made; nothing
    here reads it), the spec packed (controller.packing: a pass unpacks it), and apiVersion/kind
    always set (list items may omit them; status PUTs and Event involvedObjects need them)."""
    flow = cache_mod.strip_managed_fields(flow)
    meta = flow.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        kept = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
        flow = {**flow, "metadata": {**meta, "annotations": kept}}  # type: ignore[dict-item]
    if flow.get("apiVersion") != names.API_VERSION or flow.get("kind") != names.KIND:
        flow = {**flow, "apiVersion": names.API_VERSION, "kind": names.KIND}
    return packing.pack(flow, previous)


def strip_job(job: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    """What the Job cache keeps: no managedFields, no pod template spec (the bulk of a Job; no
    reader needs it: outcomes come from status, identity from metadata, pods from selector),
    the rest of the spec packed (controller.packing: a pass unpacks it)."""
    job = cache_mod.strip_managed_fields(job)
    spec = job.get("spec")
    if isinstance(spec, dict) and "template" in spec:
        job = {**job, "spec": {k: v for k, v in spec.items() if k != "template"}}
    return packing.pack_job(job, previous)


class _Term:
    """Everything that lives while this replica leads."""

    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.queue = WorkQueue()
        self.flows = cache_mod.Informer(
            ctl.kube,
            JOBFLOWS,
            namespace=ctl.config.namespace,
            indexers={CONCURRENCY_INDEX: flow_concurrency_index},
            transform=prepare_flow,
            name="jobflows",
            # A page of 50 twenty-step flows peaked at ~13 MB decoded: at 100 active flows the
            # heap it left behind was most of the controller's growth (bench/controller.py).
            page=FLOW_LIST_PAGE,
        )
        self.jobs = cache_mod.Informer(
            ctl.kube,
            JOBS,
            namespace=ctl.config.namespace,
            label_selector=MANAGED_JOBS_SELECTOR,
            indexers={FLOW_INDEX: job_flow_index},
            transform=strip_job,
            name="jobs",
        )
        self.recorder = EventRecorder(
            ctl.kube, on_drop=ctl.metrics.events_dropped.inc, host=ctl.config.identity
        )
        # Concurrent Job creates within one pass (see Reconciler._create_jobs).
        self.pool = ThreadPoolExecutor(
            max_workers=max(2, ctl.config.workers), thread_name_prefix="create"
        )
        # Always kept (zenflow_active_jobs); it limits only with a cap (None or 0: none).
        self.capacity = Capacity(ctl.config.max_active_jobs, wake=self.queue.add)
        self.reconciler = Reconciler(
            ctl.kube,
            capacity=self.capacity,
            pool=self.pool,
            flows=self.flows,
            jobs=self.jobs,
            recorder=self.recorder,
            metrics=ctl.metrics,
            enqueue=self.queue.add,
            fetch_image=ctl.config.artifact_fetch_image,
        )
        self.flows.add_handler(self.reconciler.on_flow_change)
        self.jobs.add_handler(self.reconciler.on_job_change)
        self.stopping = threading.Event()
        self.progress = Progress(time.monotonic)
        self.workers = [
            SupervisedThread(
                "reconcile", self._work, name=f"reconcile-{i}", is_stopping=self.stopping.is_set
            )
            for i in range(ctl.config.workers)
        ]
        self.threads = list(self.workers)
        if ctl.config.resync_period > 0:
            self.threads.append(
                SupervisedThread(
                    "resync", self._resync, name="resync", is_stopping=self.stopping.is_set
                )
            )

    @property
    def synced(self) -> bool:
        return self.flows.has_synced and self.jobs.has_synced

    def live_workers(self) -> int:
        return sum(1 for w in self.workers if w.is_alive())

    def blocker(self) -> str | None:
        """Why this term cannot reconcile (None when it can); cheap, never waits on a worker."""
        if not self.synced:
            return "caches-not-synced"
        return reconcile_blocker(
            live_workers=self.live_workers(),
            has_ready_work=self.queue.has_ready_work(),
            last_progress=self.progress.last,
            now=time.monotonic(),
            stall_after=self.ctl.config.stall_after,
        )

    def start(self) -> None:
        self.ctl.metrics.track_flows(self.flows.objects)
        self.ctl.metrics.set_queue_depth_source(lambda: len(self.queue))
        capacity = self.capacity
        self.ctl.metrics.set_capacity_source(
            limit=capacity.limit, active=lambda: capacity.active, waiting=lambda: capacity.waiting
        )
        self.recorder.start()
        self.flows.start()
        self.jobs.start()
        for thread in self.threads:
            thread.start()
        self.ctl.supervisor.watch(self.recorder, self.flows, self.jobs, *self.threads)

    def _wait_synced(self) -> bool:
        while not self.stopping.is_set():
            if self.synced:
                self.progress.beat()  # a list that took minutes is not a stall
                return True
            self.stopping.wait(0.02)
        return False

    def _work(self) -> None:
        if not self._wait_synced():
            return
        while True:
            key = self.queue.get(timeout=IDLE_BEAT)
            if key is None:
                if self.queue.is_shutting_down:
                    return
                self.progress.beat()  # idle: nothing waited for this worker
                continue
            try:
                self._process(key)
            finally:
                self.queue.done(key)
                self.progress.beat()

    def _process(self, key: str) -> None:
        """One pass over ``key``: the worker's boundary (see the module docstring)."""
        metrics = self.ctl.metrics
        started = time.perf_counter()
        try:
            requeue = self.reconciler.reconcile(key)
            self.queue.forget(key)
            if requeue is not None:
                self.queue.add_after(key, max(MIN_REQUEUE, requeue))
        except ApiError as exc:
            # kube.policy, by the error's class. A refused Job create never gets here: the
            # reconciler turns it into a failed attempt (CreateRejected).
            metrics.reconcile_errors.labels(error=type(exc).__name__).inc()
            if kube_mod.policy(exc) is kube_mod.Policy.RETRY:
                delay = self.queue.add_rate_limited(key, at_least=exc.retry_after or 0.0)
                log.warning(
                    "reconcile failed, retrying",
                    extra={"flow": key, "error": str(exc), "retry_in": round(delay, 3)},
                )
            else:  # RBAC, an object in the way, a status the server refuses: a person acts
                delay = self.queue.add_rate_limited(key, at_least=kube_mod.REFUSED_RETRY_AFTER)
                log.error(
                    "reconcile refused by the API server, retrying",
                    extra={
                        "flow": key,
                        "error": str(exc),
                        "error_class": type(exc).__name__,
                        "code": exc.code,
                        "retry_in": round(delay, 3),
                    },
                )
        except PROPAGATE:
            # The thread ends (the supervisor starts another one); the key is not lost.
            self.queue.add_rate_limited(key)
            raise
        except BaseException as exc:  # a bug or a native panic: keep the worker, back off
            crashed = isinstance(exc, PlanningCrashed)
            cause = exc.error if isinstance(exc, PlanningCrashed) else exc
            metrics.reconcile_errors.labels(error="planning" if crashed else "internal").inc()
            earlier = self.queue.num_requeues(key)
            delay = self.queue.add_rate_limited(key)
            extra = {
                "flow": key,
                "error": type(cause).__name__,
                "retry_in": round(delay, 3),
                "failures": earlier + 1,
            }
            if earlier == 0:  # the traceback once; the retries of the same key in one line
                log.error(
                    "reconcile crashed",
                    exc_info=(type(cause), cause, cause.__traceback__),
                    extra=extra,
                )
            else:
                log.warning("reconcile crashed again", extra=extra)
        finally:
            metrics.reconcile_duration.observe(time.perf_counter() - started)

    def _resync(self) -> None:
        period = self.ctl.config.resync_period
        while not self.stopping.wait(period):
            try:
                for key in self.flows.object_keys():
                    self.queue.add(key)
            except PROPAGATE:
                raise
            except BaseException:
                log.exception("resync failed")

    def stop(self, timeout: float) -> bool:
        """Stop taking keys, wait for in-flight passes (bounded), close watches and events."""
        deadline = time.monotonic() + timeout
        self.stopping.set()
        self.ctl.supervisor.unwatch(self.recorder, self.flows, self.jobs, *self.threads)
        self.queue.shutdown()
        # a follower reports no flows (it holds no cache); the next term re-points these
        self.ctl.metrics.track_flows(tuple)
        self.ctl.metrics.set_queue_depth_source(lambda: 0)
        clean = True
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            clean = clean and not t.is_alive()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.flows.stop(max(0.1, deadline - time.monotonic()))
        self.jobs.stop(max(0.1, deadline - time.monotonic()))
        self.recorder.stop(max(0.1, deadline - time.monotonic()))
        return clean


class Controller:
    def __init__(
        self,
        kube: Kube,
        config: ControllerConfig | None = None,
        *,
        metrics: ControllerMetrics | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.kube = kube
        self.config = config or ControllerConfig()
        self.metrics = metrics or ControllerMetrics(registry or CollectorRegistry())
        if kube.observer is None:
            kube.observer = self.metrics.observe_request
        self._lock = threading.Lock()
        self._term: _Term | None = None
        self._elector: LeaderElector | None = None
        self._elector_thread: SupervisedThread | None = None
        self.supervisor = Supervisor(on_restart=self.metrics.count_restart)
        self._unready: str | None = None  # the last reason is_ready() logged
        self._started = False
        self._shutdown_timeout = 10.0
        self._events_written = 0

    @classmethod
    def connect(
        cls,
        kubeconfig: str | None,
        config: ControllerConfig | None = None,
        *,
        qps: float = 50.0,
        burst: int = 100,
        registry: CollectorRegistry | None = None,
    ) -> Controller:
        config = config or ControllerConfig()
        metrics = ControllerMetrics(registry or CollectorRegistry())
        kube = Kube.connect(
            kubeconfig,
            qps=qps,
            burst=burst,
            observer=metrics.observe_request,
            pool_size=2 * config.workers + 8,  # workers + create pool + watches
        )
        return cls(kube, config, metrics=metrics)

    # -- state -------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._term is not None

    @property
    def caches_synced(self) -> bool:
        term = self._term
        return term is not None and term.synced

    @property
    def ready(self) -> bool:
        return self.unready_reason is None

    @property
    def unready_reason(self) -> str | None:
        """Why /readyz says no, or None. A follower is ready; see the module docstring."""
        if not self._started:
            return "not-started"
        if not self.supervisor.is_alive:
            return "supervisor-dead"  # nothing would restart a thread that dies
        term = self._term
        return None if term is None else term.blocker()

    @property
    def live_workers(self) -> int:
        """Reconcile worker threads alive now (0 on a follower)."""
        term = self._term
        return term.live_workers() if term is not None else 0

    @property
    def events_written(self) -> int:
        """Events written over this controller's life (all leadership terms)."""
        term = self._term
        return self._events_written + (term.recorder.written if term is not None else 0)

    def is_ready(self) -> bool:
        """The readiness check `zen-flow serve` registers for /readyz; logs each change of
        verdict once."""
        reason = self.unready_reason
        if reason != self._unready:
            if reason is None:
                log.info("controller ready", extra={"was": self._unready})
            elif reason in ("not-started", "caches-not-synced"):
                log.info("controller not ready yet", extra={"reason": reason})
            else:
                log.warning("controller cannot reconcile", extra={"reason": reason})
            self._unready = reason
        return reason is None

    @property
    def reconciler(self) -> Reconciler | None:
        term = self._term
        return term.reconciler if term is not None else None

    # -- lifecycle ---------------------------------------------------------------------------
    def _start_leading(self) -> None:
        with self._lock:
            term = _Term(self)
            self._term = term
        self.metrics.is_leader.set(1)
        term.start()

    def _stop_leading(self) -> None:
        with self._lock:
            term, self._term = self._term, None
        self.metrics.is_leader.set(0)
        if term is not None:
            term.stop(self._shutdown_timeout)
            self._events_written += term.recorder.written

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        arenas.limit()  # before the controller's threads start (controller.arenas)
        self.supervisor.start()
        cfg = self.config
        if not cfg.leader_elect:
            self._start_leading()
            return
        elector = self._elector = LeaderElector(
            KubeLeaseApi(self.kube),
            namespace=cfg.lease_namespace,
            name=cfg.lease_name,
            identity=cfg.identity,
            timings=cfg.timings,
            on_started=self._start_leading,
            on_stopped=self._stop_leading,
        )
        self._elector_thread = SupervisedThread(
            "leader-elector",
            elector.run,
            name="leader-elector",
            is_stopping=lambda: elector.is_stopping,
        )
        self._elector_thread.start()
        self.supervisor.watch(self._elector_thread)

    def stop(self, timeout: float = 10.0) -> bool:
        """Graceful stop; True when every thread ended within ``timeout``."""
        if not self._started:
            return True
        self._shutdown_timeout = timeout
        deadline = time.monotonic() + timeout
        clean = True
        self.supervisor.stop()  # nothing is restarted while the rest stops
        if self._elector is not None and self._elector_thread is not None:
            self.supervisor.unwatch(self._elector_thread)
            self._elector.stop()  # the elector stops the term, then releases the Lease
            self._elector_thread.join(timeout)
            clean = not self._elector_thread.is_alive()
        else:
            self._stop_leading()
        clean = clean and time.monotonic() <= deadline
        self._started = False
        log.info("controller stopped", extra={"clean": clean})
        return clean

    def close(self) -> None:
        self.kube.close()


def from_settings(settings: Any, *, registry: CollectorRegistry) -> Controller:
    """The `zen-flow serve` seam: build a Controller from app.settings.Settings (duck-typed, so
    controller/ does not import app/). Metrics go to the process's shared registry."""
    config = ControllerConfig(
        workers=settings.workers,
        resync_period=settings.resync_period,
        leader_elect=settings.leader_elect,
        lease_name=settings.lease_name,
        lease_namespace=settings.lease_namespace,
        timings=LeaderTimings(
            settings.lease_duration, settings.renew_deadline, settings.retry_period
        ),
        artifact_fetch_image=getattr(
            settings, "artifact_fetch_image", artifacts.DEFAULT_FETCH_IMAGE
        ),
        max_active_jobs=getattr(settings, "max_active_jobs", 0) or None,
    )
    kubeconfig = str(settings.kubeconfig) if settings.kubeconfig is not None else None
    return Controller.connect(
        kubeconfig, config, qps=settings.kube_qps, burst=settings.kube_burst, registry=registry
    )
