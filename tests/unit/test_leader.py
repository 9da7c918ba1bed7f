"""controller.leader.LeaderElector.try_acquire_or_renew against an in-memory Lease store that
behaves like the API server (resourceVersion checks: a stale PUT is a Conflict): acquiring a free
or missing Lease, renewing our own, refusing a live Lease of another holder, taking it over only
after it expired by our own clock, exactly one winner of a race, release on shutdown, and the
timing rules."""

from __future__ import annotations

import copy

import pytest

from controller.kube import AlreadyExists, Conflict, NotFound
from controller.leader import LeaderElector, LeaderTimings


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
