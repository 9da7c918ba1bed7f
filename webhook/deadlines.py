"""The body deadline of every review being read, on one timer per event loop.

A review's body must arrive within ``body_timeout`` seconds (webhook.routes says why). The
obvious way, ``asyncio.timeout`` around each read, schedules a timer handle, pushes it on the
loop's heap and cancels it again for every request: ~12 us of a review's ~0.4 ms of server
CPU, although the body of a review nearly always arrives with its head, so nothing waits.

Here a read registers its task and deadline in a dict and takes them out when it is done
(two dict operations). One timer, armed for the earliest deadline when the first read
registers, fires, cancels the tasks whose deadline has passed (marking them expired) and
re-arms for the earliest deadline left. A deadline is as exact as with ``asyncio.timeout``.

The caller turns the cancellation into its answer: ``finish`` says whether the task's deadline
expired, and a task cancelled for that is uncancelled (``Task.uncancel``) so that it can still
answer; any other cancellation (the server shutting down, the client gone) goes on as usual.

State is kept per event loop (tests run one app on several loops in turn); all of it is used
from the loop's own thread only.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Final


class _LoopDeadlines:
    # No reference to its loop (the dict of states is keyed weakly by loop): the timer handle
    # carries it while armed.
    def __init__(self) -> None:
        self.due: dict[asyncio.Task[object], float] = {}
        self.expired: set[asyncio.Task[object]] = set()
        self.timer: asyncio.TimerHandle | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        self.timer = loop.call_at(due, self.fire, loop)

    def fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        now = loop.time()
        earliest: float | None = None
        for task, due in list(self.due.items()):
            if due <= now:
                del self.due[task]
                self.expired.add(task)
                task.cancel()
            elif earliest is None or due < earliest:
                earliest = due
        if earliest is not None:
            self.arm(loop, earliest)


class BodyDeadlines:
    """``start(task)`` before reading a body, ``finish(task)`` after (in ``finally``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds: Final = seconds
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDeadlines] = (
            weakref.WeakKeyDictionary()
        )
        # The loop of the last call and its state (a server has one loop): no lookup by loop.
        self._last: tuple[weakref.ref[asyncio.AbstractEventLoop], _LoopDeadlines] | None = None

    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopDeadlines:
        last = self._last
        if last is not None and last[0]() is loop:
            return last[1]
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopDeadlines()
        self._last = (weakref.ref(loop), state)
        return state

    def start(self, task: asyncio.Task[object]) -> None:
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        due = loop.time() + self.seconds
        state.due[task] = due
        if state.timer is None:
            state.arm(loop, due)
        # An armed timer fires no later than this deadline: deadlines only grow in time, as
        # every read gets the same number of seconds (``fire`` re-arms for the earliest left).

    def finish(self, task: asyncio.Task[object]) -> bool:
        """Forget ``task``'s deadline; True when it expired (the task was cancelled for it)."""
        state = self._state(asyncio.get_running_loop())
        if state.due.pop(task, None) is not None:
            return False
        if task in state.expired:
            state.expired.discard(task)
            return True
        return False
