"""Fan-out benchmark (issue 17): what a 1,000-item fan-out costs the JobFlow object and the
controller.

1. ``planner``: process CPU of the first pass of a 1,000-item fan-out under the step's
   parallelism 100, of a steady pass with 100 items running and 900 succeeded, and the size of
   the whole JobFlow object (JSON, as the API server stores it) and of the step's status entry
   at the end, per item.
2. ``controller``: the real controller against kubesim: a flow of one 1,000-item fan-out
   (parallelism 100, 0.05 s per item) then one dependant; printed: the wall time from its
   creation to Succeeded, the size of the JobFlow object as read back from the API server (the
   limit is 1.5 MiB), and the Jobs created (exactly 1,001: no duplicates).

Run: ``python bench/fanout.py``. CPU figures are robust to a busy machine; the wall time is not
(say so when quoting it).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry

import kubesim
from controller.kube import Kube
from controller.runner import Controller, ControllerConfig
from jobflow import planning
from tests.fixtures.controller import FAST_TIMINGS, Cluster, flow, install_crd, job_step
from tests.unit.planning_world import World, running_after, simulate
from tests.unit.planning_world import flow as world_flow
from tests.unit.planning_world import step as world_step

ITEMS = 1000
CAP = 100
NOW = datetime(2026, 1, 1, tzinfo=UTC)
MAX_OBJECT_BYTES = 1536 * 1024


def cpu_ms(action: object, *, repeat: int) -> float:
    start = time.process_time()
    for _ in range(repeat):
        action()  # type: ignore[operator]
    return (time.process_time() - start) / repeat * 1000


def size(obj: object) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


def planner() -> None:
    body = world_flow(
        world_step("each", withItems=list(range(ITEMS)), parallelism=CAP),
        world_step("after", "each"),
    )
    problems = planning.spec_problems(body)
    first_ms = cpu_ms(lambda: planning.plan(body, [], NOW, problems=problems), repeat=3)
    print(f"first pass, {ITEMS} items, parallelism {CAP}: {first_ms:7.1f} ms CPU")
    # The first 100 items running: a steady pass reads 1,000 item states back.
    world = World(body)
    first = planning.plan(body, [], NOW, problems=problems)
    running, observed = running_after(body, first)
    later = NOW + timedelta(seconds=1)
    steady = cpu_ms(lambda: planning.plan(running, observed, later, problems=problems), repeat=5)
    print(f"steady pass, {CAP} items running:           {steady:7.1f} ms CPU")
    simulate(world, max_passes=400)
    entry = next(s for s in world.status["steps"] if s["name"] == "each")  # type: ignore[union-attr,index]
    whole = size(world.flow)
    print(
        f"finished: JobFlow {whole} bytes ({whole / MAX_OBJECT_BYTES:.2%} of 1.5 MiB); the"
        f" fan-out's status entry {size(entry)} bytes = {size(entry) / ITEMS:.2f} bytes per item"
    )


def controller() -> None:
    handle = kubesim.start()
    try:
        kube = Kube.connect(str(handle.kubeconfig), qps=0)
        install_crd(kube)
        cluster = Cluster(handle, kube)
        config = ControllerConfig(workers=2, leader_elect=False, timings=FAST_TIMINGS)
        ctl = Controller.connect(
            str(handle.kubeconfig), config, qps=0, burst=100, registry=CollectorRegistry()
        )
        ctl.start()
        fan = job_step("each", withItems=list(range(ITEMS)), parallelism=CAP, duration=0.05)
        began = time.monotonic()
        cpu = time.process_time()
        cluster.create_flow(flow("fan", [fan, job_step("after", "each")]))
        peak = 0
        while cluster.phase("fan") not in ("Succeeded", "Failed"):
            peak = max(peak, size(cluster.flow("fan")))
            time.sleep(0.5)
        took = time.monotonic() - began
        used = time.process_time() - cpu
        final = size(cluster.flow("fan"))
        jobs = len(cluster.jobs("fan"))
        print(
            f"controller: {ITEMS} items (parallelism {CAP}) -> {cluster.phase('fan')} in"
            f" {took:.1f} s wall, {used:.1f} s CPU (controller and kubesim in one process);"
            f" {jobs} Jobs"
        )
        print(f"            JobFlow object {final} bytes at the end, at most {peak} while running")
        ctl.stop(timeout=5)
        ctl.close()
        kube.close()
    finally:
        handle.stop()


if __name__ == "__main__":
    planner()
    controller()
