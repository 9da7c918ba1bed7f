"""Restart safety: the controller runs as a real process (`python -m controller`) and is killed
with SIGKILL mid-flow several times, then restarted; every flow still reaches its terminal phase,
and no step attempt ever has two Jobs (each step's Jobs are exactly attempts 0..n-1, one each,
matching status.steps[].attempts), and a step is charged exactly one retry for its one failed
attempt."""

from __future__ import annotations

import collections
import signal
import time

from tests.fixtures.controller import flow, job_step
from tests.waiting import eventually

FLOWS = 6
KILLS = 4


def dag(name: str, index: int) -> dict:
    steps = [
        job_step("fetch", duration=0.5 + 0.1 * index),
        job_step("left", "fetch", duration=1.0),
        job_step(
            "right",
            "fetch",
            duration=0.1,
            fail_attempts=1,
            attempt_key=f"{name}-right",
            retryPolicy={"limit": 2, "backoff": {"type": "Fixed", "duration": "1s"}},
        ),
        job_step("join", "left", "right", duration=0.8),
        job_step("report", "join", duration=0.5),
    ]
    return flow(name, steps)


def test_killed_and_restarted_controller_finishes_every_flow_without_duplicate_jobs(
    cluster, spawn_controller
) -> None:
    names = [f"restart-{i}" for i in range(FLOWS)]
    for i, name in enumerate(names):
        cluster.create_flow(dag(name, i))

    def all_done() -> bool:
        return all(cluster.phase(n) in ("Succeeded", "Failed") for n in names)

    kills = 0
    for kill in range(KILLS):
        proc = spawn_controller("--no-leader-elect").proc
        # let it work a little, a different amount each round, then kill it without warning
        start_jobs = len(cluster.jobs())
        eventually(
            lambda start_jobs=start_jobs: len(cluster.jobs()) > start_jobs or all_done(),
            20,
            message=f"controller #{kill} made progress",
        )
        time.sleep(0.15 * (kill + 1))  # the kill lands mid-pass: that is the point
        if all_done():
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        kills += 1
    assert kills >= 3, "the flows finished before the controller was killed often enough"
    spawn_controller("--no-leader-elect")
    eventually(all_done, 60, interval=0.2, message="every flow finished")
    for name in names:
        assert cluster.phase(name) == "Succeeded"
        status = cluster.status(name)
        per_step = collections.defaultdict(list)
        for job in cluster.jobs(name):
            labels = job["metadata"]["labels"]
            per_step[labels["workflow.kube-zen.io/step"]].append(
                int(labels["workflow.kube-zen.io/attempt"])
            )
        for entry in status["steps"]:
            attempts = sorted(per_step[entry["name"]])
            assert attempts == list(range(entry["attempts"])), (name, entry["name"], attempts)
        assert sorted(per_step["right"]) == [0, 1]
        # one attempt failed: one retry charged, whatever the kills interrupted (issue 13, 10)
        assert {s["name"]: s.get("retries", 0) for s in status["steps"]}["right"] == 1
        assert all(len(per_step[s]) == 1 for s in ("fetch", "left", "join", "report"))
