"""Watches: resourceVersion replay from the Store's history, bookmarks, selector transitions,
Tables, WatchList (``sendInitialEvents``, the initial-events-end bookmark); one coroutine per
watch fed by one loop wake-up per burst of Store events, newline-terminated JSON events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from kubesim import selectors, tables
from kubesim.errors import ApiError, Cause, bad_request, invalid
from kubesim.eventlog import Event, WatchHandle
from kubesim.reads import ReadHandlers
from kubesim.resources import ResourceType
from kubesim.servercore import TABLE_CONTENT_TYPE, Route, WatchQueue, dumps
from kubesim.tables import ColumnDefinition, Getter

log = logging.getLogger(__name__)


DEFAULT_WATCH_TIMEOUT = 1800.0  # seconds; real servers pick 30-60 min when the client sets none


BOOKMARK_INTERVAL = 10.0  # seconds between bookmarks when the client allows them


INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchOptions:
    since: int | None  # None: the current state first (as ADDED events), then live events
    initial_events: bool  # sendInitialEvents=true: the initial events end with a bookmark
    bookmarks: bool
    timeout: float


def send_initial_events_causes(
    q: Mapping[str, str], send_initial: str, *, bookmarks: bool
) -> list[Cause]:
    """What upstream refuses in a watch that sets sendInitialEvents."""
    causes = []
    if q.get("resourceVersionMatch") != "NotOlderThan":
        causes.append(
            Cause(
                "FieldValueForbidden",
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to "
                "NotOlderThan",
            )
        )
    if send_initial == "true" and not bookmarks:
        causes.append(
            Cause(
                "FieldValueForbidden",
                "allowWatchBookmarks",
                "Forbidden: sendInitialEvents requires allowWatchBookmarks=true",
            )
        )
    return causes


class EncodedEvents:
    """The JSON lines of recent watch events of one resource as one API version shows them,
    shared by every watch that shows them so: an event is encoded once, not once per watcher.
    Keyed by the stored object's identity (kept alive with its line, so the id is not reused)
    and the event type; the oldest of ``size`` lines goes first. Used on the event loop only."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._lines: dict[tuple[int, str], tuple[dict[str, Any], bytes]] = {}

    def get(self, typ: str, obj: dict[str, Any]) -> bytes | None:
        hit = self._lines.get((id(obj), typ))
        return hit[1] if hit is not None and hit[0] is obj else None

    def put(self, typ: str, obj: dict[str, Any], line: bytes) -> None:
        if len(self._lines) >= self._size:
            del self._lines[next(iter(self._lines))]
        self._lines[(id(obj), typ)] = (obj, line)


