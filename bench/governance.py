"""Governance benchmark: what the caps cost the planner, and how fair --max-active-jobs is.

1. ``steady pass``: process CPU of one ``plan()`` over 2,000 running Job steps (every refresh
   now also reads whether the Job is suspended), and of the first pass of the same fan-out
   under ``executionPolicy.parallelism: 50`` (50 Jobs built instead of 2,000).
2. ``fairness``: the real controller against kubesim with ``--max-active-jobs 4``: a flow of
   40 steps (0.3 s each) starts, then a flow of one step arrives. Printed: the position of the
   small flow's Job among all 41 starts (from the Job watch of the official client), the peak of
   Jobs active at once, and how long each flow took from its creation to Succeeded.

Run: ``python bench/governance.py``. CPU figures are robust to a busy machine; the flow
durations are wall clock.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client
from prometheus_client import CollectorRegistry

import kubesim
from controller.kube import Kube
from controller.runner import Controller, ControllerConfig
from jobflow import planning
from tests.fixtures.controller import FAST_TIMINGS, Cluster, flow, install_crd, job_step
from tests.fixtures.kubesim import api_client
from tests.integration.test_controller_governance import JobWatch
from tests.unit.planning_world import flow as world_flow
from tests.unit.planning_world import running_after
from tests.unit.planning_world import step as world_step

WIDTH = 2000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def cpu_ms(action: object, *, repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        action()  # type: ignore[operator]
    return (time.process_time() - start) / repeat * 1000


def planner() -> None:
    steps = [world_step(f"s{i}") for i in range(WIDTH)]
    wide = world_flow(*steps)
    problems = planning.spec_problems(wide)
    first = planning.plan(wide, [], NOW, problems=problems)
    running, observed = running_after(wide, first)
    later = NOW + timedelta(seconds=1)
    steady = cpu_ms(lambda: planning.plan(running, observed, later, problems=problems), repeat=5)
    print(f"steady pass, {WIDTH} running steps:      {steady:7.1f} ms CPU")
    capped = world_flow(*steps, policy={"parallelism": 50})
    known = planning.spec_problems(capped)
    first_capped = cpu_ms(lambda: planning.plan(capped, [], NOW, problems=known), repeat=3)
    print(f"first pass, parallelism 50 of {WIDTH}:  {first_capped:7.1f} ms CPU")


def fairness() -> None:
    handle = kubesim.start()
    try:
        kube = Kube.connect(str(handle.kubeconfig), qps=0)
        install_crd(kube)
        cluster = Cluster(handle, kube)
        api = api_client(handle)
        listed = client.BatchV1Api(api).list_namespaced_job("default")
        watch = JobWatch(api)
        thread = threading.Thread(
            target=watch.run, args=(listed.metadata.resource_version,), daemon=True
        )
        thread.start()
        config = ControllerConfig(
            workers=2, leader_elect=False, timings=FAST_TIMINGS, max_active_jobs=4
        )
        ctl = Controller.connect(
            str(handle.kubeconfig), config, qps=0, burst=100, registry=CollectorRegistry()
        )
        ctl.start()
        began = time.monotonic()
        cluster.create_flow(flow("huge", [job_step(f"h{i}", duration=0.3) for i in range(40)]))
        while len(cluster.jobs("huge")) < 4:
            time.sleep(0.05)
        arrived = time.monotonic()
        cluster.create_flow(flow("small", [job_step("only", duration=0.1)]))
        cluster.wait_phase("small", "Succeeded", timeout=60)
        small_done = time.monotonic()
        cluster.wait_phase("huge", "Succeeded", timeout=120)
        huge_done = time.monotonic()
        while len(watch.started) < 41 or watch.active:
            time.sleep(0.05)
        order = [f for f, _ in watch.started]
        print(
            f"fairness: small flow's Job started {order.index('small') + 1} of {len(order)};"
            f" peak active {watch.peak} (cap 4)"
        )
        print(
            f"          small created->Succeeded {small_done - arrived:.2f} s;"
            f" huge {huge_done - began:.2f} s"
        )
        watch.stop.set()
        ctl.stop(timeout=5)
        ctl.close()
        kube.close()
    finally:
        handle.stop()


if __name__ == "__main__":
    planner()
    fairness()
