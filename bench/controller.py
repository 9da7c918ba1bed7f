"""Controller benchmark (DESIGN section 8): throughput against the bare-API floor, API writes per
step, controller CPU per step against the previous main's, dispatch latency, and memory per
1,000 active flows in a fresh process.

kubesim (sim Job runner) runs in its own process. Phases, all against the same kubesim in one run:

1. throughput: FLOWS flows x STEPS steps with instant simulated Jobs (5 layers x 4 steps; each
   step depends on two steps of the previous layer). Wall time from the first flow create to the
   last flow Succeeded; the controller runs in a child process of its own (its CPU time is
   read there, also per thread role), from this tree and from the previous main
   (``--baseline REV``, extracted with `git archive`), ``--rounds`` times each, interleaved
   (previous, this, this, previous: the load of a shared machine drifts during a run, and a
   fixed order charged the drift to one side), against this tree's kubesim, so "controller CPU
   per step" is compared on the same machine under the same load. kubesim's steps/s is this
   phase's throughput (kubesim, not the controller, is the bottleneck); it is compared with
   the previous main's own kubesim and controller, run once more in a kubesim of its own.
2. floor: the same API work made directly, without a controller: for every flow, create it,
   then per step create its Job and PUT a status (as many status writes as the controller made),
   with as many client threads as the controller has workers.
3. dispatch latency: the time from the controller seeing an upstream Job finish to the dependant
   Job created (controller.reconciler dispatch samples), at steady state with ~100 flows in
   flight (flows arrive evenly; steps last a few seconds so the cluster is not saturated). The
   same figure for phase 1 (everything at once, instant Jobs) is printed as "saturated": there
   it measures queueing behind kubesim's throughput, not the controller's reaction.
4. memory: flows whose first layer runs for an hour (so every flow is Running with 4 Jobs) are
   brought up to each of ``--active`` counts (100, 1,000, 5,000); then a fresh controller
   process lists them, reconciles each once, and reports its RSS growth from just before it
   connected to when it is idle, per 1,000 flows.

Run: `python bench/controller.py` (defaults are the DESIGN figures), `--quick` for a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
from prometheus_client import CollectorRegistry

# The controller under test: this tree, or the one ZF_BENCH_SOURCE names (the baseline child).
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, os.environ.get("ZF_BENCH_SOURCE") or str(ROOT))

from controller.kube import JOBFLOWS, JOBS, Kube, Resource  # noqa: E402
from controller.runner import Controller, ControllerConfig  # noqa: E402

NAMESPACE = "default"
LAYERS, WIDTH = 5, 4
GOAL_RATIO, GOAL_WRITES, GOAL_P99_MS, GOAL_RSS_MB = 1.5, 2.5, 250.0, 60.0
GOAL_CPU_CUT = 0.30  # controller CPU per step at least 30% below the previous main's (issue 14)
GOAL_STEPS_RATIO = 1.5  # kubesim steps/s at least 1.5x the previous main's (issue 14)
BASELINE = "b463989"  # the previous main (issue 14)

KUBESIM_CHILD = """
import sys, time, kubesim
handle = kubesim.start(exec_mode="sim")
print(handle.kubeconfig, flush=True)
sys.stdin.read()
handle.stop()
"""


def start_kubesim(source: Path = ROOT) -> tuple[subprocess.Popen[str], str]:
    """kubesim of ``source`` (this tree, or the previous main's) in a process of its own."""
    proc = subprocess.Popen(
        [sys.executable, "-c", KUBESIM_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tempfile.mkdtemp(prefix="zf-bench-"),
        env={**os.environ, "PYTHONPATH": str(source)},
    )
    assert proc.stdout is not None
    kubeconfig = proc.stdout.readline().strip()
    if not kubeconfig:
        raise SystemExit("kubesim did not start")
    return proc, kubeconfig


def stop_kubesim(proc: subprocess.Popen[str]) -> None:
    """End what ``start_kubesim`` started: its stdin closed is its signal to stop."""
    if proc.stdin:
        proc.stdin.close()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def crd_of(source: Path) -> dict[str, Any]:
    """The JobFlow CRD of ``source`` (its own ``jobflow.crd``, in a child interpreter)."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json; from jobflow import crd; print(json.dumps(crd.crd()))",
        ],
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def install_crd(kube: Kube, source: Path = ROOT) -> None:
    crds = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", namespaced=False)
    kube.create(crds, None, crd_of(source))
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


def thread_role(name: str) -> str:
    """A controller thread's role from its name (reconcile-3 -> reconcile, create_0 -> create)."""
    return name.rstrip("0123456789").rstrip("-_") or name


def cpu_by_role() -> dict[str, float]:
    """CPU seconds of this process's live threads, summed by role (the Linux thread ids of
    ``threading`` threads matched to psutil's per-thread times)."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    roles: dict[str, float] = {}
    for t in psutil.Process().threads():
        role = thread_role(names.get(t.id, "other"))
        roles[role] = roles.get(role, 0.0) + t.user_time + t.system_time
        roles["(kernel)"] = roles.get("(kernel)", 0.0) + t.system_time
    return roles


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


def throughput_names(flows: int) -> set[str]:
    return {f"tp-{i}" for i in range(flows)}


def phase_throughput(
    kube: Kube, kubeconfig: str, *, flows: int, steps: int, workers: int, sim_pid: int
) -> dict:
    """The controller's side of phase 1 (run in a child process): once its caches are synced it
    says "ready" on stdout and waits for "go" on stdin; the parent then creates the flows, so the
    CPU time measured here is the controller's alone."""
    ctl = start_controller(kubeconfig, workers)
    names = throughput_names(flows)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu = CpuMeter(sim_pid)
    roles_before = cpu_by_role()
    t0 = time.monotonic()
    t1 = wait_phases(ctl, names, {"Succeeded", "Failed"}, timeout=3600)
    cpu_used = cpu.used()
    roles = {k: v - roles_before.get(k, 0.0) for k, v in cpu_by_role().items()}
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
        "roles": roles,
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


def bring_up_active(kube: Kube, kubeconfig: str, *, flows: int, steps: int, workers: int) -> None:
    """Make ``flows`` flows active (Running, WIDTH Jobs of an hour each), adding to those there
    are, with a controller of this tree that is stopped afterwards."""
    have = {i["metadata"]["name"] for i in kube.list_all(JOBFLOWS, NAMESPACE)["items"]}
    names = {f"mem-{i}" for i in range(flows)}
    ctl = start_controller(kubeconfig, workers)
    create_many(
        kube,
        [flow_body(n, steps=steps, duration=3600) for n in sorted(names - have)],
        workers,
    )
    wait_phases(ctl, names, {"Running"}, timeout=3600)
    rec = ctl.reconciler
    assert rec is not None
    while len(rec.jobs) < flows * WIDTH:
        time.sleep(0.2)
    ctl.stop(10)
    ctl.close()


def child_memory(kubeconfig: str, *, flows: int, workers: int) -> dict[str, float]:
    """In a fresh process: RSS just before the controller connects (everything imported, the
    validator and planner warmed on one flow) and once it has listed ``flows`` active flows and
    their Jobs and reconciled each (every flow Running in its cache, the queue idle)."""
    from jobflow import planning, validation

    warm = flow_body("warm", steps=LAYERS * WIDTH)
    validation.validate(warm)
    planning.spec_problems(warm)
    before = rss_mb()
    ctl = start_controller(kubeconfig, workers)
    rec = ctl.reconciler
    assert rec is not None
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        cached = rec.flows.objects()
        running = sum(1 for f in cached if (f.get("status") or {}).get("phase") == "Running")
        if running >= flows and len(rec.jobs) >= flows * WIDTH:
            break
        time.sleep(0.2)
    time.sleep(2.0)  # the first passes (no-ops: every Job exists) finish
    after = rss_mb()
    ctl.stop(10)
    ctl.close()
    return {"before": before, "after": after, "flows": float(flows)}


def run_child(
    mode: str, source: Path, options: list[str], on_ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run one phase in a fresh process with the controller of ``source``; its JSON result.
    ``on_ready`` runs once the child says "ready" (the child goes on when it returns)."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--child", mode, *options],
        env={**os.environ, "ZF_BENCH_SOURCE": str(source), "PYTHONPATH": str(source)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    lines = []
    for line in proc.stdout:
        if line.strip() == "ready" and on_ready is not None:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            on_ready()
            continue
        lines.append(line)
    if proc.wait() != 0 or not lines:
        raise SystemExit(f"the {mode} child ({source}) failed")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def baseline_tree(rev: str) -> Path | None:
    """The previous main's sources (``git archive``), or None when git cannot give them."""
    target = Path(tempfile.mkdtemp(prefix="zf-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"  (no baseline {rev}: {exc})")
        return None
    return target


def child_main(args: argparse.Namespace) -> int:
    kube = Kube.connect(args.kubeconfig, qps=0, pool_size=args.workers + 4)
    if args.child == "throughput":
        result: dict[str, Any] = phase_throughput(
            kube,
            args.kubeconfig,
            flows=args.flows,
            steps=args.steps,
            workers=args.workers,
            sim_pid=args.sim_pid,
        )
    else:
        result = child_memory(args.kubeconfig, flows=args.flows, workers=args.workers)
    kube.close()
    print(json.dumps(result))
    return 0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def parse_args() -> argparse.Namespace:
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
    parser.add_argument(
        "--active", default="100,1000,5000", help="active flow counts for the memory phase"
    )
    parser.add_argument(
        "--baseline",
        default=BASELINE,
        help="git revision whose controller CPU per step is compared ('' to skip)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="throughput runs of each controller, interleaved previous/this/this/previous...",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument(
        "--skip", default="", help="comma list of phases to skip: floor,dispatch,memory"
    )
    # a phase in a child process (internal)
    parser.add_argument("--child", choices=["throughput", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--sim-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.flows, args.concurrent, args.active, args.dispatch_duration = 20, 10, "20,50", 1.0
    return args


def throughput(
    kube: Kube, kubeconfig: str, source: Path, args: argparse.Namespace, sim_pid: int
) -> dict[str, Any]:
    """Phase 1 with the controller of ``source`` in a child process; the flows are deleted
    (and garbage-collected) afterwards."""
    bodies = [flow_body(n, steps=args.steps) for n in sorted(throughput_names(args.flows))]
    result = run_child(
        "throughput",
        source,
        [
            *("--kubeconfig", kubeconfig, "--sim-pid", str(sim_pid)),
            *("--flows", str(args.flows), "--steps", str(args.steps)),
            *("--workers", str(args.workers)),
        ],
        on_ready=lambda: create_many(kube, bodies, args.workers),
    )
    delete_all(kube, "tp-")
    wait_cleaned_up(kube)
    return result


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report_throughput(
    runs: list[dict[str, Any]],
    bases: list[dict[str, Any]],
    today: dict[str, Any] | None,
    total_steps: int,
) -> None:
    """``runs``/``bases``: this tree's and the previous main's controller against this tree's
    kubesim (interleaved rounds); ``today``: the previous main's controller against its own
    kubesim (the kubesim steps/s goal)."""
    tp = runs[-1]
    if tp["failed"]:
        print(f"  WARNING: {len(tp['failed'])} flows did not succeed: {tp['failed'][:5]}")
    writes_per_step = tp["writes"] / total_steps
    events_per_step = tp["events"] / total_steps
    walls = [r["wall"] for r in runs]
    ctl_cpu, sim_cpu = mean([r["cpu"][0] for r in runs]), mean([r["cpu"][1] for r in runs])
    rate = total_steps / mean(walls)
    print(
        f"  wall time         : {mean(walls):.2f} s ({rate:.0f} steps/s; CPU s: controller "
        f"{ctl_cpu:.1f}, kubesim {sim_cpu:.1f}; {tp['passes'] / total_steps:.2f} reconcile "
        f"passes/step; mean of {len(runs)} runs: " + ", ".join(f"{w:.1f}" for w in walls) + " s)"
    )
    line = (
        f"  kubesim           : {rate:.0f} steps/s, {sim_cpu / total_steps * 1000:.2f} ms CPU per "
        "step (the bottleneck of this phase)"
    )
    if today is not None:
        before = total_steps / today["wall"]
        ratio = rate / before
        line += (
            f"; {BASELINE}'s kubesim and controller {before:.0f} steps/s "
            f"({today['cpu'][1] / total_steps * 1000:.2f} ms kubesim CPU per step): "
            f"{ratio:.2f}x, goal >= {GOAL_STEPS_RATIO}x: {verdict(ratio >= GOAL_STEPS_RATIO)} "
            "(wall clock: read with the load)"
        )
    print(line)
    per_step = [r["cpu"][0] / total_steps * 1000 for r in runs]
    line = (
        f"  controller CPU    : {mean(per_step):.2f} ms per step ("
        + ", ".join(f"{v:.2f}" for v in per_step)
        + ")"
    )
    if bases:
        base_steps = [b["cpu"][0] / total_steps * 1000 for b in bases]
        cut = 1 - mean(per_step) / mean(base_steps)
        line += (
            f"; previous main ({BASELINE}) {mean(base_steps):.2f} ms ("
            + ", ".join(f"{v:.2f}" for v in base_steps)
            + f") on the same kubesim, rounds interleaved: {cut:.0%} lower, "
            f"goal >= {GOAL_CPU_CUT:.0%}: {verdict(cut >= GOAL_CPU_CUT)}"
        )
    print(line)
    for label, group in (("this tree", runs), (BASELINE, bases)):
        if group and all(r.get("roles") for r in group):
            roles: dict[str, float] = {}
            for r in group:
                for role, seconds in r["roles"].items():
                    roles[role] = roles.get(role, 0.0) + seconds / len(group)
            shares = sorted(roles.items(), key=lambda kv: kv[0] == "(kernel)" or -kv[1])
            text = ", ".join(
                f"{role} {seconds / total_steps * 1000:.2f}"
                for role, seconds in shares
                if seconds / total_steps * 1000 >= 0.005
            )
            print(f"  CPU ms/step by thread ({label}): {text}")
    print(
        f"  API writes/step   : {writes_per_step:.2f} (Jobs + status + deletes; "
        f"{tp['status_writes']} status writes) goal <= {GOAL_WRITES}: "
        f"{verdict(writes_per_step <= GOAL_WRITES)}"
    )
    print(
        f"  + Events/step     : {events_per_step:.2f} (async, best effort) -> "
        f"{writes_per_step + events_per_step:.2f} writes/step with Events"
    )


def throughput_elsewhere(source: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Phase 1 of the previous main as it was: its controller against its own kubesim (and
    CRD), in a kubesim process of its own: the steps/s the kubesim goal compares with."""
    proc, kubeconfig = start_kubesim(source)
    try:
        kube = Kube.connect(kubeconfig, qps=0, pool_size=args.workers + 4)
        install_crd(kube, source)
        result = throughput(kube, kubeconfig, source, args, proc.pid)
        kube.close()
        return result
    finally:
        stop_kubesim(proc)


def report_memory(kube: Kube, kubeconfig: str, args: argparse.Namespace) -> None:
    # What a fresh controller grows by with no flow at all (threads, pools, connections, the
    # first pass's code paths): part of every figure below, and most of the smallest one.
    empty = run_child(
        "memory", ROOT, ["--kubeconfig", kubeconfig, "--flows", "0", "--workers", str(args.workers)]
    )
    fixed = empty["after"] - empty["before"]
    print(f"  controller RSS    : {fixed:.1f} MB for a fresh controller with no flows")
    for count in [int(n) for n in args.active.split(",") if n]:
        bring_up_active(kube, kubeconfig, flows=count, steps=args.steps, workers=args.workers)
        got = run_child(
            "memory",
            ROOT,
            ["--kubeconfig", kubeconfig, "--flows", str(count), "--workers", str(args.workers)],
        )
        grown = got["after"] - got["before"]
        per_1000 = grown * 1000 / count
        print(
            f"  controller RSS    : {per_1000:.1f} MB per 1,000 active flows at {count} "
            f"(fresh process: {got['before']:.0f} MB before connecting, {got['after']:.0f} MB "
            f"with every flow Running, {WIDTH} Jobs each; "
            f"{max(0.0, grown - fixed) * 1000 / count:.1f} MB beyond the empty controller's); "
            f"goal <= {GOAL_RSS_MB:.0f} MB: {verdict(per_1000 <= GOAL_RSS_MB)}"
        )


def main() -> int:
    args = parse_args()
    if args.child:
        return child_main(args)
    skip = set(filter(None, args.skip.split(",")))

    proc, kubeconfig = start_kubesim()
    try:
        kube = Kube.connect(kubeconfig, qps=0, pool_size=args.workers + 4)
        install_crd(kube)
        total_steps = args.flows * args.steps
        print(
            f"controller bench: {args.flows} flows x {args.steps} steps (5 layers x 4), "
            f"{args.workers} workers, instant sim Jobs; {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f} at start"
        )
        base_tree = baseline_tree(args.baseline) if args.baseline else None
        runs: list[dict[str, Any]] = []
        bases: list[dict[str, Any]] = []
        today = None
        try:
            # Rounds interleaved (ABBA...): on a shared machine the load drifts during a run,
            # and a fixed order (previous main, then this tree) charged the drift to one side.
            for i in range(max(1, args.rounds)):
                order = [base_tree, ROOT] if i % 2 == 0 else [ROOT, base_tree]
                for source in order:
                    if source is None:
                        continue
                    result = throughput(kube, kubeconfig, source, args, proc.pid)
                    (runs if source == ROOT else bases).append(result)
            if base_tree is not None:
                today = throughput_elsewhere(base_tree, args)
        finally:
            if base_tree is not None:
                shutil.rmtree(base_tree, ignore_errors=True)
        report_throughput(runs, bases, today, total_steps)
        tp = runs[-1]
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
            delete_all(kube, "floor-")
            wait_cleaned_up(kube)
        sat = tp["saturated_dispatch"]
        if sat:
            print(
                f"  dispatch (saturated, {args.flows} flows at once, instant Jobs): "
                f"p50 {pct(sat, 0.5) * 1000:.0f} ms, p99 {pct(sat, 0.99) * 1000:.0f} ms "
                "(queueing behind kubesim's throughput)"
            )
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
            report_memory(kube, kubeconfig, args)
        print(f"  load average at end: {os.getloadavg()[0]:.1f}")
        kube.close()
    finally:
        stop_kubesim(proc)
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
