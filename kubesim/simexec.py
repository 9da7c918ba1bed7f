"""``sim`` mode's executor: a container run is an outcome computed from ``kubesim.io/``
annotations (``simspec``), due after its duration; no process, no thread. Runs are counted per
(namespace, attempt key) across pods and Jobs, which is what ``kubesim.io/fail-attempts``
counts."""

from __future__ import annotations

import threading
import time

from kubesim.podrun import Run
from kubesim.podwrites import PodWriter
from kubesim.simspec import SimSpec
from kubesim.workqueue import Timers


class SimExecutor:
    """The kubelet's ``Executor`` for ``exec_mode="sim"``."""

    mode = "sim"
    runs_init_containers = False

    def __init__(self, writer: PodWriter, timers: Timers) -> None:
        self._writer = writer
        self._timers = timers
        self._lock = threading.Lock()
        self._attempts: dict[tuple[str, str], int] = {}  # (namespace, attempt key) -> runs

    def start(self, run: Run, sim: SimSpec) -> None:
        """Plan the run's outcome; a run that lasts is Running until its timer brings its key
        back (an instant one is settled by the caller's next pass)."""
        with self._lock:
            akey = (run.key[0], sim.attempt_key)
            attempt = self._attempts[akey] = self._attempts.get(akey, 0) + 1
        run.planned = sim.outcome(attempt)
        run.due = time.monotonic() + sim.duration
        if sim.log:
            self._writer.set_log(run, sim.log)
        if sim.duration > 0:
            self._writer.write_running(run)
            self._timers.at(run.due, run.key)

    def cancel(self, run: Run) -> None:
        with run.lock:
            run.cancelled = True

    def refuse_new(self) -> None:
        """Nothing to refuse: a simulated run starts no process."""

    def stop(self, timeout: float) -> None:
        """Nothing to wait for."""
