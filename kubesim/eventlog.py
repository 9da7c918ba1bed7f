"""The Store's change feed: the bounded watch history, watch listeners and subscribers.

Every committed change becomes one ``Event`` carrying the change's resourceVersion; events are
appended in resourceVersion order (the Store calls ``emit`` under its lock, right after the
commit). The history keeps the last ``history_size`` events so that a watch can resume from a
resourceVersion; a watch from before the oldest kept event (``compacted_rv``) gets 410 Expired,
and so does a list ``continue`` token that old. Listeners (HTTP watches, one resource and
optionally one namespace each) and subscribers (in-process components such as the Job runner,
every resource) are called synchronously in commit order and must not block: they hand the
event to a queue. A failing callback is logged and never breaks the write that caused it.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kubesim.errors import expired
from kubesim.resources import GVR, Registry

log = logging.getLogger(__name__)

Key = tuple[str, str]  # a storage key: (group, resource)
Subscriber = Callable[[str, GVR, dict[str, Any]], None]


@dataclass(frozen=True)
class Event:
    """One committed change, as kept in the watch history."""

    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    key: Key
    namespace: str
    obj: dict[str, Any]  # the stored (shared, never mutated) new state; for DELETED the last state
    old: dict[str, Any] | None  # the previous state (selector transitions need it)


class WatchHandle:
    """A registered watch listener; ``cancel()`` unregisters it."""

    def __init__(self, events: EventLog, listener: _Listener) -> None:
        self._events = events
        self._listener = listener

    def cancel(self) -> None:
        self._events.remove(self._listener)


@dataclass
class _Listener:
    key: Key | None
    namespace: str | None
    callback: Callable[[Event], None]


class EventLog:
    """History and fan-out of committed changes; guarded by the Store's lock (passed in)."""

    def __init__(
        self, lock: threading.RLock, registry: Registry, *, history_size: int, first_rv: int
    ) -> None:
        self._lock = lock
        self._registry = registry
        self._history: deque[Event] = deque(maxlen=history_size)
        self._compacted_rv = first_rv  # watches from an older resourceVersion get 410
        self._listeners: builtins.list[_Listener] = []
        self._subscribers: builtins.list[Subscriber] = []

    def emit(self, event: Event) -> None:
        """Record a change and hand it to every listener and subscriber (lock held)."""
        if len(self._history) == self._history.maxlen and self._history:
            self._compacted_rv = self._history[0].rv
        self._history.append(event)
        for listener in list(self._listeners):
            if listener.key == event.key and (
                listener.namespace is None or listener.namespace == event.namespace
            ):
                try:
                    listener.callback(event)
                except Exception:  # a broken watcher must not break the write path
                    log.exception("watch listener failed", extra={"resource": event.key[1]})
        if self._subscribers:
            rt = self._registry.for_key(event.key)
            if rt is None:
                return
            for sub in list(self._subscribers):
                try:
                    sub(event.type, rt.gvr, event.obj)
                except Exception:
                    log.exception("store subscriber failed", extra={"resource": event.key[1]})

    def watch(
        self,
        key: Key,
        namespace: str | None,
        *,
        since: int | None,
        current: Iterable[dict[str, Any]],
        callback: Callable[[Event], None],
    ) -> tuple[builtins.list[Event], WatchHandle]:
        """The events a new watch sees first, and its registration, atomically (lock held).

        ``since=None``: a synthetic ADDED event for each of the ``current`` objects.
        ``since=N``: every recorded change after N (410 if N is older than the history).
        """
        if since is None:
            initial = [
                Event(
                    int(o["metadata"]["resourceVersion"]),
                    "ADDED",
                    key,
                    o["metadata"].get("namespace", ""),
                    o,
                    None,
                )
                for o in current
            ]
        else:
            if since < self._compacted_rv:
                raise expired(f"too old resource version: {since} ({self._compacted_rv})")
            initial = [
                e
                for e in self._history
                if e.rv > since and e.key == key and (namespace is None or e.namespace == namespace)
            ]
        listener = _Listener(key, namespace, callback)
        self._listeners.append(listener)
        return initial, WatchHandle(self, listener)

    def remove(self, listener: _Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns unsubscribe."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def compact(self, rv: int) -> None:
        """Forget the history: every resourceVersion older than ``rv`` now gets 410."""
        with self._lock:
            self._history.clear()
            self._compacted_rv = rv

    def check_continue_rv(self, rv: int) -> None:
        """410 for a list continue token older than the history."""
        if rv < self._compacted_rv:
            raise expired(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter, or use the continue token "
                "in this response to retrieve the remainder of the results."
            )
