"""What the kubelet writes to the API server for a pod it runs: the pod's status (through the
status subresource), its containers' logs and the termination message it reports. The kubelet
and its executors share one ``PodWriter``; the documents themselves are ``podstatus``'s (pure).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kubesim.errors import ApiError
from kubesim.localexec import MAX_TERMINATION_MESSAGE, log_tail
from kubesim.podrun import (
    PODS,
    Run,
    run_container_id,
    run_init_containers,
    waiting_init_state,
)
from kubesim.podstatus import init_container_status, pod_status
from kubesim.timestamps import now_rfc3339

if TYPE_CHECKING:
    from kubesim.store import Store


class PodWriter:
    """Writes pod status and logs for the kubelet; ``report_init`` says whether init containers
    run (and so appear in ``initContainerStatuses``)."""

    def __init__(self, store: Store, *, report_init: bool) -> None:
        self.store = store
        self.report_init = report_init

    def write_running(self, run: Run) -> None:
        self.write_status(run, "Running", {"running": {"startedAt": run.container_started_at}})

    def write_status(self, run: Run, phase: str, state: dict[str, Any]) -> None:
        """Write ``run.pod``'s status: ``phase``, the app containers in ``state``; a pod that
        is gone is not an error (its run outlived it)."""
        now = now_rfc3339()
        containers = (run.pod.get("spec") or {}).get("containers") or []
        inits = run_init_containers(run) if self.report_init else []
        init_statuses = [
            init_container_status(
                c,
                run.init_states.get(str(c.get("name", "")), waiting_init_state()),
                restarts=run.init_restarts.get(str(c.get("name", "")), 0),
                last_state=run.init_last.get(str(c.get("name", ""))),
                container_id=f"{run_container_id(run)}-init{i}",
            )
            for i, c in enumerate(inits)
        ]
        run.pod["status"] = pod_status(
            containers,
            phase=phase,
            start_time=run.started_at,
            state=state,
            # the app container's own restarts: those caused by init containers are theirs
            restarts=run.restarts - sum(run.init_restarts.values()),
            last_state=run.last_state,
            container_id=run_container_id(run),
            now=now,
            init_statuses=init_statuses if inits else None,
        )
        # the status just built is the Store's from here (``run.pod["status"]`` is replaced,
        # never changed in place); the rest of the pod is shared, read only
        self.store.write_status(PODS, run.pod, run.pod["status"], namespace=run.key[0])

    def set_log(
        self,
        run: Run,
        text: str,
        *,
        container: str | None = None,
        append: bool = False,
    ) -> bool:
        """Write one container's log (the pod's default container when None); False when the
        pod is gone (a run outliving its pod keeps draining its process, writing nothing)."""
        try:
            self.store.set_pod_log(run.key[0], run.name, text, container=container, append=append)
        except ApiError:
            return False
        return True

    def termination_message(
        self, run: Run, container: Mapping[str, Any], exit_code: int, message: str
    ) -> str:
        """``container``'s termination message as the kubelet reports it: at most 4 KiB, and
        with ``FallbackToLogsOnError`` a failed run's empty message is its log's tail."""
        message = message.encode()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "ignore")
        policy = container.get("terminationMessagePolicy")
        if not message and exit_code != 0 and policy == "FallbackToLogsOnError":
            name = str(container.get("name", ""))
            with contextlib.suppress(ApiError):
                message = log_tail(self.store.get_pod_log(run.key[0], run.name, container=name))
        return message
