"""Kubernetes Events on JobFlows (``kubectl describe jf`` shows them), written off the hot path.

Like client-go's event broadcaster, recording never blocks a reconcile: ``record`` only files the
event and one thread writes namespaced core/v1 Events whose involvedObject is the flow.

Aggregation (client-go's EventCorrelator does a similar job): events for the same flow with the
same type and reason that arrive within ``window`` seconds become ONE Event whose message lists
each occurrence in order ("step a succeeded; step c succeeded"). Nothing is lost, `kubectl
describe` stays readable, and a flow whose four parallel steps finish together costs one Event
write instead of four (Event writes were the largest share of API writes per step before this).

A full backlog or a failed write drops the event (counted): events are a courtesy to humans, the
status is the record. The reconciler records a pass's events only after its status write
succeeded, so a pass that is retried does not announce the same transition twice.

The writer thread is a boundary (controller.supervisor): a write that raises anything but
SystemExit/KeyboardInterrupt/GeneratorExit drops that event; a thread that ends anyway is
restarted by the supervisor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.kube import EVENTS, ApiError, Kube
from controller.supervisor import PROPAGATE, SupervisedThread
from jobflow import decoded

log = logging.getLogger(__name__)

# Distinct (flow, type, reason) groups waiting to be written; beyond this, new ones are dropped.
MAX_PENDING = 10_000
# How long occurrences of one (flow, type, reason) are gathered into one Event.
DEFAULT_WINDOW = 1.0
# The API server rejects longer messages from well-behaved clients (client-go truncates at 1 KiB).
MAX_MESSAGE = 1024
COMPONENT = "zen-flow-controller"

EventWriter = Callable[[str, dict[str, Any]], None]  # (namespace, Event body) -> None


def _now_rfc3339() -> str:
    return decoded.format_time(datetime.now(UTC))


def join_messages(messages: list[str]) -> str:
    text = "; ".join(messages)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


@dataclass
class _Pending:
    involved: dict[str, Any]
    type_: str
    reason: str
    due: float
    messages: list[str] = field(default_factory=list)


class EventRecorder:
    def __init__(
        self,
        kube: Kube | None = None,
        *,
        write: EventWriter | None = None,
        on_drop: Callable[[], None] | None = None,
        host: str = "",
        window: float = DEFAULT_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if write is None:
            if kube is None:
                raise ValueError("EventRecorder needs a Kube client or a write function")
            client = kube

            def write(namespace: str, body: dict[str, Any]) -> None:
                client.create(EVENTS, namespace, body)

        self._write = write
        self.on_drop = on_drop
        self.host = host
        self.window = window
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, ...], _Pending] = {}
        self._stopping = False
        self._thread: SupervisedThread | None = None
        self._seq = 0
        self.written = 0

    def record(self, obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        key = (
            str(meta.get("namespace")),
            str(meta.get("name")),
            str(meta.get("uid")),
            type_,
            reason,
        )
        with self._cond:
            entry = self._pending.get(key)
            if entry is None:
                if len(self._pending) >= MAX_PENDING:
                    self._dropped()
                    return
                entry = _Pending(
                    involved={
                        "apiVersion": obj.get("apiVersion"),
                        "kind": obj.get("kind"),
                        "name": meta.get("name"),
                        "namespace": meta.get("namespace"),
                        "uid": meta.get("uid"),
                        "resourceVersion": meta.get("resourceVersion"),
                    },
                    type_=type_,
                    reason=reason,
                    due=self._clock() + self.window,
                )
                self._pending[key] = entry
                self._cond.notify()
            entry.messages.append(message)

    def _dropped(self) -> None:
        if self.on_drop is not None:
            self.on_drop()

    def _body(self, entry: _Pending) -> dict[str, Any]:
        now = _now_rfc3339()
        self._seq += 1
        # client-go names events <object>.<unique hex>; time plus a counter is unique per process.
        name = f"{entry.involved['name']}.{time.time_ns():x}{self._seq:x}"
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": entry.involved["namespace"]},
            "involvedObject": entry.involved,
            "type": entry.type_,
            "reason": entry.reason,
            "message": join_messages(entry.messages),
            "source": {"component": COMPONENT, "host": self.host},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.host or COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    def take_due(self, *, flush: bool = False) -> list[_Pending]:
        """Remove and return the groups whose window has closed (all of them with ``flush``)."""
        now = self._clock()
        with self._cond:
            due = [k for k, e in self._pending.items() if flush or e.due <= now]
            return [self._pending.pop(k) for k in due]

    def write_due(self, *, flush: bool = False) -> int:
        """Write the due groups now; returns how many Events were written."""
        written = 0
        for entry in self.take_due(flush=flush):
            namespace = str(entry.involved["namespace"])
            try:
                self._write(namespace, self._body(entry))
                written += 1
            except ApiError as exc:
                self._dropped()
                log.debug("event not written", extra={"error": str(exc), "ns": namespace})
            except PROPAGATE:
                raise
            except BaseException:  # a bug or a native panic: lose this event, not the writer
                self._dropped()
                log.exception("event not written", extra={"ns": namespace})
        self.written += written
        return written

    # -- the thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = SupervisedThread(
            "event-writer", self._run, name="event-writer", is_stopping=lambda: self._stopping
        )
        self._thread.start()

    @property
    def role(self) -> str:
        return "event-writer"

    def revive(self) -> bool:
        """Restart the writer thread if it ended without ``stop``."""
        thread = self._thread
        return thread is not None and thread.revive()

    def stop(self, timeout: float = 2.0) -> None:
        """Write everything still gathered (within ``timeout``), then end the thread."""
        if self._thread is None:
            return
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping:
                    if self._pending:
                        wait = min(e.due for e in self._pending.values()) - self._clock()
                        if wait <= 0:
                            break
                    else:
                        wait = None
                    self._cond.wait(wait)
                stopping = self._stopping
            self.write_due(flush=stopping)
            if stopping:
                return
