"""One flow, live: a thread lists then watches the namespace's JobFlows (the watch API has no
field selector we can rely on everywhere, so other flows' events are dropped here) and hands
each new version of the flow to the event loop; the page gets them as server-sent events.

A watch that ends (the server's timeout) or breaks is resumed from the last resourceVersion; a
410 Gone starts again from a fresh list. A deleted flow ends the stream with a ``deleted`` event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from controller import kube as kube_mod
from jobflow import decoded

log = logging.getLogger(__name__)

WATCH_SECONDS: Final = 60  # one watch request's timeoutSeconds
RETRY_PAUSE: Final = 1.0  # seconds before a broken watch is opened again
KEEPALIVE: Final = 15.0  # seconds between SSE comments, so proxies keep the stream open


class FlowWatch:
    """Calls ``emit(kind, flow)`` from its thread for the flow's first and every new version
    (kind "flow"), or once with kind "deleted"; ``stop()`` ends it promptly."""

    def __init__(
        self,
        kube: kube_mod.Kube,
        namespace: str,
        name: str,
        emit: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self.kube, self.namespace, self.name, self.emit = kube, namespace, name, emit
        self._stop = threading.Event()
        self._stream: kube_mod.WatchStream | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"ui-watch-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

    def _list(self) -> str:
        listed = self.kube.list_all(
            kube_mod.JOBFLOWS, self.namespace, field_selector=f"metadata.name={self.name}"
        )
        mine = [i for i in listed["items"] if decoded.path(i, "metadata", "name") == self.name]
        if mine:
            self.emit("flow", mine[0])
        else:
            self.emit("deleted", {})
            self._stop.set()
        return str(decoded.path(listed, "metadata", "resourceVersion") or "")

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                    continue
                version = self._watch(version)
            except kube_mod.Gone:
                version = ""
            except kube_mod.ApiError as exc:
                log.debug("ui watch broken", extra={"flow": self.name, "error": str(exc)})
                self._stop.wait(RETRY_PAUSE)

    def _watch(self, version: str) -> str:
        stream = self.kube.watch(
            kube_mod.JOBFLOWS,
            self.namespace,
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
        )
        with self._lock:
            self._stream = stream
        if self._stop.is_set():
            stream.close()
        for kind, obj in stream:
            version = str(decoded.path(obj, "metadata", "resourceVersion") or version)
            if kind == "ERROR":
                if obj.get("code") == 410:
                    return ""
                continue
            if decoded.path(obj, "metadata", "name") != self.name:
                continue
            if kind == "DELETED":
                self.emit("deleted", {})
                self._stop.set()
                break
            if kind in ("ADDED", "MODIFIED"):
                self.emit("flow", obj)
        return version


async def sse(
    kube: kube_mod.Kube,
    namespace: str,
    name: str,
    render: Callable[[dict[str, Any]], dict[str, Any]],
) -> AsyncIterator[str]:
    """Server-sent events of the flow: ``event: flow`` with ``render(flow)`` as data, for the
    first and each new version; ``event: deleted`` when it goes."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    def emit(kind: str, flow: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, flow))

    watch = FlowWatch(kube, namespace, name, emit)
    watch.start()
    try:
        yield "retry: 2000\n\n"
        while True:
            try:
                kind, flow = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if kind == "deleted":
                yield "event: deleted\ndata: {}\n\n"
                return
            body = await asyncio.to_thread(render, flow)
            yield f"event: flow\ndata: {json.dumps(body)}\n\n"
    finally:
        watch.stop()
