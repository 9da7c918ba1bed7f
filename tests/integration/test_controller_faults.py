"""Reliability under API trouble (DESIGN section 9): with kubesim injecting 5xx and 429 answers
on every verb, closing every watch stream every second, answering watches with 410 Expired for a
while, and a user patching the flows concurrently (status writes then meet Conflicts), every
flow still reaches Succeeded, and no step attempt has two Jobs."""

from __future__ import annotations

import collections
import contextlib
import threading

from controller.kube import ApiError
from tests.fixtures.controller import flow, job_step
from tests.waiting import eventually

FLOWS = 4


def dag(name: str) -> dict:
    return flow(
        name,
        [
            job_step("a", duration=0.1),
            job_step("b", "a", duration=0.2),
            job_step(
                "c",
                "a",
                fail_attempts=1,
                attempt_key=f"{name}-c",
                retryPolicy={"limit": 2, "backoff": {"type": "Fixed", "duration": "1s"}},
            ),
            job_step("d", "b", "c", duration=0.1),
        ],
    )


def assert_one_job_per_attempt(cluster, name: str) -> None:
    per_step = collections.defaultdict(list)
    for job in cluster.jobs(name):
        labels = job["metadata"]["labels"]
        per_step[labels["workflow.kube-zen.io/step"]].append(
            int(labels["workflow.kube-zen.io/attempt"])
        )
    for entry in cluster.status(name)["steps"]:
        assert sorted(per_step[entry["name"]]) == list(range(entry["attempts"])), (name, entry)


def test_flows_finish_despite_errors_dropped_watches_and_conflicts(
    cluster, start_controller
) -> None:
    faults = cluster.server.faults
    names = [f"faulty-{i}" for i in range(FLOWS)]
    start_controller(workers=2)
    faults.configure(error_rate={"*": 0.15}, drop_watches_every=1.0, seed=7)
    for name in names:
        eventually(lambda name=name: cluster.create_flow(dag(name)), 10)
    stop = threading.Event()

    def poke() -> None:  # concurrent metadata writes make status PUTs stale (409 Conflict)
        i = 0
        while not stop.wait(0.1):
            i += 1
            for name in names:
                with contextlib.suppress(ApiError):
                    cluster.patch_flow(name, {"metadata": {"labels": {"poke": str(i)}}})

    poker = threading.Thread(target=poke, daemon=True)
    poker.start()
    try:
        eventually(
            lambda: all(cluster.phase(n) == "Succeeded" for n in names),
            60,
            interval=0.2,
            message="all flows succeeded under faults",
        )
    finally:
        stop.set()
        poker.join(5)
    assert sum(faults.injected.values()) > 0, "faults were injected"
    faults.reset()
    for name in names:
        assert_one_job_per_attempt(cluster, name)


def test_flows_finish_after_a_period_of_expired_watches(cluster, start_controller) -> None:
    faults = cluster.server.faults
    faults.configure(expire_watches=True)
    ctl = start_controller()
    cluster.create_flow(dag("expired"))
    eventually(
        lambda: ctl.reconciler is not None and ctl.reconciler.jobs.relists > 2,
        10,
        message="410 on every watch: the caches keep re-listing",
    )
    faults.reset()
    cluster.wait_phase("expired", "Succeeded", timeout=30)
    assert_one_job_per_attempt(cluster, "expired")
