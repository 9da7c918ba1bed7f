"""controller.capacity, the ledger behind --max-active-jobs, driven as the reconciler drives it
(Job informer events, reserve before a pass, settle after its creates): the count of active
Jobs follows the Jobs (finished and deleted ones leave it), reservations of passes in flight
are not spent twice, held flows take turns in a ring (a flow with many ready steps cannot starve
one with a single step), freed slots wake the first waiters, a Job that finished before its
pass settled is not counted, a deleted flow waits no more, and
no cap at all grants None (no limit)."""

from __future__ import annotations

from typing import Any

from controller.capacity import Capacity


def job(name: str, *, done: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Complete", "status": "True"}] if done else []
    return {"metadata": {"name": name, "namespace": "ns"}, "status": {"conditions": conditions}}


class Woken(list[str]):
    def __call__(self, key: str) -> None:
        self.append(key)


def test_no_cap_grants_no_limit_and_still_counts() -> None:
    cap = Capacity(None, wake=Woken())
    assert cap.reserve("ns/f") is None
    cap.settle("ns/f", ["ns/j"], held=3)
    assert cap.waiting == 0
    assert cap.active == 1  # the gauge zenflow_active_jobs
    cap.observe(job("j"), job("j", done=True))
    assert cap.active == 0
    assert Capacity(0, wake=Woken()).limit is None


def test_active_jobs_follow_the_informer() -> None:
    cap = Capacity(3, wake=Woken())
    cap.observe(None, job("a"))
    cap.observe(None, job("b"))
    assert cap.active == 2
    cap.observe(job("a"), job("a", done=True))
    assert cap.active == 1
    cap.observe(job("b"), None)
    assert cap.active == 0


def test_reservations_in_flight_are_not_spent_twice() -> None:
    cap = Capacity(3, wake=Woken())
    assert cap.reserve("ns/f") == 3
    assert cap.reserve("ns/g") == 0  # f's pass holds every slot until it settles
    cap.settle("ns/f", ["ns/f-1", "ns/f-2"], held=0)
    cap.settle("ns/g", [], held=1)
    assert cap.reserve("ns/h") == 0  # one free, but g waits ahead of h and keeps it
    cap.settle("ns/h", [], held=1)
    assert cap.reserve("ns/g") == 1


def test_a_huge_flow_cannot_starve_a_small_one() -> None:
    woken = Woken()
    cap = Capacity(2, wake=woken)
    assert cap.reserve("ns/huge") == 2
    cap.settle("ns/huge", ["ns/h0", "ns/h1"], held=498)
    assert cap.reserve("ns/small") == 0
    cap.settle("ns/small", [], held=1)
    assert cap.waiting == 2
    # h0 ends: the first waiter (huge, which was held first) is woken and takes the slot
    cap.observe(job("h0"), job("h0", done=True))
    assert woken == ["ns/huge"]
    assert cap.reserve("ns/huge") == 1
    cap.settle("ns/huge", ["ns/h2"], held=497)  # served: to the back of the ring
    # h1 ends: now the small flow is first, and huge's own pass (its Job ended) gets nothing
    cap.observe(job("h1"), job("h1", done=True))
    assert woken[-1] == "ns/small"
    assert cap.reserve("ns/huge") == 0
    cap.settle("ns/huge", [], held=497)
    assert cap.reserve("ns/small") == 1
    cap.settle("ns/small", ["ns/s0"], held=0)
    assert cap.waiting == 1 and cap.active == 2


def test_a_deleted_flow_waits_no_more_and_wakes_the_next() -> None:
    woken = Woken()
    cap = Capacity(1, wake=woken)
    cap.observe(None, job("x"))
    for flow in ("ns/a", "ns/b"):
        assert cap.reserve(flow) == 0
        cap.settle(flow, [], held=1)
    cap.observe(job("x"), None)
    assert woken == ["ns/a"]
    cap.forget("ns/a")
    assert woken == ["ns/a", "ns/b"]
    assert cap.reserve("ns/b") == 1


def test_a_job_that_finished_before_its_pass_settled_is_not_counted() -> None:
    cap = Capacity(2, wake=Woken())
    assert cap.reserve("ns/f") == 2
    # j0 finished (its event, seen first, found nothing to discount); j1 runs; j2 was never made
    state = {"ns/j0": False, "ns/j1": True, "ns/j2": False}
    cap.settle("ns/f", ["ns/j0", "ns/j1", "ns/j2"], held=0, unfinished=state.__getitem__)
    assert cap.active == 1
    assert cap.reserve("ns/g") == 1
