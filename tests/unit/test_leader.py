"""controller.leader.LeaderElector.try_acquire_or_renew against an in-memory Lease store that
behaves like the API server (resourceVersion checks: a stale PUT is a Conflict): acquiring a free
or missing Lease, renewing our own, refusing a live Lease of another holder, taking it over only
after it expired by our own clock, exactly one winner of a race, release on shutdown, and the
timing rules. The running elector (a real thread) survives a BaseException from native code in
its renew attempts and keeps the Lease, and steps down and tries again when starting to lead
raises one."""

from __future__ import annotations

import copy
import threading

import pytest

from controller.kube import AlreadyExists, Conflict, NotFound
from controller.leader import LeaderElector, LeaderTimings
from tests.waiting import eventually


class FakeLeases:
    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict] = {}
        self.rv = 0

    def _stamp(self, body: dict) -> dict:
        self.rv += 1
        body = copy.deepcopy(body)
        body.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        return body

    def get_lease(self, namespace: str, name: str) -> dict:
        try:
            return copy.deepcopy(self.leases[(namespace, name)])
        except KeyError:
            raise NotFound("lease not found", code=404) from None

    def create_lease(self, namespace: str, body: dict) -> dict:
        key = (namespace, body["metadata"]["name"])
        if key in self.leases:
            raise AlreadyExists("exists", code=409, reason="AlreadyExists")
        self.leases[key] = self._stamp(body)
        return copy.deepcopy(self.leases[key])

    def replace_lease(self, namespace: str, name: str, body: dict) -> dict:
        current = self.leases.get((namespace, name))
        if current is None:
            raise NotFound("gone", code=404)
        if body["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise Conflict("stale", code=409, reason="Conflict")
        self.leases[(namespace, name)] = self._stamp(body)
        return copy.deepcopy(self.leases[(namespace, name)])

    def holder(self) -> str:
        return self.leases[("ns", "lease")]["spec"]["holderIdentity"]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


TIMINGS = LeaderTimings(lease_duration=15, renew_deadline=10, retry_period=2)


def elector(api: FakeLeases, identity: str, clock: Clock) -> LeaderElector:
    return LeaderElector(
        api,
        namespace="ns",
        name="lease",
        identity=identity,
        timings=TIMINGS,
        on_started=lambda: None,
        on_stopped=lambda: None,
        clock=clock,
        wall_clock=lambda: 1_700_000_000.0,
    )


def test_creates_missing_lease_and_renews_it() -> None:
    api, clock = FakeLeases(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    assert api.holder() == "a"
    spec = api.leases[("ns", "lease")]["spec"]
    assert spec["leaseDurationSeconds"] == 15
    assert spec["renewTime"].endswith("Z") and "." in spec["renewTime"]
    clock.t += 2
    assert a.try_acquire_or_renew()
    assert api.leases[("ns", "lease")]["spec"]["leaseTransitions"] == 0


def test_live_lease_of_another_is_respected_until_it_expires_by_our_clock() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock.t += 14
    assert not b.try_acquire_or_renew(), "b first saw the record at t=100: not expired yet"
    clock.t += 2
    assert b.try_acquire_or_renew()
    assert api.holder() == "b"
    assert api.leases[("ns", "lease")]["spec"]["leaseTransitions"] == 1


def test_renewals_keep_the_lease_alive_for_observers() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    for _ in range(20):
        assert not b.try_acquire_or_renew()
        clock.t += 2
        assert a.try_acquire_or_renew()
    assert api.holder() == "a"


def test_race_has_exactly_one_winner() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    clock.t += 20
    # both read the expired lease, then both write: the second PUT carries a stale version
    lease = api.get_lease("ns", "lease")
    real_get = api.get_lease
    api.get_lease = lambda ns, name: copy.deepcopy(lease)  # type: ignore[method-assign]
    results = [b.try_acquire_or_renew(), a.try_acquire_or_renew()]
    api.get_lease = real_get  # type: ignore[method-assign]
    assert results.count(True) == 1


def test_release_frees_the_lease_for_a_fast_takeover() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    a.release()
    assert api.holder() == ""
    assert b.try_acquire_or_renew()
    assert api.holder() == "b"


def test_release_does_not_touch_a_lease_held_by_another() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    b.try_acquire_or_renew()
    a.release()
    assert api.holder() == "b"


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (15, 10, 10), (15, 10, 0)])
def test_timings_must_be_ordered(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError):
        LeaderTimings(lease, renew, retry)


class Panic(BaseException):
    """Stands for pyo3's PanicException: a BaseException, not an Exception."""


class PanickyLeases(FakeLeases):
    """Every other read of the Lease panics."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.panics = 0
        self.renewals = 0

    def get_lease(self, namespace: str, name: str) -> dict:
        self.reads += 1
        if self.reads % 2 == 0:
            self.panics += 1
            raise Panic("called `Result::unwrap()` on an `Err` value")
        return super().get_lease(namespace, name)

    def replace_lease(self, namespace: str, name: str, body: dict) -> dict:
        self.renewals += 1
        return super().replace_lease(namespace, name, body)


FAST = LeaderTimings(lease_duration=2.0, renew_deadline=1.5, retry_period=0.02)


def running(api: FakeLeases, on_started) -> tuple[LeaderElector, threading.Thread, list[str]]:
    calls: list[str] = []

    def started() -> None:
        calls.append("started")
        on_started()

    e = LeaderElector(
        api,
        namespace="ns",
        name="lease",
        identity="me",
        timings=FAST,
        on_started=started,
        on_stopped=lambda: calls.append("stopped"),
    )
    thread = threading.Thread(target=e.run, daemon=True)
    thread.start()
    return e, thread, calls


def test_a_panicking_renew_attempt_does_not_kill_the_elector() -> None:
    api = PanickyLeases()
    e, thread, calls = running(api, lambda: None)
    try:
        eventually(lambda: e.is_leader, 5, message="leads despite panicking reads")
        renewals = api.renewals
        eventually(lambda: api.panics >= 10 and api.renewals >= renewals + 10, 5)
        assert thread.is_alive()
        assert e.is_leader
        assert calls == ["started"], "a failed attempt within the renew deadline keeps the term"
    finally:
        e.stop()
        thread.join(5)
    assert not thread.is_alive()
    assert calls == ["started", "stopped"]


def test_a_panic_while_starting_to_lead_steps_down_and_tries_again() -> None:
    api = FakeLeases()
    failures = [Panic("boom")]

    def on_started() -> None:
        if failures:
            raise failures.pop()

    e, thread, calls = running(api, on_started)
    try:
        eventually(lambda: calls == ["started", "stopped", "started"], 5)
        assert e.is_leader and thread.is_alive()
    finally:
        e.stop()
        thread.join(5)
    assert api.holder() == "", "released on stop"
