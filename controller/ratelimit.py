"""Client-side rate limit of the API client (controller.kube): client-go's token bucket."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """QPS limiter with a burst, as client-go's flowcontrol: ``acquire`` blocks until a token is
    free. ``qps <= 0`` disables limiting. Thread-safe; tokens are handed out in order of the
    reservation (each caller reserves a slot, then sleeps outside the lock)."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._last = clock()

    def reserve(self) -> float:
        """Take one token and return how long the caller must wait before using it."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.qps

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait
