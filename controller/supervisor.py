"""Thread boundaries, the supervisor that restarts dead controller threads, and the verdict
behind /readyz on whether the controller can still reconcile.

Invariants:
- A thread boundary (a reconcile worker's pass, an informer's loop and its handlers, a leader
  election attempt, the event writer, the supervisor's own check) survives every exception
  except ``PROPAGATE``: ``BaseException`` subclasses from native code (pyo3's
  ``PanicException`` is one) are caught there like any ``Exception``, logged once with their
  context, and the loop goes on. ``SystemExit``, ``KeyboardInterrupt`` and ``GeneratorExit``
  pass through: they ask for a stop, and catching them would turn a stop into a hang.
- While the controller runs, every long-lived thread is a ``SupervisedThread`` (or owns one):
  a thread that ends although nobody asked it to stop (a ``SystemExit`` raised inside it, a
  bug past its boundary) is started again by the ``Supervisor`` within ``CHECK_INTERVAL``
  seconds, and each restart is counted in ``zenflow_thread_restarts_total{thread=<role>}``.
  Roles are a fixed set (``controller.metrics.THREAD_ROLES``), never a thread's index.
- ``reconcile_blocker`` is the readiness rule: a leader cannot reconcile when it has no live
  worker, or when keys are ready to be handed out and no worker has finished a key or found
  the queue empty for ``stall_after`` seconds. Workers stamp that progress on every loop
  iteration (idle workers at least every ``IDLE_BEAT`` seconds), so a quiet controller is never
  mistaken for a stalled one, and a busy one under load keeps finishing keys. The rule reads
  counters and a clock: cheap, and it never waits on a worker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, Protocol

log = logging.getLogger(__name__)

# What a boundary lets through (see the module docstring). ``except PROPAGATE: raise`` comes
# before ``except BaseException`` at every boundary.
PROPAGATE: Final = (SystemExit, KeyboardInterrupt, GeneratorExit)

# How often the supervisor looks for dead threads; a dead worker is replaced within this.
CHECK_INTERVAL: Final = 0.5
# An idle worker wakes from the queue this often to say it is alive and free.
IDLE_BEAT: Final = 1.0
# Keys waiting this long with no worker finishing one (or idling) make /readyz false. A pass
# takes milliseconds, a slow one (hundreds of Job creates under a QPS limit) seconds; a minute
# of nothing while work waits is a controller that cannot reconcile, not a busy one.
DEFAULT_STALL_AFTER: Final = 60.0


class Revivable(Protocol):
    """Something that owns a long-lived thread the supervisor may have to restart."""

    @property
    def role(self) -> str: ...

    def revive(self) -> bool:
        """Start the thread again if it ended unasked; True when it did."""
        ...


class SupervisedThread:
    """One long-lived daemon thread doing ``role``'s job.

    ``is_stopping`` says whether the owner asked the thread to end; ``revive()`` starts a new
    thread running ``target`` when the last one ended while that was false. Whatever ends a
    run (an exception that got past the target's own boundary) is kept for the supervisor's
    log line and not handed to ``threading.excepthook``: the thread ends either way.
    """

    def __init__(
        self,
        role: str,
        target: Callable[[], None],
        *,
        name: str,
        is_stopping: Callable[[], bool],
    ) -> None:
        self.role = role
        self.name = name
        self._target = target
        self._is_stopping = is_stopping
        self._thread: threading.Thread | None = None
        self.cause: BaseException | None = None  # what ended the last run, if anything

    def start(self) -> None:
        self.cause = None
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._target()
        except BaseException as exc:  # the top of a thread: nothing above to propagate to
            self.cause = exc

    def is_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def revive(self) -> bool:
        thread = self._thread
        # Alive first, then stopping: a thread that ended because it was asked to had its
        # stop flag set before it ended, so it is never taken for a dead one.
        if thread is None or thread.is_alive() or self._is_stopping():
            return False
        cause = self.cause
        log.error(
            "controller thread ended unasked, restarting it",
            exc_info=(type(cause), cause, cause.__traceback__) if cause is not None else None,
            extra={"thread_name": self.name, "role": self.role},
        )
        self.start()
        return True


class Supervisor:
    """Every ``CHECK_INTERVAL`` seconds, revive each watched thread that died; ``on_restart``
    is told the role of each one restarted (the controller counts them in a metric)."""

    def __init__(
        self, *, on_restart: Callable[[str], None], interval: float = CHECK_INTERVAL
    ) -> None:
        self._on_restart = on_restart
        self._interval = interval
        self._lock = threading.Lock()
        self._watched: list[Revivable] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, *items: Revivable) -> None:
        with self._lock:
            self._watched.extend(items)

    def unwatch(self, *items: Revivable) -> None:
        with self._lock:
            self._watched = [w for w in self._watched if all(w is not i for i in items)]

    def check(self) -> int:
        """One round: revive what died; returns how many were restarted."""
        with self._lock:
            watched = list(self._watched)
        restarted = 0
        for item in watched:
            try:
                if item.revive():
                    restarted += 1
                    self._on_restart(item.role)
            except PROPAGATE:
                raise
            except BaseException:  # one broken item must not stop the others being watched
                log.exception("could not restart a controller thread", extra={"role": item.role})
        return restarted

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def is_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except PROPAGATE:
                raise
            except BaseException:
                log.exception("supervisor check failed")


class Progress:
    """When a worker last showed it can take work: it finished a key, or found none waiting.

    Written by every worker without a lock (one float assignment), read by the readiness
    probe; the probe only needs "recently or not"."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.last = clock()

    def beat(self) -> None:
        self.last = self._clock()


def reconcile_blocker(
    *,
    live_workers: int,
    has_ready_work: bool,
    last_progress: float,
    now: float,
    stall_after: float = DEFAULT_STALL_AFTER,
) -> str | None:
    """Why a leader with synced caches cannot reconcile, or None when it can.

    ``"no-workers"`` when every worker thread is dead (the supervisor is about to replace
    them, or cannot); ``"stalled"`` when keys are ready to be handed out and no worker has
    finished one or idled for more than ``stall_after`` seconds."""
    if live_workers <= 0:
        return "no-workers"
    if has_ready_work and now - last_progress > stall_after:
        return "stalled"
    return None
