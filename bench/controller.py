"""Controller benchmark (DESIGN section 8): throughput against the bare-API floor, API writes per
step, dispatch latency, and memory per 1,000 active flows.

kubesim (sim Job runner) runs in its own process; the controller runs in this process (so its
metrics and RSS are ours to read). Phases, all against the same kubesim in one run:

1. throughput: FLOWS flows x STEPS steps with instant simulated Jobs (5 layers x 4 steps; each
   step depends on two steps of the previous layer). Wall time from the first flow create to the
   last flow Succeeded.
2. floor: the same API work made directly, without a controller: for every flow, create it,
   then per step create its Job and PUT a status (as many status writes as the controller made),
   with as many client threads as the controller has workers.
3. dispatch latency: the time from the controller seeing an upstream Job finish to the dependant
   Job created (controller.reconciler dispatch samples), at steady state with ~100 flows in
   flight (flows arrive evenly; steps last a few seconds so the cluster is not saturated). The
   same figure for phase 1 (everything at once, instant Jobs) is printed as "saturated": there
   it measures queueing behind kubesim's throughput, not the controller's reaction.
4. memory: RSS of this process before and after 1,000 active flows (long-running steps, so every
   flow holds Running Jobs), per 1,000 flows.

Run: `python bench/controller.py` (defaults are the DESIGN figures), `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from controller.kube import JOBFLOWS, JOBS, Kube, Resource
from controller.runner import Controller, ControllerConfig

NAMESPACE = "default"
LAYERS, WIDTH = 5, 4
GOAL_RATIO, GOAL_WRITES, GOAL_P99_MS, GOAL_RSS_MB = 1.5, 2.5, 250.0, 150.0

KUBESIM_CHILD = """
import sys, time, kubesim
handle = kubesim.start(exec_mode="sim")
print(handle.kubeconfig, flush=True)
sys.stdin.read()
handle.stop()
"""


def start_kubesim() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", KUBESIM_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tempfile.mkdtemp(prefix="zf-bench-"),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.stdout is not None
    kubeconfig = proc.stdout.readline().strip()
    if not kubeconfig:
        raise SystemExit("kubesim did not start")
    return proc, kubeconfig


def install_crd(kube: Kube) -> None:
    from jobflow import crd

    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
    kube.create(crds, None, crd.crd())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            kube.list_all(JOBFLOWS, NAMESPACE)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit("JobFlow CRD not served")


def job_template(duration: float) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "template": {
                "metadata": {"annotations": {"kubesim.io/duration": str(duration)}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            }
        },
    }


def flow_body(name: str, *, steps: int, duration: float = 0.0) -> dict[str, Any]:
    out = []
    for i in range(steps):
        layer, j = divmod(i, WIDTH)
        step: dict[str, Any] = {"name": f"s{i}", "template": job_template(duration)}
        if layer:
            prev = (layer - 1) * WIDTH
            step["dependencies"] = sorted({f"s{prev + j}", f"s{prev + (j + 1) % WIDTH}"})
        out.append(step)
    return {
        "apiVersion": "workflow.kube-zen.io/v1alpha1",
        "kind": "JobFlow",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"steps": out, "executionPolicy": {"concurrencyPolicy": "Allow"}},
    }


def wait_phases(ctl: Controller, names: set[str], phases: set[str], timeout: float) -> float:
    """Wait on the controller's own watch cache: polling the API with LISTs of hundreds of big
    flows would load kubesim and distort the measurement. Only the first pending flow is looked
    at on each poll (they all move together), so the wait costs the controller's process almost
    no CPU; the end time is accurate to one poll interval (0.02 s)."""
    rec = ctl.reconciler
    assert rec is not None
    deadline = time.monotonic() + timeout
    pending = sorted(names)
    while time.monotonic() < deadline:
        while pending:
            flow = rec.flows.get(f"{NAMESPACE}/{pending[-1]}") or {}
            if (flow.get("status") or {}).get("phase") not in phases:
                break
            pending.pop()
        if not pending:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"timed out: {len(pending)} flows did not reach {phases}")


def create_many(kube: Kube, bodies: list[dict[str, Any]], threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda b: kube.create(JOBFLOWS, NAMESPACE, b), bodies))


def delete_all(kube: Kube, prefix: str) -> None:
    items = kube.list_all(JOBFLOWS, NAMESPACE)["items"]
    for item in items:
        if item["metadata"]["name"].startswith(prefix):
            kube.delete(
                JOBFLOWS, NAMESPACE, item["metadata"]["name"], propagation_policy="Background"
            )


def wait_cleaned_up(kube: Kube, timeout: float = 600) -> None:
    """Wait until garbage collection removed every Job (and so its pods): a cascade of thousands
    of deletes running in kubesim would distort the next phase's latencies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = kube.list_page(JOBS, NAMESPACE, query=[("limit", 1)])
        if not page.get("items"):
            return
        time.sleep(1.0)
    print("  WARNING: Jobs still being garbage-collected")