class WatchEncoder:
    """Watch events as JSON lines: objects as the client's API version shows them (lines shared
    with the other watches through ``shared``), or as one-row Tables (column definitions in the
    first only) when the client asked for Tables."""

    def __init__(
        self,
        rt: ResourceType,
        present: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        as_table: bool,
        include: str,
        columns: tuple[list[ColumnDefinition], list[Getter]] | None = None,
        shared: EncodedEvents | None = None,
    ) -> None:
        self.rt = rt
        self.as_table = as_table
        self._columns = columns
        self._present = present
        self._include = include
        self._with_columns = True
        self._shared = None if as_table else shared

    def event(self, typ: str, obj: dict[str, Any]) -> bytes:
        if self._shared is not None:
            line = self._shared.get(typ, obj)
            if line is None:
                line = dumps({"type": typ, "object": self._present(obj)}) + b"\n"
                self._shared.put(typ, obj, line)
            return line
        out: dict[str, Any] = self._present(obj)
        if self.as_table and typ in ("ADDED", "MODIFIED", "DELETED"):
            assert self._columns is not None  # given with as_table
            out = tables.to_table(
                self._columns,
                [out],
                resource_version=out["metadata"].get("resourceVersion", ""),
                include_object=self._include,
                with_columns=self._with_columns,
            )
            self._with_columns = False
        return dumps({"type": typ, "object": out}) + b"\n"

    def bookmark(self, rv: int, *, end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if end:
            meta["annotations"] = {INITIAL_EVENTS_END: "true"}
        obj = {
            "kind": self.rt.kind,
            "apiVersion": self.rt.api_version,
            "metadata": meta,
        }
        return dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


class WatchHandlers(ReadHandlers):
    """Watches (see module docstring)."""

    async def _watch(self, request: web.Request, route: Route) -> web.StreamResponse:
        q = request.query
        match = self._watch_matcher(route, q)
        opts = self._watch_options(q)
        as_table = self._wants_table(request)
        encoder = WatchEncoder(
            route.client_type,  # what the client sees (the store is asked for route.rt)
            lambda obj: self._out(route, obj),
            as_table=as_table,
            include=q.get("includeObject", "Metadata"),
            columns=self._table_columns(route.client_type) if as_table else None,
            shared=self._encoded_events(route),
        )
        queue: WatchQueue = asyncio.Queue()
        self._watch_queues.add(queue)
        self._loop = asyncio.get_running_loop()
        initial, current_rv, handle, expired = self._open_watch(route, opts.since, queue)

        resp = web.StreamResponse(status=200)
        resp.headers["Content-Type"] = (
            TABLE_CONTENT_TYPE if encoder.as_table else "application/json"
        )
        resp.headers["Cache-Control"] = "no-cache, private"
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            if expired is not None:
                await resp.write(dumps({"type": "ERROR", "object": expired.status()}) + b"\n")
                await resp.write_eof()
                return resp
            buf = bytearray()
            for first in initial:
                item = self._translate(first, match)
                if item is not None:
                    buf += encoder.event(*item)
            if opts.initial_events:
                buf += encoder.bookmark(current_rv, end=True)
            if buf:
                await resp.write(bytes(buf))
            await self._stream(resp, queue, match, encoder, opts, last_rv=current_rv)
            with contextlib.suppress(ConnectionResetError):
                await resp.write_eof()
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._watch_queues.discard(queue)
            if handle is not None:
                handle.cancel()
        return resp

    def _encoded_events(self, route: Route) -> EncodedEvents | None:
        """The lines shared by the watches that show objects as ``route`` does (None for a
        converted view, events.k8s.io, whose objects are converted per watch)."""
        if route.view is not None:
            return None
        key = (route.rt.api_version, route.rt.kind)
        found = self._event_lines.get(key)
        if found is None:
            found = self._event_lines[key] = EncodedEvents()
        return found

    def _watch_matcher(
        self, route: Route, q: Mapping[str, str]
    ) -> Callable[[dict[str, Any] | None], bool]:
        """Whether an object is in the watch's selection (its selectors, and its name if any)."""
        lreqs = selectors.parse_label_selector(q.get("labelSelector"))
        freqs = selectors.parse_field_selector(self._field_selector(route, q))
        if route.name is not None:
            freqs = (
                *freqs,
                selectors.FieldRequirement(("metadata", "name"), False, route.name),
            )

        def match(o: dict[str, Any] | None) -> bool:
            return (
                o is not None
                and selectors.match_labels(lreqs, o)
                and selectors.match_fields(freqs, o)
            )

        return match

    def _watch_options(self, q: Mapping[str, str]) -> WatchOptions:
        send_initial = q.get("sendInitialEvents")
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        rv_param = q.get("resourceVersion", "")
        if send_initial is not None:
            causes = send_initial_events_causes(q, send_initial, bookmarks=bookmarks)
            if causes:
                raise invalid("ListOptions", "meta.k8s.io", "", causes)
        initial_events = send_initial == "true"
        since: int | None = None
        if not (initial_events or rv_param in ("", "0")):
            try:
                since = int(rv_param)
            except ValueError as exc:
                raise bad_request(f"invalid resource version: {rv_param!r}") from exc
        try:
            timeout = float(q.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        except ValueError:
            timeout = DEFAULT_WATCH_TIMEOUT
        if self.faults is not None:
            deadline = self.faults.watch_deadline()
            if deadline:
                timeout = min(timeout, float(deadline))
        return WatchOptions(
            since=since,
            initial_events=initial_events,
            bookmarks=bookmarks,
            timeout=timeout,
        )

    def _open_watch(
        self, route: Route, since: int | None, queue: WatchQueue
    ) -> tuple[list[Event], int, WatchHandle | None, ApiError | None]:
        """(initial events, their resourceVersion, the store's watch, None), or the 410 Expired
        to answer with when ``since`` is too old (or a fault says so)."""

        def on_event(ev: Event) -> None:
            self._deliver(queue, ev)

        current_rv = self.store.resource_version
        if since is not None and self.faults is not None and self.faults.force_expired():
            expired = ApiError(
                410,
                "Expired",
                f"too old resource version: {since} ({current_rv})",
                details={},
            )
            return [], current_rv, None, expired
        try:
            initial, current_rv, handle = self.store.watch(
                route.rt, namespace=route.namespace, since=since, callback=on_event
            )
        except ApiError as e:
            if e.code != 410:
                raise
            return [], current_rv, None, e
        return initial, current_rv, handle, None

    async def _stream(
        self,
        resp: web.StreamResponse,
        queue: WatchQueue,
        match: Callable[[dict[str, Any] | None], bool],
        encoder: WatchEncoder,
        opts: WatchOptions,
        *,
        last_rv: int,
    ) -> None:
        """Write live events until the timeout, the server's shutdown or the queue's end; with
        bookmarks, a BOOKMARK after every BOOKMARK_INTERVAL without one."""
        end_at = time.monotonic() + opts.timeout
        next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
        while not self.closing.is_set():
            now = time.monotonic()
            if now >= end_at:
                break
            wait = min(end_at, next_bookmark if opts.bookmarks else end_at) - now
            try:
                ev: Event | None = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.0))
            except TimeoutError:
                if opts.bookmarks and time.monotonic() >= next_bookmark:
                    await resp.write(encoder.bookmark(last_rv))
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
                continue
            if ev is None:
                break
            out, last_rv = self._encode_burst(queue, ev, match, encoder, last_rv=last_rv)
            if out:
                await resp.write(out)

    def _encode_burst(
        self,
        queue: WatchQueue,
        ev: Event,
        match: Callable[[dict[str, Any] | None], bool],
        encoder: WatchEncoder,
        *,
        last_rv: int,
    ) -> tuple[bytes, int]:
        """``ev`` and the events already queued behind it, as one write; the last
        resourceVersion seen."""
        out = bytearray()
        current: Event | None = ev
        while current is not None:
            last_rv = max(last_rv, current.rv)
            item = self._translate(current, match)
            if item is not None:
                out += encoder.event(*item)
            try:
                current = queue.get_nowait()
            except asyncio.QueueEmpty:
                current = None
        return bytes(out), last_rv

    @staticmethod
    def _translate(
        ev: Event, match: Callable[[dict[str, Any] | None], bool]
    ) -> tuple[str, dict[str, Any]] | None:
        """Apply selector transitions: entering the selection is ADDED, leaving it DELETED."""
        new_m = match(ev.obj)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if new_m else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if (new_m or match(ev.old)) else None
        old_m = match(ev.old)
        if new_m and old_m:
            return ("MODIFIED", ev.obj)
        if new_m:
            return ("ADDED", ev.obj)
        if old_m:
            return ("DELETED", ev.obj)
        return None
