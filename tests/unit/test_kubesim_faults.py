"""kubesim.faults decisions without a server: determinism with a seed, per-verb rates and the
``*`` wildcard, the 500 and 429 (Retry-After) error shapes, watch settings, validation, reset."""

from __future__ import annotations

import pytest

from kubesim.faults import Faults


def pattern(faults: Faults, verb: str, n: int = 200) -> list[bool]:
    return [faults.decide(verb) is not None for _ in range(n)]


def test_same_seed_same_failures() -> None:
    a, b = Faults(), Faults()
    a.configure(error_rate={"get": 0.3}, seed=7)
    b.configure(error_rate={"get": 0.3}, seed=7)
    first = pattern(a, "get")
    assert first == pattern(b, "get")
    assert 20 < sum(first) < 100  # about 30% of 200


def test_rate_is_per_verb_with_wildcard_fallback() -> None:
    f = Faults()
    f.configure(error_rate={"create": 1.0, "*": 0.0}, seed=1)
    assert all(pattern(f, "create", 20))
    assert not any(pattern(f, "list", 20))
    f.configure(error_rate={"*": 1.0}, seed=1)
    assert all(pattern(f, "watch", 5))
    assert f.injected == {"watch": 5}


def test_500_shape() -> None:
    f = Faults()
    f.configure(error_rate={"get": 1.0})
    err = f.decide("get")
    assert err is not None
    assert (err.code, err.reason) == (500, "InternalError")
    assert err.message.startswith("Internal error occurred: ")
    assert err.headers == {}


def test_429_carries_retry_after() -> None:
    f = Faults()
    f.configure(error_rate={"list": 1.0}, error_code=429, retry_after=2)
    err = f.on_request("list")
    assert err is not None
    assert (err.code, err.reason) == (429, "TooManyRequests")
    assert err.headers == {"Retry-After": "2"}
    assert err.status()["details"] == {"retryAfterSeconds": 2}


def test_watch_settings_and_reset() -> None:
    f = Faults()
    assert f.watch_deadline() is None
    assert f.force_expired() is False
    f.configure(drop_watches_every=0.5, expire_watches=True, latency=0.01)
    assert f.watch_deadline() == 0.5
    assert f.force_expired() is True
    assert f.latency == 0.01
    f.reset()
    assert (f.watch_deadline(), f.force_expired(), f.latency) == (None, False, 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"error_rate": {"frobnicate": 0.5}},
        {"error_rate": {"get": 1.5}},
        {"error_code": 503},
        {"latency": -1},
        {"drop_watches_every": 0},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Faults().configure(**kwargs)  # type: ignore[arg-type]
