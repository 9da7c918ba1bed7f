"""Hostile flows in the cluster cannot stop the controller (issue: hostile input).

Flows that bypassed admission (stored while the webhook was down, or with failurePolicy Ignore)
carry every class of `when` that crashed, panicked, exhausted or stalled the previous CEL engine:
a 40 KB member chain, 100 KB of `x-x-x`, a syntax error past column 65535, 20,000 'é', nested
`.map` doing 10^6 iterations, functions that only fail at run time. They are in the cluster
*before* the controller starts (the crash-loop case) and more arrive while it runs.

The controller runs as its own process with leader election (a native crash would kill it, and
the test says so instead of taking the test runner down). Checked: the process stays alive; a
canary flow created after the hostile ones runs to Succeeded; the Lease keeps its holder and its
renewTime keeps moving; each hostile flow ends with Accepted=False and a reason that names the
limit it broke, in one readable line.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from datetime import datetime

from controller.kube import LEASES
from tests.fixtures.controller import FAST_TIMINGS, flow, job_step, lease_args
from tests.waiting import eventually

LEASE = "zen-flow-hostile"
# name -> (when, what the flow's Accepted=False message must say)
HOSTILE_WHEN = {
    "member-chain": ("flow" + ".a" * 20000 + " == 1", "over the limit of 4096"),
    "minus-chain": ("x-" * 50000 + "x", "over the limit of 4096"),
    "panic-column": ("true && " + " " * 70000 + "(", "over the limit of 4096"),
    "non-ascii": ("é" * 20000, "over the limit of 4096"),
    "nested-map": (
        "size(" + "[0,1,2,3,4,5,6,7,8,9].map(a, " * 6 + "1" + ")" * 6 + ") > 0",
        "evaluation cost",
    ),
    "deep-brackets": ("(" * 40 + "true" + ")" * 40, "nests brackets 40 deep"),
    "member-nodes": ("flow" + ".a" * 1000 + " == 1", "member, index and call nodes"),
    "env-call": ("env() == 1", "unknown function(s) env()"),
}


def _hostile(name: str, when: str) -> dict:
    return flow(name, [job_step("a"), job_step("b", "a", when=when)])


def _renew_time(cluster) -> tuple[str, datetime | None]:
    spec = cluster.kube.get(LEASES, "default", LEASE)["spec"]
    stamp = spec.get("renewTime")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
    return spec.get("holderIdentity") or "", parsed


def test_hostile_flows_do_not_stop_the_controller(cluster, spawn_controller) -> None:
    names = list(HOSTILE_WHEN)
    before_start, after_start = names[: len(names) // 2], names[len(names) // 2 :]
    for name in before_start:
        cluster.create_flow(_hostile(f"hostile-{name}", HOSTILE_WHEN[name][0]))

    t = FAST_TIMINGS
    controller = spawn_controller(*lease_args("steady", LEASE))
    proc = controller.proc

    def alive() -> None:
        if proc.poll() is not None:
            raise AssertionError(
                f"the controller died (exit {proc.returncode}):\n{controller.log_tail()}"
            )

    try:
        eventually(lambda: _renew_time(cluster)[0] == "steady", 15, message="controller leads")
        for name in after_start:
            cluster.create_flow(_hostile(f"hostile-{name}", HOSTILE_WHEN[name][0]))
        cluster.create_flow(flow("canary", [job_step("a"), job_step("b", "a")]))
        cluster.wait_phase("canary", "Succeeded", timeout=30)
        alive()

        for name, (_, says) in HOSTILE_WHEN.items():

            def refused(name: str = name) -> dict | None:
                conditions = cluster.status(f"hostile-{name}").get("conditions") or []
                accepted = [c for c in conditions if c.get("type") == "Accepted"]
                return accepted[0] if accepted and accepted[0]["status"] == "False" else None

            accepted = eventually(refused, 15, message=f"hostile-{name} gets Accepted=False")
            assert says in accepted["message"], accepted["message"]
            assert "spec.steps[1].when" in accepted["message"]
            assert len(accepted["message"]) < 1000
            assert not cluster.jobs(f"hostile-{name}"), "a refused flow starts nothing"

        # The Lease is still renewed by the same holder while all of that is in the cluster.
        holder, first = _renew_time(cluster)
        time.sleep(t.renew_deadline)  # one renew deadline: a renewal must have happened
        later_holder, later = _renew_time(cluster)
        assert holder == later_holder == "steady"
        assert first is not None and later is not None and later > first
        cluster.create_flow(flow("canary-2", [job_step("a")]))
        cluster.wait_phase("canary-2", "Succeeded", timeout=30)
        alive()
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
