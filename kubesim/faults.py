"""Fault injection for reliability tests: error rates, latency, dropped and expired watches.

The core creates one ``Faults`` per server (``handle.faults``) and consults it for resource
requests only (``/api/v1/...``, ``/apis/...``), never for discovery, ``/version`` or OpenAPI, so a
client can always discover the API even while every resource request fails.

* ``error_rate``: verb -> probability (0..1) that a request with that verb fails. The error is a
  500 ``InternalError`` or, with ``error_code=429``, a 429 ``TooManyRequests`` carrying a
  ``Retry-After`` header and ``details.retryAfterSeconds``, as kube-apiserver's max-in-flight
  filter answers. The verb ``*`` applies to every verb without its own entry.
* ``latency``: seconds added to every resource request (``on_request`` sleeps; the core must call
  it off the event loop, e.g. in a thread).
* ``drop_watches_every``: the core closes every watch stream after that many seconds, as a real
  server's ``--min-request-timeout`` does; clients must re-list or re-watch.
* ``expire_watches``: every watch that names a resourceVersion is answered with 410 Expired, as
  when that version fell out of the server's history.

Determinism: decisions come from one ``random.Random(seed)`` drawn under a lock, so a given seed
and a given sequence of requests always give the same failures. ``reset()`` turns every fault off.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping

from kubesim.errors import ApiError, internal

VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})
WILDCARD = "*"


class Faults:
    """Thread-safe fault configuration and decisions for one server."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._error_rate: dict[str, float] = {}
        self._error_code = 500
        self._retry_after = 1
        self._latency = 0.0
        self._drop_every: float | None = None
        self._expire = False
        self.injected: dict[str, int] = {}  # verb -> errors injected, for tests to assert on

    def configure(
        self,
        *,
        error_rate: Mapping[str, float] | None = None,
        error_code: int = 500,
        retry_after: int = 1,
        latency: float = 0.0,
        drop_watches_every: float | None = None,
        expire_watches: bool = False,
        seed: int | None = None,
    ) -> None:
        """Replace the whole configuration (unlisted settings go back to their defaults)."""
        rates = dict(error_rate or {})
        for verb, rate in rates.items():
            if verb != WILDCARD and verb not in VERBS:
                raise ValueError(f"unknown verb {verb!r} in error_rate; use one of {sorted(VERBS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"error rate for {verb!r} must be within 0..1, got {rate}")
        if error_code not in (429, 500):
            raise ValueError(f"error_code must be 429 or 500, got {error_code}")
        if latency < 0 or retry_after < 0:
            raise ValueError("latency and retry_after must not be negative")
        if drop_watches_every is not None and drop_watches_every <= 0:
            raise ValueError("drop_watches_every must be positive seconds or None")
        with self._lock:
            self._rng = random.Random(seed)
            self._error_rate = rates
            self._error_code = error_code
            self._retry_after = retry_after
            self._latency = latency
            self._drop_every = drop_watches_every
            self._expire = expire_watches
            self.injected = {}

    def reset(self) -> None:
        self.configure()

    def decide(self, verb: str) -> ApiError | None:
        """The error to answer ``verb`` with, or None; never sleeps (for async callers)."""
        with self._lock:
            rate = self._error_rate.get(verb, self._error_rate.get(WILDCARD, 0.0))
            if rate <= 0.0 or self._rng.random() >= rate:
                return None
            self.injected[verb] = self.injected.get(verb, 0) + 1
            code, retry_after = self._error_code, self._retry_after
        if code == 429:
            return ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                details={"retryAfterSeconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        return internal(f"kubesim injected a fault into this {verb} request")

    @property
    def latency(self) -> float:
        """Seconds to delay each resource request (an async caller awaits this itself)."""
        return self._latency

    def on_request(self, verb: str) -> ApiError | None:
        """Sleep the configured latency, then return the error to answer with or None.

        Blocking: call it from a worker thread, or use ``latency`` + ``decide`` on an event loop.
        """
        delay = self._latency
        if delay > 0:
            time.sleep(delay)
        return self.decide(verb)

    def watch_deadline(self) -> float | None:
        """Close a watch stream after this many seconds (None: never)."""
        return self._drop_every

    def force_expired(self) -> bool:
        """Answer a watch that names a resourceVersion with 410 Expired."""
        return self._expire