def start_controller(kubeconfig: str, workers: int) -> Controller:
    config = ControllerConfig(workers=workers, leader_elect=False, resync_period=0)
    ctl = Controller.connect(kubeconfig, config, qps=0, burst=1, registry=CollectorRegistry())
    ctl.start()
    while not ctl.ready or not ctl.caches_synced:
        time.sleep(0.02)
    return ctl


class CpuMeter:
    """CPU seconds used by this process (the controller) and by kubesim over a phase."""

    def __init__(self, kubesim_pid: int) -> None:
        self.me = psutil.Process()
        self.sim = psutil.Process(kubesim_pid)
        self.start = self._read()

    def _read(self) -> tuple[float, float]:
        a, b = self.me.cpu_times(), self.sim.cpu_times()
        return a.user + a.system, b.user + b.system

    def used(self) -> tuple[float, float]:
        now = self._read()
        return now[0] - self.start[0], now[1] - self.start[1]


def phase_throughput(
    kube: Kube, kubeconfig: str, *, flows: int, steps: int, workers: int, sim_pid: int
) -> dict:
    ctl = start_controller(kubeconfig, workers)
    names = {f"tp-{i}" for i in range(flows)}
    bodies = [flow_body(n, steps=steps) for n in sorted(names)]
    cpu = CpuMeter(sim_pid)
    t0 = time.monotonic()
    create_many(kube, bodies, workers)
    t1 = wait_phases(ctl, names, {"Succeeded", "Failed"}, timeout=3600)
    cpu_used = cpu.used()
    rec = ctl.reconciler
    assert rec is not None
    failed = [
        i["metadata"]["name"]
        for i in kube.list_all(JOBFLOWS, NAMESPACE)["items"]
        if i["metadata"]["name"] in names and i["status"]["phase"] != "Succeeded"
    ]
    registry = ctl.metrics.registry
    status_writes = (
        registry.get_sample_value("zenflow_api_requests_total", {"verb": "update", "code": "200"})
        or 0.0
    )
    result = {
        "wall": t1 - t0,
        "cpu": cpu_used,
        "passes": registry.get_sample_value("zenflow_reconcile_duration_seconds_count") or 0,
        "saturated_dispatch": list(rec.dispatch_samples),
        "writes": rec.writes,
        "status_writes": int(status_writes),
        "failed": failed,
        "sample_status": kube.get(JOBFLOWS, NAMESPACE, sorted(names)[0])["status"],
    }
    ctl.stop(10)  # flushes the queued Events
    result["events"] = ctl.events_written
    ctl.close()
    return result


