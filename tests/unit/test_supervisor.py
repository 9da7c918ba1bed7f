"""controller.supervisor and the readiness rule: ``reconcile_blocker`` as a table (no live worker;
ready keys with no progress past the bound; an idle controller whose last finished key is old is
still ready), ``WorkQueue.has_ready_work`` (queued keys, delayed keys once due), a
``SupervisedThread`` that a ``SystemExit`` or a native-style ``BaseException`` ended is restarted
by ``Supervisor.check`` and counted by role, one that was asked to stop is not, the supervisor's
own thread does it unprompted; the Accepted=False message of a planning crash; and the restart
counter on the controller's registry (bounded roles)."""

from __future__ import annotations

import threading

import pytest
from prometheus_client import CollectorRegistry

from controller.metrics import THREAD_ROLES, ControllerMetrics
from controller.queue import WorkQueue
from controller.reconciler import MAX_CRASH_TEXT, crash_message
from controller.supervisor import (
    DEFAULT_STALL_AFTER,
    Progress,
    SupervisedThread,
    Supervisor,
    reconcile_blocker,
)
from tests.waiting import eventually


class Panic(BaseException):
    """Stands for pyo3's PanicException: a BaseException, not an Exception."""


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


STALL = 60.0


@pytest.mark.parametrize(
    ("live_workers", "has_ready_work", "since_progress", "expected"),
    [
        (4, False, 0.0, None),  # idle and healthy
        (4, False, 10 * STALL, None),  # nothing waits: an old last key is no stall
        (4, True, 1.0, None),  # work waits, workers finishing keys
        (4, True, STALL, None),  # at the bound: still ready
        (4, True, STALL + 0.1, "stalled"),  # work waits, nobody finished or idled
        (1, True, STALL + 0.1, "stalled"),
        (0, False, 0.0, "no-workers"),  # every worker thread is dead
        (0, True, 0.0, "no-workers"),
    ],
)
def test_reconcile_blocker(
    live_workers: int, has_ready_work: bool, since_progress: float, expected: str | None
) -> None:
    now = 5000.0
    assert (
        reconcile_blocker(
            live_workers=live_workers,
            has_ready_work=has_ready_work,
            last_progress=now - since_progress,
            now=now,
            stall_after=STALL,
        )
        == expected
    )


def test_default_stall_bound_is_far_above_a_pass_and_a_probe_period() -> None:
    # Passes take milliseconds to seconds; the kubelet probes every 5 s with threshold 2.
    assert DEFAULT_STALL_AFTER >= 30


def test_progress_beat_records_the_clock() -> None:
    clock = Clock()
    progress = Progress(clock)
    assert progress.last == 1000.0
    clock.t = 1042.0
    progress.beat()
    assert progress.last == 1042.0


def test_queue_has_ready_work_counts_queued_and_due_keys() -> None:
    clock = Clock()
    queue = WorkQueue(clock=clock)
    assert not queue.has_ready_work()
    queue.add_after("ns/later", 5.0)
    assert not queue.has_ready_work(), "a key due later is not waiting yet"
    clock.t += 5.0
    assert queue.has_ready_work(), "due but not yet moved to the queue by a get()"
    assert queue.get(timeout=0) == "ns/later"
    assert not queue.has_ready_work()
    queue.add("ns/now")
    assert queue.has_ready_work()
    queue.done("ns/later")


def thread_ending_with(error: BaseException | None, runs: list[int]) -> SupervisedThread:
    """A supervised thread whose first run ends with ``error`` (or returns); later runs block
    until stopped."""
    stop = threading.Event()

    def target() -> None:
        runs.append(1)
        if len(runs) == 1:
            if error is not None:
                raise error
            return
        stop.wait(10)

    thread = SupervisedThread("reconcile", target, name="reconcile-0", is_stopping=stop.is_set)
    thread.stop = stop  # type: ignore[attr-defined]
    return thread


@pytest.mark.parametrize(
    "error",
    [
        Panic("called `Option::unwrap()` on a `None` value"),
        SystemExit(3),
        RuntimeError("bug"),
        None,
    ],
    ids=["native-panic", "system-exit", "exception", "returned"],
)
def test_a_thread_that_ended_unasked_is_restarted_and_counted(error: BaseException | None) -> None:
    runs: list[int] = []
    restarted: list[str] = []
    thread = thread_ending_with(error, runs)
    supervisor = Supervisor(on_restart=restarted.append)
    supervisor.watch(thread)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    assert thread.cause is error
    assert supervisor.check() == 1
    assert restarted == ["reconcile"]
    eventually(lambda: len(runs) == 2, 5, message="the second run started")
    assert thread.is_alive()
    assert supervisor.check() == 0, "a live thread is left alone"
    thread.stop.set()  # type: ignore[attr-defined]
    thread.join(5)
    assert supervisor.check() == 0, "a thread asked to stop is not restarted"
    assert restarted == ["reconcile"]


def test_an_unwatched_thread_is_not_restarted() -> None:
    runs: list[int] = []
    restarted: list[str] = []
    thread = thread_ending_with(SystemExit(), runs)
    supervisor = Supervisor(on_restart=restarted.append)
    supervisor.watch(thread)
    supervisor.unwatch(thread)
    thread.start()
    thread.join(5)
    assert supervisor.check() == 0
    assert restarted == []


def test_the_supervisor_thread_restarts_on_its_own() -> None:
    runs: list[int] = []
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    supervisor = Supervisor(on_restart=metrics.count_restart, interval=0.02)
    thread = thread_ending_with(Panic("boom"), runs)
    supervisor.watch(thread)
    supervisor.start()
    try:
        assert supervisor.is_alive
        thread.start()
        eventually(lambda: len(runs) == 2, 5, message="restarted by the supervisor thread")
        value = registry.get_sample_value("zenflow_thread_restarts_total", {"thread": "reconcile"})
        assert value == 1
    finally:
        thread.stop.set()  # type: ignore[attr-defined]
        supervisor.stop()
        thread.join(5)
    assert not supervisor.is_alive


def test_restart_counter_has_every_role_at_zero_and_no_unbounded_label() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    for role in THREAD_ROLES:
        assert registry.get_sample_value("zenflow_thread_restarts_total", {"thread": role}) == 0
    metrics.count_restart("reconcile-17")  # an index slipped into a role: not a new series
    assert registry.get_sample_value("zenflow_thread_restarts_total", {"thread": "other"}) == 1
    assert (
        registry.get_sample_value("zenflow_thread_restarts_total", {"thread": "reconcile-17"})
        is None
    )


def test_crash_message_names_the_class_and_the_first_line() -> None:
    error = Panic("\ncalled `Option::unwrap()` on a `None` value\nstack backtrace:\n 0: ...")
    message = crash_message(error)
    assert "Panic: called `Option::unwrap()` on a `None` value" in message
    assert "backtrace" not in message
    assert crash_message(Panic()).startswith("the controller could not plan this flow (Panic)")
    long = crash_message(Panic("x" * 10_000))
    assert len(long) < MAX_CRASH_TEXT + 100
    assert "x" * 50 in long and "..." in long
