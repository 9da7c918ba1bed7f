"""The controller-wide cap on active Jobs (``--max-active-jobs``), shared fairly among flows.

An active Job is one zen-flow created (label managed-by=zen-flow, seen by the Job informer) that
has not finished: running, pending, or suspended by Kueue (it exists, and Kueue may admit it
any moment). The cap bounds how many of them exist at once across every flow.

How a pass gets its share (``reserve`` before planning, ``settle`` after creating):
- ``free`` = limit - active Jobs - slots reserved by passes in flight (two workers planning
  different flows at once cannot both spend the last slot).
- Flows that were held back wait in a ring, in turn order. Every waiter ahead of this flow
  keeps one free slot for itself, so a flow gets ``free - (waiters ahead of it)``: a flow with
  500 ready steps takes what is free when nobody waits, and once it was held it goes to the
  back of the ring each time it is served, so a flow with one ready step gets the next slot
  that frees after it arrived. The planner starts the granted number in spec order and marks
  the rest WaitingForCapacity (``Plan.held_for_capacity``).
- When a Job finishes or goes away, the first waiters (one per free slot) are enqueued, so a
  held flow does not wait for the resync.
Everything is in memory and rebuilt from the Job cache by a new leader (its initial LIST
notifies every Job); an active Job created by a pass is counted at once (our own creates are
put in the cache without an event). Without a cap the ledger still counts (the gauge
``zenflow_active_jobs``) and grants every pass no limit.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from controller import cache as cache_mod
from controller.kube import JSONDict
from jobflow import jobs as jobs_mod


def _finished(job: JSONDict) -> bool:
    return jobs_mod.job_outcome(job).state != "running"


class Capacity:
    def __init__(self, limit: int | None, *, wake: Callable[[str], None]) -> None:
        self.limit = limit if limit else None  # None or 0: no cap
        self._wake = wake
        self._lock = threading.Lock()
        self._active: set[str] = set()  # "namespace/name" of unfinished Jobs
        self._reserved: dict[str, int] = {}  # flow key -> slots its pass in flight holds
        self._waiting: OrderedDict[str, None] = OrderedDict()  # flows held back, in turn order

    # -- what the gauges read --
    @property
    def active(self) -> int:
        return len(self._active)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    # -- the Job informer's view --
    def observe(self, old: JSONDict | None, new: JSONDict | None) -> None:
        """A Job changed (handler of the Job informer): count it while it is unfinished."""
        obj = new or old
        if obj is None:
            return
        key = cache_mod.key_of(obj)
        with self._lock:
            if new is not None and not _finished(new):
                self._active.add(key)
                return
            if key not in self._active:
                return
            self._active.discard(key)
            woken = self._to_wake()
        for flow in woken:
            self._wake(flow)

    # -- a pass --
    def reserve(self, flow: str) -> int | None:
        """How many new Jobs the pass over ``flow`` may create (None: no cap); held until
        ``settle``."""
        if self.limit is None:
            return None
        with self._lock:
            free = self._free()
            ahead = 0
            for waiter in self._waiting:
                if waiter == flow:
                    break
                ahead += 1
            share = max(free - ahead, 0)
            self._reserved[flow] = share
            return share

    def settle(
        self,
        flow: str,
        created: Iterable[str],
        *,
        held: int,
        unfinished: Callable[[str], bool] = lambda _key: True,
    ) -> None:
        """The pass over ``flow`` created the Jobs ``created`` ("namespace/name") and left
        ``held`` ready steps waiting for capacity. ``unfinished(key)`` reads the Job cache
        under this ledger's lock: a Job that already finished (its event came first, and found
        nothing to discount) is not counted, and one that finishes after is discounted by
        ``observe``, which waits for the lock."""
        with self._lock:
            self._active.update(key for key in created if unfinished(key))
            if self.limit is None:
                return  # no cap: only the count (zenflow_active_jobs) is kept
            self._reserved.pop(flow, None)
            self._waiting.pop(flow, None)
            if held:
                self._waiting[flow] = None  # served (or not): to the back of the ring
            woken = self._to_wake()
        for key in woken:
            if key != flow:
                self._wake(key)

    def forget(self, flow: str) -> None:
        """``flow`` is gone: it waits for nothing."""
        with self._lock:
            self._waiting.pop(flow, None)
            self._reserved.pop(flow, None)
            woken = self._to_wake() if self.limit is not None else []
        for key in woken:
            self._wake(key)

    def _free(self) -> int:
        assert self.limit is not None
        return self.limit - len(self._active) - sum(self._reserved.values())

    def _to_wake(self) -> list[str]:
        """The first waiters, one per free slot (under the lock)."""
        if self.limit is None or not self._waiting:
            return []
        return list(itertools.islice(self._waiting, max(self._free(), 0)))
