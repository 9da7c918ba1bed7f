"""The runner's work queue and timers: keys, never events. The queue has client-go's dirty and
processing sets, so one key is never worked on by two workers at once; the timer heap enqueues
a key when its time comes."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

Key = tuple[str, str]  # (namespace, Job name), or a bare pod's (runner.POD_KEY_PREFIX)


class WorkQueue:
    """Keys to reconcile; a key is handed to one worker at a time (client-go workqueue rules)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._closed = False

    def add(self, key: Key) -> None:
        with self._cond:
            if self._closed or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def get(self) -> Key | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._processing


class Timers:
    """One thread and a heap: enqueue a key at a monotonic time (durations, deadlines, backoff)."""

    def __init__(self, fire: Callable[[Key], None]) -> None:
        self._fire = fire
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop, name="kubesim-runner-timers", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def at(self, when: float, key: Key) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), key))
            if self._heap[0][2] == key:
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            due: list[Key] = []
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
                if self._closed:
                    return
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for key in due:
                self._fire(key)