def phase_floor(
    kube: Kube,
    *,
    flows: int,
    steps: int,
    workers: int,
    status_writes: int,
    status: dict[str, Any],
    sim_pid: int,
) -> tuple[float, tuple[float, float]]:
    """The bare API work: create the flow, then per step create the Job and write a status, the
    same number of status writes in total as the controller made."""
    per_flow = max(1, round(status_writes / flows))
    template = job_template(0.0)

    def one(i: int) -> None:
        name = f"floor-{i}"
        obj = kube.create(JOBFLOWS, NAMESPACE, flow_body(name, steps=steps))
        rv = obj["metadata"]["resourceVersion"]
        writes_left = per_flow
        for s in range(steps):
            job = {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": f"{name}-s{s}",
                    "namespace": NAMESPACE,
                    "labels": {"bench": "floor"},
                    # owned like the controller's Jobs (and garbage-collected with the flow)
                    "ownerReferences": [
                        {
                            "apiVersion": "workflow.kube-zen.io/v1alpha1",
                            "kind": "JobFlow",
                            "name": name,
                            "uid": obj["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
            }
            kube.create(JOBS, NAMESPACE, job)
            # spread the status writes over the steps as the controller does
            due = (s + 1) * per_flow // steps - (s * per_flow // steps)
            for _ in range(due):
                if writes_left <= 0:
                    break
                obj = {
                    **obj,
                    "metadata": {**obj["metadata"], "resourceVersion": rv},
                    "status": status,
                }
                obj = kube.replace(JOBFLOWS, NAMESPACE, name, obj, subresource="status")
                rv = obj["metadata"]["resourceVersion"]
                writes_left -= 1

    cpu = CpuMeter(sim_pid)
    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(flows)))
    return time.monotonic() - t0, cpu.used()


def phase_dispatch(
    kube: Kube, kubeconfig: str, *, concurrent: int, steps: int, workers: int, duration: float
) -> tuple[list[float], float]:
    """Steady state with ``concurrent`` flows in flight: flows arrive at a constant rate (one
    every flow-lifetime / concurrent seconds), 2 x concurrent in all, so the latency measured is
    the controller's reaction, not a synchronised burst of hundreds of Jobs finishing in the
    same instant. Returns the samples and the mean number of flows in flight."""
    ctl = start_controller(kubeconfig, workers)
    rec = ctl.reconciler
    assert rec is not None
    lifetime = (steps // WIDTH) * duration
    interval = lifetime / concurrent
    names = [f"lat-{i}" for i in range(2 * concurrent)]
    in_flight: list[int] = []
    start = time.monotonic()
    for i, name in enumerate(names):
        delay = start + i * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        kube.create(JOBFLOWS, NAMESPACE, flow_body(name, steps=steps, duration=duration))
        if i >= concurrent:  # past the ramp-up: sample the number of flows running
            in_flight.append(
                sum(
                    1
                    for n in names[: i + 1]
                    if ((rec.flows.get(f"{NAMESPACE}/{n}") or {}).get("status") or {}).get("phase")
                    not in ("Succeeded", "Failed")
                )
            )
    wait_phases(ctl, set(names), {"Succeeded", "Failed"}, timeout=1800)
    samples = list(rec.dispatch_samples)
    ctl.stop(10)
    ctl.close()
    return samples, (sum(in_flight) / len(in_flight) if in_flight else 0.0)


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def phase_memory(kube: Kube, kubeconfig: str, *, flows: int, steps: int, workers: int) -> float:
    before = rss_mb()
    ctl = start_controller(kubeconfig, workers)
    names = {f"mem-{i}" for i in range(flows)}
    # every flow runs its first layer (WIDTH Jobs) for an hour: all stay active
    create_many(kube, [flow_body(n, steps=steps, duration=3600) for n in sorted(names)], workers)
    wait_phases(ctl, names, {"Running"}, timeout=1800)
    rec = ctl.reconciler
    assert rec is not None
    while len(rec.jobs) < flows * WIDTH:
        time.sleep(0.2)
    time.sleep(1.0)
    after = rss_mb()
    ctl.stop(10)
    ctl.close()
    return (after - before) * 1000 / flows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--steps", type=int, default=LAYERS * WIDTH)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument(
        "--dispatch-duration",
        type=float,
        default=8.0,
        help="step duration in the dispatch phase: long enough that kubesim is not saturated",
    )
    parser.add_argument("--active", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--skip", default="", help="comma list of phases to skip: floor,dispatch,memory"
    )
    args = parser.parse_args()
    if args.quick:
        args.flows, args.concurrent, args.active, args.dispatch_duration = 20, 10, 50, 1.0
    skip = set(filter(None, args.skip.split(",")))

    proc, kubeconfig = start_kubesim()
    try:
        kube = Kube.connect(kubeconfig, qps=0, pool_size=args.workers + 4)
        install_crd(kube)
        total_steps = args.flows * args.steps
        load = os.getloadavg()[0]
        print(
            f"controller bench: {args.flows} flows x {args.steps} steps (5 layers x 4), "
            f"{args.workers} workers, instant sim Jobs; {os.cpu_count()} CPUs, "
            f"load average {load:.1f} at start"
        )
        tp = phase_throughput(
            kube,
            kubeconfig,
            flows=args.flows,
            steps=args.steps,
            workers=args.workers,
            sim_pid=proc.pid,
        )
        if tp["failed"]:
            print(f"  WARNING: {len(tp['failed'])} flows did not succeed: {tp['failed'][:5]}")
        writes_per_step = tp["writes"] / total_steps
        events_per_step = tp["events"] / total_steps
        ctl_cpu, sim_cpu = tp["cpu"]
        print(
            f"  wall time         : {tp['wall']:.2f} s ({total_steps / tp['wall']:.0f} steps/s; "
            f"CPU s: controller {ctl_cpu:.1f}, kubesim {sim_cpu:.1f}; "
            f"{tp['passes'] / total_steps:.2f} reconcile passes/step)"
        )
        print(
            f"  API writes/step   : {writes_per_step:.2f} (Jobs + status + deletes; "
            f"{tp['status_writes']} status writes) goal <= {GOAL_WRITES}: "
            f"{verdict(writes_per_step <= GOAL_WRITES)}"
        )
        print(
            f"  + Events/step     : {events_per_step:.2f} (async, best effort) -> "
            f"{writes_per_step + events_per_step:.2f} writes/step with Events"
        )
        if "floor" not in skip:
            floor, (f_ctl, f_sim) = phase_floor(
                kube,
                flows=args.flows,
                steps=args.steps,
                workers=args.workers,
                status_writes=tp["status_writes"],
                status=tp["sample_status"],
                sim_pid=proc.pid,
            )
            ratio = tp["wall"] / floor
            print(
                f"  floor             : {floor:.2f} s (same creates + status writes, direct; "
                f"CPU s: client {f_ctl:.1f}, kubesim {f_sim:.1f})"
            )
            print(
                f"  wall / floor      : {ratio:.2f}x goal <= {GOAL_RATIO}x: {verdict(ratio <= GOAL_RATIO)}"
            )
        sat = tp["saturated_dispatch"]
        if sat:
            print(
                f"  dispatch (saturated, {args.flows} flows at once, instant Jobs): "
                f"p50 {pct(sat, 0.5) * 1000:.0f} ms, p99 {pct(sat, 0.99) * 1000:.0f} ms "
                "(queueing behind kubesim's throughput)"
            )
        delete_all(kube, "tp-")
        delete_all(kube, "floor-")
        wait_cleaned_up(kube)
        if "dispatch" not in skip:
            samples, in_flight = phase_dispatch(
                kube,
                kubeconfig,
                concurrent=args.concurrent,
                steps=args.steps,
                workers=args.workers,
                duration=args.dispatch_duration,
            )
            p50, p99 = pct(samples, 0.5) * 1000, pct(samples, 0.99) * 1000
            print(
                f"  dispatch latency  : p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(samples)} "
                f"dispatches; steady state with ~{in_flight:.0f} flows in flight "
                f"({2 * args.concurrent} flows arriving evenly, {args.dispatch_duration:g} s steps); "
                f"goal p99 <= {GOAL_P99_MS:.0f} ms: {verdict(p99 <= GOAL_P99_MS)}"
            )
            delete_all(kube, "lat-")
            wait_cleaned_up(kube)
        if "memory" not in skip:
            per_1000 = phase_memory(
                kube, kubeconfig, flows=args.active, steps=args.steps, workers=args.workers
            )
            print(
                f"  controller RSS    : {per_1000:.1f} MB per 1,000 active flows "
                f"({args.active} flows, {WIDTH} running Jobs each); goal <= {GOAL_RSS_MB:.0f} MB: "
                f"{verdict(per_1000 <= GOAL_RSS_MB)}"
            )
        print(f"  load average at end: {os.getloadavg()[0]:.1f}")
        kube.close()
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
