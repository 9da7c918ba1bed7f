"""One pod's run on kubesim's node, and the interface of what runs its containers.

A ``Run`` is the kubelet's record of one active pod: the pod as the kubelet last wrote it and
its current container run (simulated: a planned outcome and when it is due; local: the process
and the outcome its thread recorded). The ``Executor`` protocol is the kubelet's strategy for
running a container (``simexec.SimExecutor`` or ``localprocess.LocalExecutor``). Runs are the
kubelet's and its executor's alone: the Job controller knows its pods by uid.

Locking: ``Run.lock`` guards the fields a process thread shares with the workers
(``outcome``, ``process``, ``cancelled``, ``init_states`` while init containers run);
it is never held while calling the Store. Every other field is written only by the worker that
owns the run's key, or by the process thread before its outcome is recorded (see ``kubelet``).
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubesim.podstatus import WAITING_INIT, Outcome
from kubesim.resources import GVR
from kubesim.simspec import SimSpec
from kubesim.workqueue import Key

PODS = GVR("", "v1", "pods")
PVCS = GVR("", "v1", "persistentvolumeclaims")
NODE_NAME = "kubesim-node"


@dataclass(eq=False)
class Run:
    """One active pod and its current container run."""

    key: Key  # the queue key that reconciles this pod: its Job's, or the bare pod's own
    job_uid: str  # the owning Job's uid ("" for a bare pod)
    pod: dict[str, Any]  # the pod as last written by us (metadata, spec, status)
    index: int | None
    started_at: str = ""
    container_started_at: str = ""
    restarts: int = 0
    last_state: dict[str, Any] | None = None
    due: float | None = None  # sim: monotonic time the container finishes
    planned: Outcome | None = None  # sim: outcome decided at start
    outcome: Outcome | None = None  # local: set by the process thread
    process: subprocess.Popen[bytes] | None = None
    cancelled: bool = False  # killed by us or by a deletion; no process may start after this
    # local mode, pods with init containers: state of each init container in the current run
    # (name -> state), restarts caused by each, and the one whose failure is ``outcome``
    init_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_restarts: dict[str, int] = field(default_factory=dict)
    init_last: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_init: str | None = None
    restart_due: float | None = None  # bare pods: monotonic time of the back-off's restart
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    def is_ready(self, now_mono: float) -> bool:
        """The pod counts as ready (a local run, or a sim run not yet due)."""
        return self.due is None or self.due > now_mono


class Executor(Protocol):
    """How the kubelet runs a container: ``sim`` (an outcome from annotations) or ``local``
    (processes). ``start`` begins one container run of ``run`` (the kubelet has set
    ``container_started_at`` and cleared ``outcome``); its end is recorded in ``run.outcome``
    (or planned in ``run.planned``/``run.due``) and the run's key enqueued."""

    mode: str  # "sim" or "local"
    runs_init_containers: bool  # init containers run (and are reported) in this mode

    def start(self, run: Run, sim: SimSpec) -> None: ...

    def cancel(self, run: Run) -> None:
        """Kill the run's process; a process not yet started never will be."""

    def refuse_new(self) -> None:
        """Start no process from now on (the node is shutting down)."""

    def stop(self, timeout: float) -> None:
        """Kill what still runs and wait up to ``timeout`` seconds for it."""


def run_init_containers(run: Run) -> list[Mapping[str, Any]]:
    """The init containers local mode runs (sidecars, restartPolicy Always, are not emulated)."""
    inits = (run.pod.get("spec") or {}).get("initContainers") or []
    return [c for c in inits if isinstance(c, Mapping) and c.get("restartPolicy") != "Always"]


def waiting_init_state() -> dict[str, Any]:
    return {"waiting": {"reason": WAITING_INIT}}


def run_container_id(run: Run) -> str:
    return f"kubesim://{run.uid[:8]}-{run.restarts}"


def first_container_name(run: Run) -> str:
    containers = (run.pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))
