"""Kubernetes Events on JobFlows (``kubectl describe jf`` shows them), written off the hot path.

Like client-go's event broadcaster, recording never blocks a reconcile: events go into a bounded
queue and one thread writes them as namespaced core/v1 Events whose involvedObject is the flow.
A full queue or a failed write drops the event (counted): events are a courtesy to humans, the
status is the record. The reconciler records a pass's events only after its status write
succeeded, so a pass that is retried does not announce the same transition twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from controller.kube import EVENTS, ApiError, Kube

log = logging.getLogger(__name__)

# Enough for a burst of thousands of step transitions; beyond that events are dropped.
QUEUE_SIZE = 10_000
COMPONENT = "zen-flow-controller"


def _now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(
        self,
        kube: Kube,
        *,
        on_drop: Callable[[], None] | None = None,
        host: str = "",
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.kube = kube
        self.on_drop = on_drop
        self.host = host
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self.written = 0

    def record(self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        with self._lock:
            self._seq += 1
            seq = self._seq
        now = _now_rfc3339()
        # client-go names events <object>.<unique hex>; time plus a counter is unique per process.
        name = f"{meta.get('name')}.{time.time_ns():x}{seq:x}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta.get("namespace")},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion"),
                "kind": obj.get("kind"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT, "host": self.host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host or COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped()

    def _dropped(self) -> None:
        if self.on_drop is not None:
            self.on_drop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what is queued (within ``timeout``), then end the thread."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            namespace = event["metadata"]["namespace"]
            try:
                self.kube.create(EVENTS, namespace, event)
                self.written += 1
            except ApiError as exc:
                self._dropped()
                log.debug("event not written", extra={"error": str(exc), "ns": namespace})
