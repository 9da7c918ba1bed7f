"""The Job runner: what kubesim runs besides the API server, wired together. It composes the
Job controller (``jobcontroller``), the kubelet (``kubelet``) with its executor (``simexec`` or
``localprocess``: the ``exec_mode``) and the TTL-after-finished controller (``ttl``, called by
the Job controller), and owns what they share: the Store subscriptions, one work queue of keys
(a Job's ``(namespace, name)`` or a bare pod's ``(namespace, "pod/" + name)``), the timer heap,
the worker threads and the lifecycle (``start``, ``stop``, ``idle``).

Two execution modes (chosen per server), see RUNNER.md:

* ``sim`` (default): the outcome of each container run comes from ``kubesim.io/`` annotations;
  an instant Job costs three Store writes (pod create, pod status, Job status) and no thread;
  longer runs sit in the timer heap.
* ``local`` (opt-in): init containers, then the first container's command, run as local
  processes, one thread per running pod.

Invariants: Store events only enqueue keys; a key is never worked on by two workers at once
(the queue has client-go's dirty/processing sets); nothing holds a component's lock while
calling the Store (Store subscribers run under the Store's own lock).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim.jobcontroller import JOBS as JOBS
from kubesim.jobcontroller import JobController
from kubesim.kubelet import POD_KEY_PREFIX, Kubelet

# re-exported: callers outside kubesim's tests import these from kubesim.runner
from kubesim.localexec import expand_vars as expand_vars
from kubesim.localexec import local_command as local_command
from kubesim.localexec import local_mounts as local_mounts
from kubesim.localprocess import LocalExecutor
from kubesim.podrun import PODS as PODS
from kubesim.podrun import Executor
from kubesim.podwrites import PodWriter
from kubesim.resources import GVR
from kubesim.simexec import SimExecutor
from kubesim.workqueue import Timers, WorkQueue

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

LOCAL_STOP_TIMEOUT = 5.0  # seconds stop() waits for local-mode process threads
REQUEUE_AFTER_ERROR = 1.0  # seconds before a reconcile that raised is retried
EXEC_MODES = ("sim", "local")


class JobRunner:
    """The Job controller, the kubelet and their workers for one Store (see module docstring).
    ``jobs`` and ``kubelet`` are the components; they meet through the Store and the kubelet's
    pod interface, not through this object."""

    def __init__(
        self,
        store: Store,
        *,
        exec_mode: str = "sim",
        work_dir: Path,
        workers: int = 2,
    ) -> None:
        if exec_mode not in EXEC_MODES:
            raise ValueError(f"exec_mode must be 'sim' or 'local', got {exec_mode!r}")
        self.store = store
        self.exec_mode = exec_mode
        self.work_dir = Path(work_dir)
        self._n_workers = max(int(workers), 1)
        self._queue = WorkQueue()
        self._timers = Timers(self._queue.add)
        writer = PodWriter(store, report_init=exec_mode == "local")
        executor: Executor
        if exec_mode == "local":
            executor = LocalExecutor(store, writer, work_dir=self.work_dir, on_exit=self._queue.add)
        else:
            executor = SimExecutor(writer, self._timers)
        self.kubelet = Kubelet(
            store, executor, writer, timers=self._timers, enqueue=self._queue.add
        )
        self.jobs = JobController(store, self.kubelet, timers=self._timers)
        self._threads: list[threading.Thread] = []
        self._unsubscribe: list[Callable[[], None]] = []
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._unsubscribe = [
            self.store.subscribe(self._on_job_event),
            self.store.subscribe(self.kubelet.on_event),
        ]
        self._timers.start()
        for i in range(self._n_workers):
            t = threading.Thread(target=self._work, name=f"kubesim-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for key in self.jobs.job_keys():
            self._queue.add(key)
        self.kubelet.resync()

    def stop(self) -> None:
        """Stop reconciling, kill every local process and wait (bounded) for its thread.

        The caller may delete the work directory right after this returns, so a pod thread
        still running then could only fail noisily; it is made quiet instead (the executor
        refuses new processes first and knows it is stopping). A thread can outlive the bound
        only if its process left a child outside the process group holding the output pipe
        open.
        """
        self.kubelet.executor.refuse_new()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        self._queue.close()
        self._timers.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        self.kubelet.stop(LOCAL_STOP_TIMEOUT)

    def idle(self) -> bool:
        """True when no reconcile is queued or running (timers may still be pending)."""
        return self._queue.idle()

    # -- events and workers ------------------------------------------------------------------

    def _on_job_event(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        key = self.jobs.on_event(event_type, gvr, obj)
        if key is not None:
            self._queue.add(key)

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            try:
                if key[1].startswith(POD_KEY_PREFIX):
                    self.kubelet.sync_bare_pod(key)
                else:
                    self.jobs.sync(key)
            except Exception:  # thread boundary: log once, retry the key later
                log.exception("job reconcile failed", extra={"namespace": key[0], "job": key[1]})
                self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            finally:
                self._queue.done(key)


__all__ = ["JOBS", "PODS", "JobRunner", "expand_vars", "local_command", "local_mounts"]
