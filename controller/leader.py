"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's rules.

Every replica runs an elector; only the holder of the Lease reconciles. Timings follow client-go
(lease 15 s, renew deadline 10 s, retry period 2 s) and are settings so tests can shorten them.

Rules (what keeps two leaders from acting at once):
- A candidate takes the Lease only when it is free (no holder) or expired. Expiry is judged by
  OUR clock from the moment we last saw the record change (client-go's "observed time"), never
  by comparing the holder's timestamps with our clock, so clock skew between nodes cannot cause
  a steal.
- Every write is a PUT carrying the resourceVersion we read; a concurrent writer makes it fail
  with Conflict, so of two candidates exactly one wins.
- The leader renews every retry period; if it cannot renew within the renew deadline (shorter
  than the lease duration) it stops leading before anyone else may take over.
- On shutdown the leader releases the Lease (empty holder, duration 1 s) so a peer takes over
  in about one retry period instead of waiting out the lease.
Work done after losing the Lease is still safe: Job names are deterministic, so a late create
by the old leader meets AlreadyExists and a later pass adopts it.

The elector is a thread boundary (controller.supervisor): an attempt that raises anything but
SystemExit/KeyboardInterrupt/GeneratorExit (an API error, a bug, a native panic) is a failed
attempt, logged, and the loop goes on renewing; a failure while starting to lead steps down
(``on_stopped``) and tries again. Should the thread end anyway, the ``finally`` has stopped
leading first, so the supervisor can start ``run`` again without two terms.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from controller.kube import AlreadyExists, ApiError, Conflict, NotFound
from controller.supervisor import PROPAGATE

log = logging.getLogger(__name__)

JSONDict = dict[str, Any]


class LeaseApi(Protocol):
    """What the elector needs of the API (controller.kube.Kube adapts to it in runner)."""

    def get_lease(self, namespace: str, name: str) -> JSONDict: ...  # raises NotFound
    def create_lease(self, namespace: str, body: JSONDict) -> JSONDict: ...
    def replace_lease(self, namespace: str, name: str, body: JSONDict) -> JSONDict: ...


@dataclass(frozen=True)
class LeaderTimings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs lease_duration > renew_deadline > retry_period > 0"
            )


def micro_time(ts: float) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Runs in its own thread (``run``); calls ``on_started`` / ``on_stopped`` from it."""

    def __init__(
        self,
        api: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        timings: LeaderTimings = LeaderTimings(),
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings
        self.on_started = on_started
        self.on_stopped = on_stopped
        self._clock = clock
        self._wall = wall_clock
        self._stop = threading.Event()
        self._leading = threading.Event()
        self._observed: JSONDict | None = None  # spec of the record we last saw
        self._observed_rv: str = ""
        self._observed_at = 0.0  # our clock when that record last changed
        self._last_renew = 0.0

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def is_stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()

    # -- one attempt ---------------------------------------------------------------------
    def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew. True when we hold the Lease after it."""
        now = self._clock()
        stamp = micro_time(self._wall())
        desired: JSONDict = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.timings.lease_duration)),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        }
        try:
            lease = self.api.get_lease(self.namespace, self.name)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": desired,
            }
            try:
                created = self.api.create_lease(self.namespace, body)
            except (AlreadyExists, Conflict):
                return False
            self._remember(created, now)
            return True

        spec = dict(lease.get("spec") or {})
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        if spec != self._observed or rv != self._observed_rv:
            self._observed, self._observed_rv, self._observed_at = spec, rv, now
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or self.timings.lease_duration)
        held_by_other = holder not in ("", self.identity)
        if held_by_other and self._observed_at + duration > now:
            return False  # someone else holds a live lease

        if holder == self.identity:
            desired["acquireTime"] = spec.get("acquireTime") or stamp
            desired["leaseTransitions"] = spec.get("leaseTransitions") or 0
        else:
            desired["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        body = dict(lease)
        body["spec"] = desired
        try:
            updated = self.api.replace_lease(self.namespace, self.name, body)
        except (Conflict, NotFound):
            return False
        self._remember(updated, now)
        return True

    def _remember(self, lease: JSONDict, now: float) -> None:
        self._observed = dict(lease.get("spec") or {})
        self._observed_rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        self._observed_at = now
        self._last_renew = now

    def release(self) -> None:
        """Give the Lease up (only if we still hold it)."""
        try:
            lease = self.api.get_lease(self.namespace, self.name)
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(
                holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(self._wall())
            )
            body = dict(lease)
            body["spec"] = spec
            self.api.replace_lease(self.namespace, self.name, body)
            log.info("released the leader lease", extra={"lease": self.name})
        except ApiError as exc:
            log.warning("could not release the leader lease", extra={"error": str(exc)})
        except PROPAGATE:
            raise
        except BaseException:  # shutting down: a failed release costs a lease's wait, no more
            log.exception("could not release the leader lease")

    def _attempt(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except ApiError as exc:
            log.warning("leader election request failed", extra={"error": str(exc)})
            return False
        except PROPAGATE:
            raise
        except BaseException:  # a bug or a native panic: a failed attempt, not a dead elector
            log.exception("leader election attempt crashed", extra={"identity": self.identity})
            return False

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        """Acquire, lead until the Lease is lost or stop() is called, then try again."""
        t = self.timings
        while not self._stop.is_set():
            if not self._attempt():
                self._stop.wait(t.retry_period)
                continue
            log.info("became leader", extra={"identity": self.identity, "lease": self.name})
            self._leading.set()
            failed = False
            try:
                self.on_started()
                while not self._stop.wait(t.retry_period):
                    if self._attempt():
                        continue
                    if self._clock() - self._last_renew >= t.renew_deadline:
                        log.warning("lost the leader lease", extra={"identity": self.identity})
                        break
            except PROPAGATE:
                raise
            except BaseException:  # starting to lead failed: step down, try again later
                log.exception("leading failed, stepping down", extra={"identity": self.identity})
                failed = True
            finally:
                self._leading.clear()
                self.on_stopped()
            if self._stop.is_set():
                self.release()
            elif failed:
                self._stop.wait(t.retry_period)
