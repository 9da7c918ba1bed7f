"""The TTL-after-finished controller: a finished Job with ``ttlSecondsAfterFinished`` is deleted
(background propagation, so its pods go too) once that many seconds have passed since it
finished; before that, a timer brings its key back."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError
from kubesim.jobcontrol import finish_time
from kubesim.resources import GVR
from kubesim.workqueue import Key, Timers

if TYPE_CHECKING:
    from kubesim.store import Store

JOBS = GVR("batch", "v1", "jobs")


def expire_finished(store: Store, timers: Timers, key: Key, job: dict[str, Any]) -> None:
    """The TTL-after-finished controller: delete a finished Job once its TTL has passed."""
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None:
        return
    finished_at = finish_time(job.get("status") or {})
    if finished_at is None:
        return
    wait = finished_at + float(ttl) - time.time()
    if wait > 0:
        timers.at(time.monotonic() + wait, key)
        return
    try:
        store.delete(JOBS, key[1], namespace=key[0], propagation="Background")
    except ApiError as exc:
        if exc.code != 404:
            raise
