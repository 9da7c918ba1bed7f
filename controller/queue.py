"""Work queue of keys (``namespace/name``), the same contract as client-go's workqueue.

Invariants:
- A key is queued at most once (``add`` of a queued key is a no-op: events coalesce).
- A key is handed to at most one worker at a time: a key added while it is being processed is
  marked dirty and queued again only when that worker calls ``done`` (so no reconcile of a key
  ever runs concurrently with another of the same key, and no change is lost).
- ``add_after`` schedules a key for later; of several pending delays the earliest wins.
- ``add_rate_limited`` delays a key by its own exponential backoff (base * 2^failures, capped),
  or by the server's Retry-After when that is longer;
  ``forget`` resets the failure count after a success.
- ``get`` blocks until a key is ready or the queue shuts down (then returns None).

Pure Python with one Condition, no thread of its own: delayed keys sit in a heap and ``get``
moves the due ones into the FIFO, waiting exactly until the next one is due.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

# client-go's default per-item limiter: 5 ms doubling up to 1000 s. We cap lower (5 min): a
# controller that waits a quarter hour to retry a flaky API call looks hung to its users.
DEFAULT_BASE_DELAY = 0.005
DEFAULT_MAX_DELAY = 300.0


class WorkQueue:
    def __init__(
        self,
        *,
        base_delay: float = DEFAULT_BASE_DELAY,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        # key -> due time of its earliest pending delayed add; the heap may hold stale entries.
        self._waiting: dict[str, float] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._seq = itertools.count()
        self._shutting_down = False

    # -- adding ----------------------------------------------------------------------------
    def add(self, key: str) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutting_down:
                return
            due = self._clock() + delay
            current = self._waiting.get(key)
            if current is not None and current <= due:
                return
            self._waiting[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self._cond.notify_all()  # a getter may be sleeping until a later due time

    def add_rate_limited(self, key: str, *, at_least: float = 0.0) -> float:
        """Re-add after the key's backoff, or after ``at_least`` seconds when that is longer (the
        server's Retry-After); returns the delay used."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = max(at_least, min(self.max_delay, self.base_delay * float(2**failures)))
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    # -- taking ----------------------------------------------------------------------------
    def _promote_due_locked(self) -> float | None:
        """Move due delayed keys to the queue; return seconds until the next one (or None)."""
        now = self._clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._waiting.get(key) != due:
                heapq.heappop(self._heap)  # superseded by an earlier add_after
                continue
            if due > now:
                return due - now
            heapq.heappop(self._heap)
            del self._waiting[key]
            self._add_locked(key)
        return None

    def get(self, timeout: float | None = None) -> str | None:
        """Next ready key (the caller must call ``done(key)``), or None on shutdown/timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                next_due = self._promote_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                if self._shutting_down:
                    return None
                wait = next_due
                if deadline is not None:
                    left = deadline - self._clock()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    # -- lifecycle / introspection ---------------------------------------------------------
    def shutdown(self) -> None:
        """Stop handing out keys: every getter returns None at once. Pending keys are dropped: the
        caches hold the truth, and the next start re-lists and re-queues every flow."""
        with self._cond:
            self._shutting_down = True
            self._queue.clear()
            self._dirty.clear()
            self._heap.clear()
            self._waiting.clear()
            self._cond.notify_all()

    @property
    def is_shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (the queue depth metric)."""
        with self._cond:
            return len(self._queue)

    def has_ready_work(self) -> bool:
        """Whether a key could be handed out now: queued, or delayed and already due (due keys
        move to the queue only inside ``get``, so busy workers leave them in the heap)."""
        with self._cond:
            if self._queue:
                return True
            now = self._clock()
            return any(due <= now for due in self._waiting.values())

    def waiting(self) -> int:
        """Keys scheduled for later."""
        with self._cond:
            return len(self._waiting)

    def processing(self) -> int:
        with self._cond:
            return len(self._processing)
