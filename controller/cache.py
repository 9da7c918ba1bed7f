"""Watch caches (informers): an in-memory, always-converging copy of one kind of object.

Each Informer runs one thread: LIST (paginated) → replace the store → WATCH from the list's
resourceVersion with bookmarks → apply events → re-WATCH from the last resourceVersion seen when
the stream ends. A 410 Gone (history compacted) or a broken stream that cannot resume leads to a
fresh LIST; the diff between old and new store is delivered to the handler like events, so no
change is lost across a re-list. ``has_synced`` is set after the first full LIST.

Invariants:
- The store only moves forward: an object is replaced only by one with a newer resourceVersion
  (so a write-through of our own write, see ``upsert``, is never undone by an older event).
- Handlers receive (old, new) with None for absent; they must be cheap (they enqueue keys).
- Scoping: the Job informer is created with the label selector
  ``app.kubernetes.io/managed-by=zen-flow``: we never cache every Job in the cluster.
- Memory: a ``transform`` strips what no reader needs (managedFields, pod templates) and packs
  what only a pass reads (a flow's spec, controller.packing) before an object enters the store;
  it sees the stored copy of the same key, so it can reuse what has not changed.
- The loop and the handler calls are thread boundaries (controller.supervisor): anything but
  SystemExit/KeyboardInterrupt/GeneratorExit, native panics included, is logged and followed by
  a fresh LIST; a thread that ends anyway is restarted by the supervisor (``revive``) and
  re-lists, so the store converges again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from controller.kube import ApiError, Gone, JSONDict, Kube, Resource
from controller.supervisor import PROPAGATE, SupervisedThread

log = logging.getLogger(__name__)

Handler = Callable[[JSONDict | None, JSONDict | None], None]
IndexFunc = Callable[[JSONDict], list[str]]
# (the object as the server sent it, the stored copy of the same key or None) -> what to store
Transform = Callable[[JSONDict, JSONDict | None], JSONDict]

# Server-side watch timeout, jittered so many informers don't reconnect in lockstep.
WATCH_TIMEOUT_RANGE = (240, 300)
# Objects per LIST page: each page is decoded whole and then transformed (stripped, packed), so
# a smaller page keeps the start-up peak, and the heap it leaves behind, small. The default (20)
# suits small objects (Jobs); an informer of large ones (JobFlows: a 20-step flow with its status is
# tens of KiB decoded, up to the 1.5 MiB object limit) passes a smaller ``page``.
LIST_PAGE = 20
# Pause before retrying after an API error (grows to the max while errors continue).
ERROR_BACKOFF_START = 0.2
ERROR_BACKOFF_MAX = 10.0
# A watch stream shorter than this is suspicious (server closing at once): back off before the next.
QUICK_WATCH = 0.25
# Re-lists forced by 410 right after a fresh list are spaced by up to this (client-go: 0.8-30 s;
# we stay low because our lists are label-scoped and a stuck watch delays every flow).
GONE_BACKOFF_MAX = 2.0


def key_of(obj: JSONDict) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _rv(obj: JSONDict | None) -> int | None:
    if obj is None:
        return None
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None  # opaque resourceVersion: ordering unknown, accept the newer arrival


def _not_newer(obj: JSONDict, stored: JSONDict | None) -> bool:
    """``obj`` is as old as ``stored`` or older (by resourceVersion, when both are numbers)."""
    if stored is None:
        return False
    new_rv, old_rv = _rv(obj), _rv(stored)
    return old_rv is not None and new_rv is not None and new_rv <= old_rv


def strip_managed_fields(obj: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = dict(meta)
        del meta["managedFields"]
        obj = {**obj, "metadata": meta}
    return obj


class Informer:
    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        transform: Transform = strip_managed_fields,
        name: str = "",
        page: int = LIST_PAGE,
    ) -> None:
        self.kube = kube
        self.page = page
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.transform = transform
        self.name = name or resource.plural
        self._indexers = indexers or {}
        self._handlers: list[Handler] = []
        self._lock = threading.RLock()
        self._store: dict[str, JSONDict] = {}
        self._indices: dict[str, dict[str, set[str]]] = {n: {} for n in self._indexers}
        self._rv = ""
        self._stop = threading.Event()
        self.synced = threading.Event()
        self._thread = SupervisedThread(
            f"informer-{self.name}",
            self._run,
            name=f"informer-{self.name}",
            is_stopping=self._stop.is_set,
        )
        self._stream: Any = None
        self.relists = 0  # observable for tests: how often a full LIST happened

    # -- reading -------------------------------------------------------------------------
    def get(self, key: str) -> JSONDict | None:
        with self._lock:
            return self._store.get(key)

    def objects(self) -> list[JSONDict]:
        with self._lock:
            return list(self._store.values())

    def object_keys(self) -> list[str]:
        with self._lock:
            return [*self._store]

    def by_index(self, index: str, value: str) -> list[JSONDict]:
        with self._lock:
            return [self._store[k] for k in self._indices[index].get(value, ())]

    def __len__(self) -> int:
        with self._lock:
            return len(self._store)

    @property
    def has_synced(self) -> bool:
        return self.synced.is_set()

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    # -- writing (internal, and write-through of our own writes) --------------------------
    def _index_add(self, key: str, obj: JSONDict) -> None:
        for name, fn in self._indexers.items():
            for value in fn(obj):
                self._indices[name].setdefault(value, set()).add(key)

    def _index_remove(self, key: str, obj: JSONDict) -> None:
        for name, fn in self._indexers.items():
            for value in fn(obj):
                bucket = self._indices[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._indices[name][value]

    def upsert(self, obj: JSONDict, *, notify: bool = True) -> bool:
        """Put ``obj`` in the store unless the stored copy is as new or newer. Used for watch
        events and for the result of our own writes (so the next pass sees them at once; those
        pass ``notify=False``: the writer already knows, and the later watch event carrying the
        same resourceVersion is then ignored, so our own writes trigger no extra pass)."""
        key = key_of(obj)
        stored = self.get(key)
        if _not_newer(obj, stored):
            return False  # the echo of our own write, or an old event: not even transformed
        obj = self.transform(obj, stored)
        with self._lock:
            old = self._store.get(key)
            if _not_newer(obj, old):
                return False
            if old is not None:
                self._index_remove(key, old)
            self._store[key] = obj
            self._index_add(key, obj)
        if notify:
            self._notify(old, obj)
        return True

    def remove(self, obj: JSONDict) -> None:
        key = key_of(obj)
        with self._lock:
            old = self._store.pop(key, None)
            if old is None:
                return
            self._index_remove(key, old)
        self._notify(old, None)

    def _notify(self, old: JSONDict | None, new: JSONDict | None) -> None:
        for handler in self._handlers:
            try:
                handler(old, new)
            except PROPAGATE:
                raise
            except BaseException:  # a handler bug must not kill the watch thread
                log.exception("informer handler failed", extra={"informer": self.name})

    def _replace(self, items: list[JSONDict]) -> None:
        """Replace the store with ``items`` (already transformed)."""
        fresh = {key_of(i): i for i in items}
        with self._lock:
            previous = self._store
            self._store = {}
            self._indices = {n: {} for n in self._indexers}
            for key, obj in fresh.items():
                self._store[key] = obj
                self._index_add(key, obj)
        for key, gone in previous.items():
            if key not in fresh:
                self._notify(gone, None)
        for key, obj in fresh.items():
            old = previous.get(key)
            if old is None or _rv(old) != _rv(obj):
                self._notify(old, obj)

    # -- the loop ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def role(self) -> str:
        return self._thread.role

    def revive(self) -> bool:
        """Restart the watch thread if it ended without ``stop`` (it begins with a LIST)."""
        return self._thread.revive()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout)

    def _list(self) -> None:
        with self._lock:
            stored = self._store
        result = self.kube.list_all(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            limit=self.page,
            each=lambda item: self.transform(item, stored.get(key_of(item))),
        )
        self._replace(result.get("items") or [])
        self._rv = str((result.get("metadata") or {}).get("resourceVersion") or "")
        self.relists += 1
        self.synced.set()
        log.debug("informer listed", extra={"informer": self.name, "count": len(self)})

    def _events(self) -> Iterator[tuple[str, JSONDict]]:
        stream = self.kube.watch(
            self.resource,
            self.namespace,
            resource_version=self._rv,
            label_selector=self.label_selector,
            timeout_seconds=random.randint(*WATCH_TIMEOUT_RANGE),
        )
        self._stream = stream
        try:
            yield from stream
        finally:
            self._stream = None
            stream.close()

    def _watch_once(self) -> None:
        for kind, obj in self._events():
            if self._stop.is_set():
                return
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
            if kind in ("ADDED", "MODIFIED"):
                self.upsert(obj)
            elif kind == "DELETED":
                self.remove(obj)
            elif kind == "BOOKMARK":
                pass
            elif kind == "ERROR":
                code = obj.get("code")
                if code == 410:
                    raise Gone(str(obj.get("message") or "too old resource version"), code=410)
                raise ApiError(f"watch error: {obj.get('message')}", code=int(code or 0))
            if rv:
                self._rv = rv

    def _run(self) -> None:
        backoff = ERROR_BACKOFF_START
        need_list = True
        while not self._stop.is_set():
            opened = time.monotonic()
            try:
                if need_list:
                    self._list()
                    need_list = False
                self._watch_once()
                # A server that ends every watch at once must not make us spin: a stream that
                # lived less than a second costs a pause (growing), a longer one resets it.
                if time.monotonic() - opened < QUICK_WATCH:
                    self._stop.wait(backoff)
                    backoff = min(ERROR_BACKOFF_MAX, backoff * 2)
                else:
                    backoff = ERROR_BACKOFF_START
            except Gone:
                log.info("watch expired, re-listing", extra={"informer": self.name})
                if need_list or time.monotonic() - opened < QUICK_WATCH:
                    # expired again right after a fresh list: pause, growing, before the next
                    self._stop.wait(backoff)
                    backoff = min(GONE_BACKOFF_MAX, backoff * 2)
                need_list = True
            except ApiError as exc:
                if self._stop.is_set():
                    return
                # the server's Retry-After (429 under load) is a floor on our own pause
                pause = max(backoff, exc.retry_after or 0.0)
                log.warning(
                    "watch failed, retrying",
                    extra={"informer": self.name, "error": str(exc), "backoff": pause},
                )
                # A resumed watch replays from our resourceVersion; if that is gone, the server
                # answers 410 and we re-list. Repeated errors → re-list too (cheap, safe).
                need_list = need_list or backoff >= ERROR_BACKOFF_MAX
                self._stop.wait(pause)
                backoff = min(ERROR_BACKOFF_MAX, backoff * 2)
            except PROPAGATE:
                raise
            except BaseException:  # a bug or a native panic: start over from a fresh LIST
                log.exception("informer crashed, re-listing", extra={"informer": self.name})
                need_list = True
                self._stop.wait(backoff)
                backoff = min(ERROR_BACKOFF_MAX, backoff * 2)
