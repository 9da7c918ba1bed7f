"""Prometheus metrics of the controller, all named ``zenflow_*`` and registered on an injected
``CollectorRegistry`` (building two controllers in one process, as tests do, must not collide).

Label values are bounded: phases, verbs, HTTP codes, results, thread roles. Never flow or step
names.
The flows-by-phase gauge is not incremented and decremented (that drifts when an event is
missed, the seed's bug): a custom collector recounts the watch cache at every scrape.
"""

from __future__ import annotations

from collections import Counter as TallyCounter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from jobflow.phases import FlowPhase

FLOW_PHASES = tuple(str(phase) for phase in FlowPhase)

# Dispatch is a controller-internal latency: tens of milliseconds when healthy.
DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Steps run from seconds to hours.
STEP_DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 12 * 3600)
RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# The long-lived controller threads by role (controller.supervisor restarts them); the label of
# zenflow_thread_restarts_total. Each starts at 0 so a restart shows as an increase.
THREAD_ROLES = (
    "reconcile",
    "resync",
    "informer-jobflows",
    "informer-jobs",
    "event-writer",
    "leader-elector",
)


class FlowPhaseCollector(Collector):
    """``zenflow_flows{phase}``: the JobFlows in the cache by status.phase, counted at scrape."""

    def __init__(self, flows: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        self._flows = flows

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tally: TallyCounter[str] = TallyCounter()
        for flow in self._flows():
            phase = str((flow.get("status") or {}).get("phase") or "Pending")
            tally[phase if phase in FLOW_PHASES else "Unknown"] += 1
        family = GaugeMetricFamily(
            "zenflow_flows", "JobFlows known to the controller by phase", labels=["phase"]
        )
        for phase in (*FLOW_PHASES, *(["Unknown"] if tally["Unknown"] else [])):
            family.add_metric([phase], tally[phase])
        yield family

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # unchecked collector: the registry calls collect() only at scrape time


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._request_children: dict[tuple[str, str], Counter] = {}
        self._step_children: dict[str, tuple[Counter, Histogram]] = {}
        self.api_requests = Counter(
            "zenflow_api_requests_total",
            "Kubernetes API requests made by the controller, by verb and HTTP code",
            ["verb", "code"],
            registry=registry,
        )
        self.step_transitions = Counter(
            "zenflow_step_transitions_total",
            "Step phase transitions written to status, by the phase entered",
            ["phase"],
            registry=registry,
        )
        self.step_duration = Histogram(
            "zenflow_step_duration_seconds",
            "Time from a step's start to its completion, by final phase",
            ["phase"],
            buckets=STEP_DURATION_BUCKETS,
            registry=registry,
        )
        self.dispatch_latency = Histogram(
            "zenflow_dispatch_latency_seconds",
            "From the controller seeing an upstream step's Job finish to the dependant Job created",
            buckets=DISPATCH_BUCKETS,
            registry=registry,
        )
        self.reconcile_duration = Histogram(
            "zenflow_reconcile_duration_seconds",
            "Duration of one reconcile pass",
            buckets=RECONCILE_BUCKETS,
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "zenflow_reconcile_errors_total",
            "Reconcile passes that failed and were requeued with backoff, by error class",
            ["error"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "zenflow_queue_depth", "Keys ready in the work queue", registry=registry
        )
        self.events_dropped = Counter(
            "zenflow_events_dropped_total",
            "Kubernetes Events not written (queue full or API error)",
            registry=registry,
        )
        self.is_leader = Gauge(
            "zenflow_leader", "1 when this replica holds the leader Lease", registry=registry
        )
        self.thread_restarts = Counter(
            "zenflow_thread_restarts_total",
            "Controller threads that ended unasked and were restarted, by role",
            ["thread"],
            registry=registry,
        )
        for role in THREAD_ROLES:
            self.thread_restarts.labels(thread=role)
        # --max-active-jobs (controller.capacity): read from the ledger at scrape time.
        self.active_jobs = Gauge(
            "zenflow_active_jobs",
            "Unfinished Jobs created by zen-flow (running, pending or suspended), all flows",
            registry=registry,
        )
        self.max_active_jobs = Gauge(
            "zenflow_max_active_jobs",
            "The controller-wide cap on active Jobs (--max-active-jobs); 0: no cap",
            registry=registry,
        )
        self.flows_waiting_for_capacity = Gauge(
            "zenflow_flows_waiting_for_capacity",
            "Flows with ready steps held back by --max-active-jobs",
            registry=registry,
        )
        self._phase_collector: FlowPhaseCollector | None = None

    def observe_request(self, verb: str, code: str) -> None:
        # labels() takes a lock and checks its arguments; every API request passes here and
        # the (verb, code) pairs are few.
        child = self._request_children.get((verb, code))
        if child is None:
            child = self._request_children[verb, code] = self.api_requests.labels(verb, code)
        child.inc()

    def step_entered(self, phase: str, duration: float | None = None) -> None:
        """A step entered ``phase`` (its run took ``duration`` seconds, when it ended)."""
        # As observe_request: a status write reports every step that moved, phases are few.
        children = self._step_children.get(phase)
        if children is None:
            children = self._step_children[phase] = (
                self.step_transitions.labels(phase=phase),
                self.step_duration.labels(phase=phase),
            )
        children[0].inc()
        if duration is not None:
            children[1].observe(duration)

    def track_flows(self, flows: Callable[[], Iterable[Mapping[str, Any]]]) -> None:
        """Register the recounting phase gauge over ``flows`` (once per registry)."""
        if self._phase_collector is None:
            self._phase_collector = FlowPhaseCollector(flows)
            self.registry.register(self._phase_collector)
        else:
            self._phase_collector._flows = flows

    def count_restart(self, role: str) -> None:
        self.thread_restarts.labels(thread=role if role in THREAD_ROLES else "other").inc()

    def set_capacity_source(
        self, *, limit: int | None, active: Callable[[], int], waiting: Callable[[], int]
    ) -> None:
        self.max_active_jobs.set(float(limit or 0))
        self.active_jobs.set_function(lambda: float(active()))
        self.flows_waiting_for_capacity.set_function(lambda: float(waiting()))

    def set_queue_depth_source(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(lambda: float(depth()))
