"""Reliability under API trouble (DESIGN section 9): with kubesim injecting 5xx and 429 answers
on every verb, closing every watch stream every second, answering watches with 410 Expired for a
while, and a user patching the flows concurrently (status writes then meet Conflicts), every
flow still reaches Succeeded, and no step attempt has two Jobs."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time

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


def test_a_429_retry_after_spaces_the_retries(cluster, start_controller, caplog) -> None:
    """kube-apiserver sheds load with 429 + Retry-After; retrying sooner only adds to the load.
    Every Job create is refused with Retry-After: 1 for a while: each failed pass is retried no
    sooner than the server asked (our own first backoff is milliseconds), then the flow finishes."""
    faults = cluster.server.faults
    cluster.create_flow(flow("shed", [job_step("a", duration=0.1)]))
    faults.configure(error_rate={"create": 1.0}, error_code=429, retry_after=1)
    caplog.set_level(logging.WARNING, logger="controller.runner")
    start_controller()
    eventually(
        lambda: any(r.getMessage() == "reconcile failed, retrying" for r in caplog.records), 10
    )
    time.sleep(2.5)
    faults.reset()
    cluster.wait_phase("shed", "Succeeded", timeout=20)
    retried = [r for r in caplog.records if r.getMessage() == "reconcile failed, retrying"]
    assert retried, "the refused creates made the pass fail"
    assert all(r.retry_in >= 1.0 for r in retried), [r.retry_in for r in retried]
    # ~3.5 s of refusals at one retry a second (without Retry-After: ~10 with our backoff)
    assert len(retried) <= 5, len(retried)
    assert_one_job_per_attempt(cluster, "shed")
