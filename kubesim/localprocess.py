"""``local`` mode's executor: a pod's init containers, then its first container, run as local
processes (one thread per pod, each process in its own session), their output streamed into the
container logs and their exit codes and termination messages reported (see RUNNER.md). What a
process is (argv, env, mounts) is ``localexec``'s, pure. This module owns the process threads:
``stop`` kills every process group and waits (bounded) for the threads, and a thread that
outlives the bound (a child left the process group holding the output pipe open) ends quietly.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError
from kubesim.localexec import (
    MAX_TERMINATION_MESSAGE,
    local_command,
    local_mounts,
)
from kubesim.podrun import (
    PVCS,
    Run,
    first_container_name,
    run_container_id,
    run_init_containers,
    waiting_init_state,
)
from kubesim.podstatus import (
    EXIT_START_ERROR,
    REASON_START_ERROR,
    Outcome,
    start_error,
    terminated_state,
)
from kubesim.podwrites import PodWriter
from kubesim.simspec import SimSpec
from kubesim.timestamps import now_rfc3339
from kubesim.workqueue import Key

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)


class LocalExecutor:
    """The kubelet's ``Executor`` for ``exec_mode="local"``: one thread per running pod."""

    mode = "local"
    runs_init_containers = True

    def __init__(
        self,
        store: Store,
        writer: PodWriter,
        *,
        work_dir: Path,
        on_exit: Callable[[Key], None],
    ) -> None:
        self.store = store
        self.work_dir = Path(work_dir)
        self._writer = writer
        self._on_exit = on_exit  # enqueues the run's key once its outcome is recorded
        self._lock = threading.Lock()  # guards _local and _stopping
        self._local: dict[threading.Thread, Run] = {}  # the process thread of each run
        self._stopping = False  # set once by refuse_new(); no process starts after it

    def start(self, run: Run, sim: SimSpec) -> None:
        """Start the run's thread: init containers, then the first app container."""
        run.due = None
        run.failed_init = None
        # a (re)started run's log starts empty
        self._writer.set_log(run, "", container=first_container_name(run))
        inits = run_init_containers(run)
        if inits:
            # as a pod whose init containers have not run yet: Pending, everything waiting
            run.init_states = {str(c.get("name", "")): waiting_init_state() for c in inits}
            self._writer.write_status(run, "Pending", waiting_init_state())
        else:
            self._writer.write_running(run)
        thread = threading.Thread(
            target=self._run_local,
            args=(run,),
            name=f"kubesim-pod-{run.name}",
            daemon=True,
        )
        with self._lock:
            if self._stopping:
                with run.lock:
                    run.cancelled = True  # stop() has taken its snapshot: start nothing new
                return
            self._local[thread] = run
            # started under the lock, so stop() never sees (and joins) an unstarted thread
            thread.start()

    def cancel(self, run: Run) -> None:
        """Kill the run's process group; a process not yet started never will be."""
        with run.lock:
            run.cancelled = True
            proc = run.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def refuse_new(self) -> None:
        with self._lock:
            self._stopping = True

    def stop(self, timeout: float) -> None:
        """Kill every process group and wait up to ``timeout`` seconds for the threads."""
        self.refuse_new()
        with self._lock:
            runs = list(self._local.values())
        for run in runs:
            self.cancel(run)
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._local)
        for t in threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        with self._lock:
            left = [t.name for t in self._local]
        if left:
            log.warning(
                "kubesim local runs still draining at stop",
                extra={"threads": left, "timeout": timeout},
            )

    def _run_local(self, run: Run) -> None:
        """Thread body: run the first container as a process and record its outcome."""
        namespace = run.key[0]
        workdir = self.work_dir / "pods" / f"{namespace}_{run.name}_{run.restarts}"
        try:
            try:
                outcome = self._execute(run, workdir)
            except Exception as exc:  # thread boundary: a runner bug must still finish the pod
                with self._lock:
                    stopping = self._stopping
                if stopping:
                    # the server is going away (its work dir may already be deleted): an
                    # error now is expected and nobody will read the outcome
                    log.debug(
                        "local run ended by shutdown",
                        extra={
                            "namespace": namespace,
                            "pod": run.name,
                            "error": repr(exc),
                        },
                    )
                else:
                    log.exception(
                        "local run failed",
                        extra={"namespace": namespace, "pod": run.name},
                    )
                outcome = Outcome(128, f"kubesim could not run the container: {exc}")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            with run.lock:
                run.outcome = outcome
                run.process = None
            self._on_exit(run.key)
        finally:
            with self._lock:
                self._local.pop(threading.current_thread(), None)

    def _claim_dir(self, namespace: str, claim: str) -> Path:
        """The host directory of a PersistentVolumeClaim (local mode): one per claim object, so
        a re-created claim of the same name starts empty."""
        try:
            uid = str(
                (self.store.get(PVCS, claim, namespace=namespace).get("metadata") or {}).get("uid")
                or ""
            )
        except ApiError:
            uid = ""  # no such claim: a kubelet would wait; local mode still gives a directory
        return self.work_dir / "volumes" / namespace / (f"{claim}-{uid}" if uid else claim)

    def _execute(self, run: Run, workdir: Path) -> Outcome:
        """Run the init containers in order, then the first app container, in one work dir
        (so emptyDir volumes are shared). An init container that fails (or a cancel) ends the
        run there: ``run.failed_init`` names it and its outcome is the run's."""
        containers = (run.pod.get("spec") or {}).get("containers") or [{}]
        workdir.mkdir(parents=True, exist_ok=True)
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "HOSTNAME": run.name,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        inits = run_init_containers(run)
        for i, init in enumerate(inits):
            name = str(init.get("name", ""))
            started = now_rfc3339()
            with run.lock:
                if run.cancelled:
                    return Outcome(137, "")
                run.init_states[name] = {"running": {"startedAt": started}}
            self._writer.write_status(run, "Pending", waiting_init_state())
            ran = self._exec_container(
                run,
                init,
                workdir,
                base_env,
                tfile=workdir / f"termination-log.init-{i}",
            )
            code = ran.exit_code
            message = self._writer.termination_message(run, init, code, ran.message)
            term = terminated_state(
                code,
                message,
                started_at=started,
                finished_at=now_rfc3339(),
                container_id=f"{run_container_id(run)}-init{i}",
                reason=ran.reason,
            )
            with run.lock:
                run.init_states[name] = {"terminated": term}
                if code != 0 or run.cancelled:
                    run.failed_init = name
                    return Outcome(code, message, ran.reason)
        run.container_started_at = now_rfc3339()
        if inits:
            with run.lock:
                if run.cancelled:
                    return Outcome(137, "")
            self._writer.write_running(run)
        return self._exec_container(
            run,
            containers[0],
            workdir,
            base_env,
            tfile=workdir / "termination-log",
            app=True,
        )

    def _exec_container(
        self,
        run: Run,
        container: Mapping[str, Any],
        workdir: Path,
        base_env: Mapping[str, str],
        *,
        tfile: Path,
        app: bool = False,
    ) -> Outcome:
        """One container as a process in its own session (killable by ``cancel``); its
        stdout+stderr stream into its own container log, which an init container's run starts
        afresh (the app container's was reset when the run started, so a restarted run does not
        show the previous output meanwhile). ``app`` is the first app container. The caller
        turns the raw message into the reported one (``PodWriter.termination_message``)."""
        namespace = run.key[0]
        name = str(container.get("name", ""))
        if not app:
            self._writer.set_log(run, "", container=name)
        tfile.touch()
        mounts = local_mounts(
            run.pod.get("spec") or {},
            container,
            claim_dir=lambda claim: self._claim_dir(namespace, claim),
            pod_dir=workdir,
        )
        argv, env = local_command(
            container, termination_file=str(tfile), extra_env=base_env, mounts=mounts
        )
        if not argv:
            # A kubelet would run the image's entrypoint; kubesim runs no images.
            return Outcome(
                EXIT_START_ERROR,
                "kubesim local mode runs the container's command and args and no image"
                " entrypoint; give the container a command",
                REASON_START_ERROR,
            )
        with run.lock:
            if run.cancelled:
                return Outcome(137, "")
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                return start_error(argv[0], exc)
            run.process = proc
        if proc.stdout is not None:
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            fd = proc.stdout.fileno()
            log_ok = True
            while True:
                chunk = os.read(fd, 65536)
                text = decoder.decode(chunk, final=not chunk)
                if text and log_ok:
                    # False: the pod is gone; keep draining so the process can exit
                    log_ok = self._writer.set_log(run, text, container=name, append=True)
                if not chunk:
                    break
            proc.stdout.close()
        code = proc.wait()
        with run.lock:
            run.process = None
        if code < 0:
            code = 128 - code  # killed by a signal: the shell convention the kubelet reports
        message = tfile.read_bytes()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "replace")
        return Outcome(code, message)
