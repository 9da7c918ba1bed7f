"""Polling helper for tests: wait for a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEFAULT_INTERVAL = 0.05  # seconds; short enough for fast tests, long enough not to spin


def eventually(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    *,
    interval: float = DEFAULT_INTERVAL,
    message: str = "",
) -> T:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet"; the last one is chained to the
    ``AssertionError`` raised when ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    last_value: object = None
    while True:
        try:
            last_value = predicate()
            if last_value:
                return last_value
        except Exception as exc:  # the predicate may race with the system under test
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = message or getattr(predicate, "__name__", "condition")
            raise AssertionError(
                f"{detail} not met within {timeout}s (last value: {last_value!r})"
            ) from last_exc
        time.sleep(interval)
