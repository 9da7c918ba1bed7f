"""What the kubelet reports (pure): a container run's outcome, its terminated state, and the
pod status document (phase, conditions, container and init container statuses) kubesim's
kubelet side writes for Job pods and bare pods alike."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

WAITING_INIT = "PodInitializing"  # reason of a container waiting for init containers
LOCAL_IP = "127.0.0.1"
# A container the runtime could not start (local mode: a missing binary, no command): the kubelet
# reports terminated.reason StartError, exit code 128 and the runtime's error as the message.
REASON_START_ERROR = "StartError"
EXIT_START_ERROR = 128


class Outcome(NamedTuple):
    """How a container run ended: ``state.terminated``'s exitCode, message and reason (empty:
    the exit code's, Completed or Error)."""

    exit_code: int
    message: str
    reason: str = ""


def start_error(argv0: str, error: OSError) -> Outcome:
    """What the kubelet reports for a command that cannot be started, in runc's words (the
    end of its "failed to create containerd task: ... unable to start container process:"
    message, which is all that is about the container)."""
    if isinstance(error, FileNotFoundError) and "/" not in argv0:
        cause = "executable file not found in $PATH"
    elif isinstance(error, FileNotFoundError):
        cause = f"stat {argv0}: no such file or directory"
    else:
        cause = (error.strerror or str(error)).lower()
    return Outcome(
        EXIT_START_ERROR,
        f"unable to start container process: exec: {json.dumps(argv0)}: {cause}",
        REASON_START_ERROR,
    )


def terminated_state(
    exit_code: int,
    message: str,
    *,
    started_at: str,
    finished_at: str,
    container_id: str,
    reason: str = "",
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": reason or ("Completed" if exit_code == 0 else "Error"),
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": container_id,
    }
    if message:
        state["message"] = message
    return state


def pod_status(
    containers: list[Mapping[str, Any]],
    *,
    phase: str,
    start_time: str,
    state: Mapping[str, Any],
    restarts: int,
    last_state: Mapping[str, Any] | None,
    container_id: str,
    now: str,
    init_statuses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A pod status as the kubelet reports it; every container reports ``state`` (only the first
    really runs). ``init_statuses`` (local mode, pods with init containers) become
    ``initContainerStatuses``; while one of them has not completed, the pod is not Initialized
    and the app containers wait with reason PodInitializing (``state`` says so)."""
    running = "running" in state
    ready = "True" if running else "False"
    incomplete = [
        str(s.get("name", ""))
        for s in init_statuses or []
        if ((s.get("state") or {}).get("terminated") or {}).get("exitCode", -1) != 0
    ]
    initialized: dict[str, str] = {}
    if running:
        not_ready: dict[str, str] = {}
    elif incomplete:
        names = " ".join(str(c.get("name", "")) for c in containers)
        not_ready = {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{names}]",
        }
        initialized = {
            "status": "False",
            "reason": "ContainersNotInitialized",
            "message": f"containers with incomplete status: [{' '.join(incomplete)}]",
        }
    elif phase in ("Succeeded", "Failed"):
        not_ready = {"reason": "PodCompleted"}
    else:
        not_ready = {"reason": "ContainersNotReady"}
    conditions = [
        {
            "type": "PodReadyToStartContainers",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": start_time,
        },
        {
            "type": "Initialized",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": start_time,
            **not_ready,
            **initialized,
        },
        {
            "type": "Ready",
            "status": ready,
            "lastProbeTime": None,
            "lastTransitionTime": now,
            **not_ready,
        },
        {
            "type": "ContainersReady",
            "status": ready,
            "lastProbeTime": None,
            "lastTransitionTime": now,
            **not_ready,
        },
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": start_time,
        },
    ]
    statuses = []
    for c in containers:
        image = str(c.get("image", ""))
        entry = {
            "name": str(c.get("name", "")),
            "image": image,
            "imageID": f"kubesim://{image}",
            "containerID": container_id,
            "ready": running,
            "started": running,
            "restartCount": restarts,
            "state": dict(state),
            "lastState": dict(last_state or {}),
        }
        if ((state.get("waiting") or {}).get("reason")) == WAITING_INIT:
            entry["imageID"] = ""  # never started: no image pulled, no container
            del entry["containerID"]
        statuses.append(entry)
    out: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": LOCAL_IP,
        "hostIPs": [{"ip": LOCAL_IP}],
        "podIP": LOCAL_IP,
        "podIPs": [{"ip": LOCAL_IP}],
        "startTime": start_time,
        "containerStatuses": statuses,
        "qosClass": "BestEffort",
    }
    if init_statuses is not None:
        out["initContainerStatuses"] = [dict(s) for s in init_statuses]
    return out


def init_container_status(
    container: Mapping[str, Any],
    state: Mapping[str, Any],
    *,
    restarts: int,
    last_state: Mapping[str, Any] | None,
    container_id: str,
) -> dict[str, Any]:
    """One entry of ``initContainerStatuses``: ready once it completed with exit code 0."""
    image = str(container.get("image", ""))
    terminated = state.get("terminated") or {}
    entry: dict[str, Any] = {
        "name": str(container.get("name", "")),
        "image": image,
        "imageID": f"kubesim://{image}",
        "ready": terminated.get("exitCode", -1) == 0,
        "started": "running" in state,
        "restartCount": restarts,
        "state": dict(state),
        "lastState": dict(last_state or {}),
    }
    if (state.get("waiting") or {}).get("reason") == WAITING_INIT:
        entry["imageID"] = ""
    else:
        entry["containerID"] = container_id
    return entry
