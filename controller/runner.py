"""The controller as one object: ``Controller(kube, config).start()`` ... ``.stop(timeout)``.

Threads (all daemons, all ended by ``stop``):
  leader elector ──(on becoming leader)──> a *term*: 2 informers (JobFlows; Jobs labelled
  managed-by=zen-flow) → handlers enqueue keys → work queue → N workers → Reconciler; an
  event writer; a resync ticker that re-queues every cached flow every ``resync_period``.
When leadership is lost the term is torn down completely (queue shut, workers joined, watches
closed) and a new one is built on the next win, so no state leaks from one term to the next.
Without leader election the term starts at once.

``ready`` is what /readyz reports: a follower is ready (it serves the webhook and waits for the
Lease); a leader is ready once both caches have synced. Workers do not take keys before that,
so a pass never plans from an empty Job cache.

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

from controller import cache as cache_mod
from controller.events import EventRecorder
from controller.kube import JOBFLOWS, JOBS, LEASES, ApiError, JSONDict, Kube
from controller.leader import LeaderElector, LeaderTimings
from controller.metrics import ControllerMetrics
from controller.queue import WorkQueue
from controller.reconciler import (
    CONCURRENCY_INDEX,
    FLOW_INDEX,
    Reconciler,
    flow_concurrency_index,
    job_flow_index,
)
from jobflow import artifacts, names

log = logging.getLogger(__name__)

MANAGED_JOBS_SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
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


def prepare_flow(flow: JSONDict) -> JSONDict:
    """What the JobFlow cache keeps: no managedFields, and apiVersion/kind always set (list items
    may omit them; status PUTs and Event involvedObjects need them)."""
    flow = cache_mod.strip_managed_fields(flow)
    if flow.get("apiVersion") != names.API_VERSION or flow.get("kind") != names.KIND:
        flow = {**flow, "apiVersion": names.API_VERSION, "kind": names.KIND}
    return flow


def strip_job(job: JSONDict) -> JSONDict:
    """What the Job cache keeps: no managedFields, no pod template spec (the bulk of a Job; no
    reader needs it: outcomes come from status, identity from metadata, pods from selector)."""
    job = cache_mod.strip_managed_fields(job)
    spec = job.get("spec")
    if isinstance(spec, dict) and "template" in spec:
        job = {**job, "spec": {k: v for k, v in spec.items() if k != "template"}}
    return job


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
        self.reconciler = Reconciler(
            ctl.kube,
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
        self.threads: list[threading.Thread] = []

    @property
    def synced(self) -> bool:
        return self.flows.has_synced and self.jobs.has_synced

    def start(self) -> None:
        self.ctl.metrics.track_flows(self.flows.objects)
        self.ctl.metrics.set_queue_depth_source(lambda: len(self.queue))
        self.recorder.start()
        self.flows.start()
        self.jobs.start()
        for i in range(self.ctl.config.workers):
            self._spawn(self._work, f"reconcile-{i}")
        if self.ctl.config.resync_period > 0:
            self._spawn(self._resync, "resync")

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self.threads.append(t)

    def _wait_synced(self) -> bool:
        while not self.stopping.is_set():
            if self.synced:
                return True
            self.stopping.wait(0.02)
        return False

    def _work(self) -> None:
        if not self._wait_synced():
            return
        metrics = self.ctl.metrics
        while (key := self.queue.get()) is not None:
            started = time.perf_counter()
            try:
                requeue = self.reconciler.reconcile(key)
                self.queue.forget(key)
                if requeue is not None:
                    self.queue.add_after(key, max(MIN_REQUEUE, requeue))
            except ApiError as exc:
                metrics.reconcile_errors.labels(error=type(exc).__name__).inc()
                delay = self.queue.add_rate_limited(key, at_least=exc.retry_after or 0.0)
                log.warning(
                    "reconcile failed, retrying",
                    extra={"flow": key, "error": str(exc), "retry_in": round(delay, 3)},
                )
            except Exception:  # a planner or runtime bug: keep the worker alive, back off
                metrics.reconcile_errors.labels(error="internal").inc()
                self.queue.add_rate_limited(key)
                log.exception("reconcile crashed", extra={"flow": key})
            finally:
                self.queue.done(key)
                metrics.reconcile_duration.observe(time.perf_counter() - started)

    def _resync(self) -> None:
        period = self.ctl.config.resync_period
        while not self.stopping.wait(period):
            for key in self.flows.object_keys():
                self.queue.add(key)

    def stop(self, timeout: float) -> bool:
        """Stop taking keys, wait for in-flight passes (bounded), close watches and events."""
        deadline = time.monotonic() + timeout
        self.stopping.set()
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
        self._elector_thread: threading.Thread | None = None
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
        if not self._started:
            return False
        term = self._term
        return term is None or term.synced

    @property
    def events_written(self) -> int:
        """Events written over this controller's life (all leadership terms)."""
        term = self._term
        return self._events_written + (term.recorder.written if term is not None else 0)

    def is_ready(self) -> bool:
        """The readiness check `zen-flow serve` registers for /readyz."""
        return self.ready

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
        cfg = self.config
        if not cfg.leader_elect:
            self._start_leading()
            return
        self._elector = LeaderElector(
            KubeLeaseApi(self.kube),
            namespace=cfg.lease_namespace,
            name=cfg.lease_name,
            identity=cfg.identity,
            timings=cfg.timings,
            on_started=self._start_leading,
            on_stopped=self._stop_leading,
        )
        self._elector_thread = threading.Thread(
            target=self._elector.run, name="leader-elector", daemon=True
        )
        self._elector_thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Graceful stop; True when every thread ended within ``timeout``."""
        if not self._started:
            return True
        self._shutdown_timeout = timeout
        deadline = time.monotonic() + timeout
        clean = True
        if self._elector is not None and self._elector_thread is not None:
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
    )
    kubeconfig = str(settings.kubeconfig) if settings.kubeconfig is not None else None
    return Controller.connect(
        kubeconfig, config, qps=settings.kube_qps, burst=settings.kube_burst, registry=registry
    )
