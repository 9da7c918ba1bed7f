"""The Job runner: kubesim's Job controller and kubelet in one.

For every batch/v1 Job in the Store it creates pods named ``<job>-<5 chars>`` (labels
``job-name``, ``controller-uid``, ``batch.kubernetes.io/job-name``,
``batch.kubernetes.io/controller-uid`` plus the template's; a controller ownerReference to the Job),
"runs" them and writes pod and Job status the way Kubernetes 1.31+ does (``startTime``,
``active``/``succeeded``/``failed``/``ready``, conditions ``SuccessCriteriaMet`` + ``Complete``
or ``FailureTarget`` + ``Failed`` with reasons ``CompletionsReached``, ``BackoffLimitExceeded``,
``DeadlineExceeded``; ``Suspended`` with ``JobSuspended``/``JobResumed``; ``completionTime``).

Two execution modes (chosen per server):

* ``sim`` (default): the outcome of each container run comes from annotations on the Job or its
  pod template (``kubesim.io/duration``, ``exit-code``, ``fail-attempts``, ``attempt-key``,
  ``log``, ``termination-message``...; see RUNNER.md). A run with duration 0 finishes inside the
  same reconcile that created its pod, so an instant Job costs three Store writes (pod create,
  pod status, Job status) and no thread; longer runs sit in one timer heap.
* ``local`` (opt-in): the init containers, then the first container's command + args run as
  local processes (each in its own session, cwd a per-pod temp dir shared by them, env from
  ``env[].value``), stdout+stderr of each stream into its own container log, the exit code
  becomes ``state.terminated.exitCode`` and what the process writes to its termination message
  file becomes ``state.terminated.message``; init containers report ``initContainerStatuses``
  and one that fails ends the run there. One thread per running pod.

Design and invariants:

* Level-triggered: Store events only enqueue a key ``(namespace, job name)``; a small pool of
  workers reconciles keys, and one key is never reconciled by two workers at once (the queue has
  the dirty/processing sets of client-go's workqueue). Timers and process threads never touch
  Job state; they record an outcome and enqueue the key.
* ``self._lock`` guards the in-memory run bookkeeping and is never held while calling the Store,
  because Store subscribers run under the Store's own lock (a lock-order inversion otherwise).
* Counts (succeeded/failed) live in memory per Job uid, seeded from ``job.status`` when the runner
  first meets a Job, so a restarted server continues from what it had written.
* Pods the runner deletes are forgotten *before* the delete call, so their DELETED event is not
  mistaken for a pod deleted by a user (which counts as a failure and gets a replacement, as in
  Kubernetes with pod-failure tracking).
* Deleting a pod or its Job kills the local process at once (SIGKILL to its process group);
  every process start checks ``run.cancelled`` under ``self._lock``, so nothing starts after.
* The pod thread writes pod status only before its outcome is recorded (init container
  transitions); workers write it only before the thread starts or after the outcome, so the
  two never race on ``run.pod``.

Simplifications: no Events are written; pods go Running without a Pending phase; pod
re-creation after a failure has no exponential delay unless ``kubesim.io/pod-backoff`` asks for
one (Kubernetes waits 10 s, 20 s, ...); only the first app container is run (others mirror it);
podFailurePolicy, successPolicy, backoffLimitPerIndex and podReplacementPolicy are ignored.
"""

from __future__ import annotations

import codecs
import contextlib
import heapq
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kubesim.errors import ApiError
from kubesim.resources import GVR
from kubesim.timestamps import now_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from kubesim.store import Store

log = logging.getLogger(__name__)

JOBS = GVR("batch", "v1", "jobs")
PODS = GVR("", "v1", "pods")
PVCS = GVR("", "v1", "persistentvolumeclaims")
LOCAL_STOP_TIMEOUT = 5.0  # seconds stop() waits for local-mode process threads

ANN_DURATION = "kubesim.io/duration"
ANN_EXIT_CODE = "kubesim.io/exit-code"
ANN_FAIL_ATTEMPTS = "kubesim.io/fail-attempts"
ANN_FAIL_EXIT_CODE = "kubesim.io/fail-exit-code"
ANN_ATTEMPT_KEY = "kubesim.io/attempt-key"
ANN_LOG = "kubesim.io/log"
ANN_TERMINATION_MESSAGE = "kubesim.io/termination-message"
ANN_POD_BACKOFF = "kubesim.io/pod-backoff"

LABEL_JOB_NAME = "job-name"
LABEL_CONTROLLER_UID = "controller-uid"
LABEL_BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
LABEL_BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

DEFAULT_BACKOFF_LIMIT = 6  # upstream default of spec.backoffLimit
MAX_POD_BACKOFF = 360.0  # upstream caps the pod re-creation delay at 6 minutes
MAX_TERMINATION_MESSAGE = 4096  # upstream truncates termination messages to 4 KiB
FALLBACK_LOG_BYTES = 2048  # FallbackToLogsOnError keeps at most this much of the log tail
FALLBACK_LOG_LINES = 80
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
TERMINATION_ENV = "KUBESIM_TERMINATION_MESSAGE_PATH"
POD_NAME_MAX = 63
GENERATE_SUFFIX = 5  # the store appends 5 random characters to generateName
REQUEUE_AFTER_ERROR = 1.0  # seconds before a reconcile that raised is retried
MAX_STEPS = 10_000  # bound on create/finish rounds in one reconcile (instant retries loop)
NODE_NAME = "kubesim-node"
DEFAULT_SCHEDULER = "default-scheduler"
WAITING_INIT = "PodInitializing"  # reason of a container waiting for init containers
LOCAL_IP = "127.0.0.1"

REASON_COMPLETIONS = "CompletionsReached"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"
REASON_BACKOFF = "BackoffLimitExceeded"
MSG_BACKOFF = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MSG_DEADLINE = "Job was active longer than specified deadline"

Key = tuple[str, str]  # (namespace, job name), or (namespace, POD_KEY_PREFIX + pod name)
# A bare pod's queue key: names of Jobs and pods never hold "/", so the prefix cannot clash.
POD_KEY_PREFIX = "pod/"
CRASH_BACKOFF_BASE = 10.0  # the kubelet's restart back-off: 10 s, doubling per restart ...
CRASH_BACKOFF_MAX = 300.0  # ... capped at 5 minutes
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


# --------------------------------------------------------------------------------------------
# Pure parts: spec parsing, simulated outcomes, decisions, status documents


class AnnotationError(ValueError):
    """A kubesim.io/ annotation has a value the runner cannot use."""


@dataclass(frozen=True)
class SimSpec:
    """What a simulated container run does, from the kubesim.io/ annotations."""

    duration: float = 0.0
    exit_code: int = 0
    fail_attempts: int = 0
    fail_exit_code: int = 1
    attempt_key: str = ""
    log: str = ""
    termination_message: str = ""
    pod_backoff: float = 0.0

    @classmethod
    def from_annotations(
        cls,
        job_annotations: Mapping[str, str],
        template_annotations: Mapping[str, str],
        *,
        job_name: str,
    ) -> SimSpec:
        """Template annotations override the Job's; raise AnnotationError on a bad value."""
        ann = {**job_annotations, **template_annotations}

        def number(key: str, default: float, *, integer: bool = False) -> float:
            raw = ann.get(key)
            if raw is None or str(raw).strip() == "":
                return default
            try:
                value = int(str(raw)) if integer else float(str(raw))
            except ValueError:
                kind = "an integer" if integer else "a number of seconds"
                raise AnnotationError(f"annotation {key}={raw!r} must be {kind}") from None
            if value < 0 or value != value or value == float("inf"):
                raise AnnotationError(f"annotation {key}={raw!r} must be >= 0 and finite")
            return value

        exit_code = int(number(ANN_EXIT_CODE, 0, integer=True))
        fail_exit = int(number(ANN_FAIL_EXIT_CODE, 1, integer=True))
        if exit_code > 255 or fail_exit > 255 or fail_exit == 0:
            raise AnnotationError(
                f"annotations {ANN_EXIT_CODE} must be 0..255 and {ANN_FAIL_EXIT_CODE} 1..255"
            )
        return cls(
            duration=number(ANN_DURATION, 0.0),
            exit_code=exit_code,
            fail_attempts=int(number(ANN_FAIL_ATTEMPTS, 0, integer=True)),
            fail_exit_code=fail_exit,
            attempt_key=str(ann.get(ANN_ATTEMPT_KEY) or job_name),
            log=str(ann.get(ANN_LOG, "")),
            termination_message=str(ann.get(ANN_TERMINATION_MESSAGE, "")),
            pod_backoff=number(ANN_POD_BACKOFF, 0.0),
        )

    def outcome(self, attempt: int) -> Outcome:
        """Exit code and message of the ``attempt``-th run (1-based) of this attempt key."""
        if attempt <= self.fail_attempts:
            return Outcome(self.fail_exit_code, self.termination_message)
        return Outcome(self.exit_code, self.termination_message)


@dataclass(frozen=True)
class JobSpec:
    """The parts of a Job spec the runner acts on, with upstream defaults."""

    completions: int | None  # None: work-queue Job (done when any pod succeeds)
    parallelism: int
    backoff_limit: int
    active_deadline: float | None
    suspend: bool
    restart_policy: str  # "Never" | "OnFailure"
    indexed: bool

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> JobSpec:
        spec = job.get("spec") or {}
        completions = spec.get("completions")
        parallelism = spec.get("parallelism")
        if completions is None and parallelism is None:
            completions = 1  # upstream: both unset means one pod to completion
        template_spec = (spec.get("template") or {}).get("spec") or {}
        ads = spec.get("activeDeadlineSeconds")
        return cls(
            completions=None if completions is None else max(int(completions), 0),
            parallelism=max(int(1 if parallelism is None else parallelism), 0),
            backoff_limit=max(int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT)), 0),
            active_deadline=None if ads is None else float(ads),
            suspend=bool(spec.get("suspend")),
            restart_policy="OnFailure"
            if template_spec.get("restartPolicy") == "OnFailure"
            else "Never",
            indexed=spec.get("completionMode") == "Indexed" and completions is not None,
        )


@dataclass(frozen=True)
class Decision:
    """What a reconcile should do next: finish the Job, or create ``create`` pods."""

    finish: tuple[str, str, str] | None = None  # (condition type, reason, message)
    create: int = 0


def decide(
    spec: JobSpec,
    *,
    succeeded: int,
    failed: int,
    active: int,
    restarts: int,
    deadline_exceeded: bool,
) -> Decision:
    """Upstream syncJob's order: failure (backoff limit, deadline) before completion.

    ``restarts`` is the sum of container restarts of active pods, which upstream compares with
    backoffLimit for restartPolicy OnFailure (any restart fails the Job when the limit is 0).
    """
    if failed > spec.backoff_limit:
        return Decision(finish=("Failed", REASON_BACKOFF, MSG_BACKOFF))
    if spec.restart_policy == "OnFailure" and restarts_exceed(restarts, spec.backoff_limit):
        return Decision(finish=("Failed", REASON_BACKOFF, MSG_BACKOFF))
    if deadline_exceeded:
        return Decision(finish=("Failed", REASON_DEADLINE, MSG_DEADLINE))
    if spec.completions is None:
        if succeeded > 0:
            return Decision(finish=("Complete", REASON_COMPLETIONS, MSG_COMPLETIONS))
        return Decision(create=0 if spec.suspend else max(spec.parallelism - active, 0))
    if succeeded >= spec.completions:
        return Decision(finish=("Complete", REASON_COMPLETIONS, MSG_COMPLETIONS))
    if spec.suspend:
        return Decision()
    wanted = min(spec.parallelism, spec.completions - succeeded)
    return Decision(create=max(wanted - active, 0))


def restarts_exceed(restarts: int, backoff_limit: int) -> bool:
    """Upstream pastBackoffLimitOnFailure: restarts >= limit, or any restart when it is 0."""
    return restarts > 0 and restarts >= backoff_limit


def pod_backoff_delay(base: float, failures: int) -> float:
    """Delay before re-creating a pod after ``failures`` failures (base * 2^(n-1), capped)."""
    if base <= 0 or failures <= 0:
        return 0.0
    return min(base * 2.0 ** (failures - 1), MAX_POD_BACKOFF)


def _sim_spec(key: Key, job: dict[str, Any]) -> tuple[SimSpec, str]:
    """The Job's simulation spec, and the error of a bad kubesim.io/ annotation ("" if none:
    a Job with one gets the defaults and its pods fail with that message)."""
    template_meta = ((job.get("spec") or {}).get("template") or {}).get("metadata") or {}
    try:
        sim = SimSpec.from_annotations(
            job["metadata"].get("annotations") or {},
            template_meta.get("annotations") or {},
            job_name=key[1],
        )
    except AnnotationError as exc:
        return SimSpec(attempt_key=key[1]), str(exc)
    return sim, ""


def is_bare_pod(pod: Mapping[str, Any]) -> bool:
    """A pod the kubelet side runs by itself: not one of a Job's (the Job runner runs those),
    and one the default scheduler would bind to kubesim's node (a pod naming another
    scheduler, or bound to another node, stays Pending as no scheduler or kubelet takes it)."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return False
    spec = pod.get("spec") or {}
    return spec.get("schedulerName") in (None, "", DEFAULT_SCHEDULER) and spec.get("nodeName") in (
        None,
        "",
        NODE_NAME,
    )


def bare_pod_key(pod: Mapping[str, Any]) -> Key:
    meta = pod.get("metadata") or {}
    return (str(meta.get("namespace", "")), POD_KEY_PREFIX + str(meta.get("name", "")))


def _restart_policy(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _pod_sim_spec(pod: Mapping[str, Any]) -> tuple[SimSpec, str]:
    """A bare pod's simulation spec from its own kubesim.io/ annotations (attempts counted per
    pod name unless kubesim.io/attempt-key says otherwise)."""
    name = str(pod["metadata"].get("name", ""))
    try:
        sim = SimSpec.from_annotations(pod["metadata"].get("annotations") or {}, {}, job_name=name)
    except AnnotationError as exc:
        return SimSpec(attempt_key=name), str(exc)
    return sim, ""


def _deadline_passed(spec: JobSpec, st: _JobState) -> bool:
    """activeDeadlineSeconds has passed since the (unsuspended) Job started."""
    return (
        spec.active_deadline is not None
        and st.start_wall is not None
        and not spec.suspend
        and time.time() >= st.start_wall + spec.active_deadline
    )


def set_condition(
    conditions: list[dict[str, Any]],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: str,
) -> list[dict[str, Any]]:
    """Conditions with ``ctype`` set; lastTransitionTime moves only when the status changes."""
    out = []
    found = False
    for cond in conditions:
        if cond.get("type") == ctype:
            found = True
            transition = cond.get("lastTransitionTime") if cond.get("status") == status else now
            cond = {
                **cond,
                "status": status,
                "reason": reason,
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": transition or now,
            }
        out.append(cond)
    if not found:
        out.append(
            {
                "type": ctype,
                "status": status,
                "lastProbeTime": now,
                "lastTransitionTime": now,
                "reason": reason,
                "message": message,
            }
        )
    return out


def finished_condition(status: Mapping[str, Any]) -> str | None:
    """ "Complete" or "Failed" when the Job has that condition True, else None."""
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return str(cond["type"])
    return None


def finish_time(status: Mapping[str, Any]) -> float | None:
    """When the Job finished: the transition time of its Complete or Failed condition."""
    for cond in status.get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return parse_rfc3339(str(cond.get("lastTransitionTime") or ""))
    return None


def format_indexes(indexes: set[int]) -> str:
    """Upstream's completedIndexes: sorted, consecutive runs as ranges ("0-2,4")."""
    parts: list[str] = []
    for _, group in itertools.groupby(enumerate(sorted(indexes)), lambda p: p[1] - p[0]):
        run = [v for _, v in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def parse_indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part.strip():
            continue
        lo, _, hi = part.partition("-")
        with contextlib.suppress(ValueError):
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


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


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_vars(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion in command/args: defined vars are replaced, ``$$`` is a
    literal ``$``, undefined references stay as written."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env.get(name, m.group(0))

    return _VAR_REF.sub(sub, text)


def local_mounts(
    pod_spec: Mapping[str, Any],
    container: Mapping[str, Any],
    *,
    claim_dir: Callable[[str], Path],
    pod_dir: Path,
) -> dict[str, str]:
    """mountPath -> host directory for the container's PVC and emptyDir mounts (local mode).

    A PersistentVolumeClaim is the directory ``claim_dir(claimName)``, shared by every pod that
    mounts the claim (so a file one step writes is there for the next); an emptyDir lives in
    the pod's own directory. ``subPath`` is a directory below it, created as the kubelet does,
    unless it already is a file (an init container's download): then the mount is that file,
    as the kubelet's single-file bind mount. Other volume kinds are not mapped. ``readOnly`` is
    not enforced.
    """
    sources: dict[str, Path] = {}
    for volume in pod_spec.get("volumes") or []:
        if not isinstance(volume, Mapping) or not volume.get("name"):
            continue
        name = str(volume["name"])
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, Mapping) and claim.get("claimName"):
            sources[name] = claim_dir(str(claim["claimName"]))
        elif "emptyDir" in volume:
            sources[name] = pod_dir / "volumes" / name
    out: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        if not isinstance(mount, Mapping):
            continue
        base = sources.get(str(mount.get("name")))
        mount_path = str(mount.get("mountPath") or "")
        if base is None or not mount_path.startswith("/"):
            continue
        host = base / str(mount.get("subPath") or "").strip("/")
        if not host.is_file():  # a file (written by an init container) is bind-mounted as is
            host.mkdir(parents=True, exist_ok=True)
        out[mount_path.rstrip("/") or "/"] = str(host)
    return out


def _path_rewriter(paths: Mapping[str, str]) -> Callable[[str], str]:
    """Replace each path (whole path components only) by its host path, longest first."""
    if not paths:
        return lambda text: text
    ordered = sorted(paths, key=len, reverse=True)
    pattern = re.compile("(?:" + "|".join(re.escape(p) for p in ordered) + r")(?![A-Za-z0-9_.\-])")
    return lambda text: pattern.sub(lambda m: paths[m.group(0)], text)


def local_command(
    container: Mapping[str, Any],
    *,
    termination_file: str,
    extra_env: Mapping[str, str],
    mounts: Mapping[str, str] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """argv and environment for running ``container`` locally.

    The container's terminationMessagePath is mapped to ``termination_file``: it is exported as
    $KUBESIM_TERMINATION_MESSAGE_PATH and literal occurrences of the path in command, args and
    env values are replaced, so ``echo done > /dev/termination-log`` works unchanged. Volume
    mount paths (``mounts``: mountPath -> host directory, see ``local_mounts``) are replaced the
    same way, so ``cat /inputs/report/file`` reads the file another pod wrote to its claim.
    """
    tpath = str(container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH)
    rewrite = _path_rewriter({**(mounts or {}), tpath: termination_file})
    env: dict[str, str] = dict(extra_env)
    for item in container.get("env") or []:
        if isinstance(item, Mapping) and item.get("name"):
            value = str(item.get("value") or "")
            env[str(item["name"])] = rewrite(expand_vars(value, env))
    env[TERMINATION_ENV] = termination_file
    argv = [str(a) for a in (container.get("command") or [])]
    argv += [str(a) for a in (container.get("args") or [])]
    argv = [rewrite(expand_vars(a, env)) for a in argv]
    return argv, env


def log_tail(text: str) -> str:
    """What FallbackToLogsOnError keeps of a log: the last 80 lines, at most 2 KiB."""
    lines = text.splitlines()[-FALLBACK_LOG_LINES:]
    tail = "\n".join(lines)
    return tail[-FALLBACK_LOG_BYTES:]


# --------------------------------------------------------------------------------------------
# Work queue and timers


class _WorkQueue:
    """Keys to reconcile; a key is handed to one worker at a time (client-go workqueue rules)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._dirty: set[Key] = set()
        self._processing: set[Key] = set()
        self._closed = False

    def add(self, key: Key) -> None:
        with self._cond:
            if self._closed or key in self._dirty:
                return
            self._dirty.add(key)
            if key not in self._processing:
                self._queue.append(key)
                self._cond.notify()

    def get(self) -> Key | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            key = self._queue.popleft()
            self._dirty.discard(key)
            self._processing.add(key)
            return key

    def done(self, key: Key) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._processing


class _Timers:
    """One thread and a heap: enqueue a key at a monotonic time (durations, deadlines, backoff)."""

    def __init__(self, fire: Callable[[Key], None]) -> None:
        self._fire = fire
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Key]] = []
        self._seq = itertools.count()
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop, name="kubesim-runner-timers", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def at(self, when: float, key: Key) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), key))
            if self._heap[0][2] == key:
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            due: list[Key] = []
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    self._cond.wait(None if not self._heap else self._heap[0][0] - now)
                if self._closed:
                    return
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            for key in due:
                self._fire(key)


# --------------------------------------------------------------------------------------------
# In-memory state


@dataclass(eq=False)
class _Run:
    """One active pod and its current container run."""

    key: Key
    job_uid: str
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
    gone: bool = False  # deleted from the Store behind our back
    cancelled: bool = False  # killed by us or by a deletion; no process may start after this
    # local mode, pods with init containers: state of each init container in the current run
    # (name -> state), restarts caused by each, and the one whose failure is ``outcome``
    init_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_restarts: dict[str, int] = field(default_factory=dict)
    init_last: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_init: str | None = None
    restart_due: float | None = None  # bare pods: monotonic time of the back-off's restart

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])


@dataclass(eq=False)
class _JobState:
    uid: str
    succeeded: int = 0
    failed: int = 0
    succeeded_indexes: set[int] = field(default_factory=set)
    runs: dict[str, _Run] = field(default_factory=dict)  # pod uid -> active run
    start_wall: float | None = None
    last_failure: float = 0.0  # monotonic time of the last pod failure (for pod-backoff)
    deadline_armed: bool = False
    finished: bool = False


# --------------------------------------------------------------------------------------------
# The runner


class JobRunner:
    """Runs the Jobs of one Store (see module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        exec_mode: str = "sim",
        work_dir: Path,
        workers: int = 2,
    ) -> None:
        if exec_mode not in ("sim", "local"):
            raise ValueError(f"exec_mode must be 'sim' or 'local', got {exec_mode!r}")
        self.store = store
        self.exec_mode = exec_mode
        self.work_dir = Path(work_dir)
        self._n_workers = max(int(workers), 1)
        self._queue = _WorkQueue()
        self._timers = _Timers(self._queue.add)
        self._lock = threading.Lock()
        self._jobs: dict[Key, _JobState] = {}
        self._runs: dict[str, _Run] = {}  # pod uid -> run, for DELETED events
        self._bare: dict[Key, _Run] = {}  # the kubelet's runs of pods no Job owns
        self._generations: dict[str, Any] = {}  # job uid -> generation last reconciled
        self._attempts: dict[tuple[str, str], int] = {}  # (namespace, attempt key) -> runs
        self._threads: list[threading.Thread] = []
        # local mode: the process thread of each run (pod threads), so stop() can wait for them
        self._local: dict[threading.Thread, _Run] = {}
        self._stopping = False  # set once by stop(); no process starts after it (under _lock)
        self._unsubscribe: Callable[[], None] | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._unsubscribe = self.store.subscribe(self._on_event)
        self._timers.start()
        for i in range(self._n_workers):
            t = threading.Thread(target=self._work, name=f"kubesim-runner-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        for job in self.store.list(JOBS):
            meta = job.get("metadata") or {}
            self._queue.add((str(meta.get("namespace", "")), str(meta.get("name", ""))))
        for pod in self.store.list(PODS):
            if is_bare_pod(pod):
                self._queue.add(bare_pod_key(pod))

    def stop(self) -> None:
        """Stop reconciling, kill every local process and wait (bounded) for its thread.

        The caller may delete the work directory right after this returns, so a pod thread
        still running then could only fail noisily; it is made quiet instead (``_stopping``).
        A thread can outlive the bound only if its process left a child outside the process
        group holding the output pipe open.
        """
        with self._lock:
            self._stopping = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._queue.close()
        self._timers.close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()
        with self._lock:
            runs = {*self._runs.values(), *self._local.values()}
        for run in runs:
            self._cancel(run)
        deadline = time.monotonic() + LOCAL_STOP_TIMEOUT
        with self._lock:
            threads = list(self._local)
        for t in threads:
            t.join(timeout=max(deadline - time.monotonic(), 0.0))
        with self._lock:
            left = [t.name for t in self._local]
        if left:
            log.warning(
                "kubesim local runs still draining at stop",
                extra={"threads": left, "timeout": LOCAL_STOP_TIMEOUT},
            )

    def idle(self) -> bool:
        """True when no reconcile is queued or running (timers may still be pending)."""
        return self._queue.idle()

    # -- events (called under the Store's lock: never block, never call the Store) -----------

    def _on_event(self, event_type: str, gvr: GVR, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if gvr.group == "batch" and gvr.resource == "jobs":
            key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
            uid = str(meta.get("uid", ""))
            if event_type == "MODIFIED":
                with self._lock:
                    seen = self._generations.get(uid)
                # our own status writes do not change the generation: nothing to do for them
                if (
                    seen is not None
                    and seen == meta.get("generation")
                    and not meta.get("deletionTimestamp")
                ):
                    return
            elif event_type == "DELETED":
                with self._lock:
                    runs = [r for r in self._runs.values() if r.job_uid == uid]
                    self._generations.pop(uid, None)
                for run in runs:
                    self._cancel(run)
            self._queue.add(key)
        elif gvr.group == "" and gvr.resource == "pods" and event_type == "ADDED":
            if is_bare_pod(obj):
                self._queue.add(bare_pod_key(obj))
        elif gvr.group == "" and gvr.resource == "pods" and event_type == "DELETED":
            with self._lock:
                victim = self._runs.pop(str(meta.get("uid", "")), None)
                if victim is not None:
                    victim.gone = True
            if victim is not None:
                self._cancel(victim)
                self._queue.add(victim.key)

    # -- workers -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None:
                return
            try:
                self._sync(key)
            except Exception:  # thread boundary: log once, retry the key later
                log.exception("job reconcile failed", extra={"namespace": key[0], "job": key[1]})
                self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            finally:
                self._queue.done(key)

    def _sync(self, key: Key) -> None:
        if key[1].startswith(POD_KEY_PREFIX):
            self._sync_bare_pod(key)
            return
        namespace, name = key
        try:
            job = self.store.get(JOBS, name, namespace=namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            self._forget(key)
            return
        meta = job["metadata"]
        uid = str(meta["uid"])
        st = self._jobs.get(key)
        if st is None or st.uid != uid:
            if st is not None:
                self._forget(key)
            st = self._adopt(job)
            self._jobs[key] = st
        with self._lock:
            self._generations[uid] = meta.get("generation")
        if meta.get("deletionTimestamp"):
            self._stop_runs(st, delete=False)
            return
        if not st.finished and finished_condition(job.get("status") or {}):
            st.finished = True
            self._stop_runs(st, delete=True)
        if not st.finished:
            self._reconcile(key, job, st)
        if st.finished:
            self._expire(key, job)

    def _expire(self, key: Key, job: dict[str, Any]) -> None:
        """The TTL-after-finished controller: delete a finished Job once its TTL has passed."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished_at = finish_time(job.get("status") or {})
        if finished_at is None:
            return
        wait = finished_at + float(ttl) - time.time()
        if wait > 0:
            self._timers.at(time.monotonic() + wait, key)
            return
        try:
            self.store.delete(JOBS, key[1], namespace=key[0], propagation="Background")
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _adopt(self, job: dict[str, Any]) -> _JobState:
        """State for a Job first seen: counts from its status; pods left running by a previous
        server are deleted and replaced (their processes did not survive)."""
        status = job.get("status") or {}
        meta = job["metadata"]
        st = _JobState(
            uid=str(meta["uid"]),
            succeeded=int(status.get("succeeded") or 0),
            failed=int(status.get("failed") or 0),
            succeeded_indexes=parse_indexes(status.get("completedIndexes")),
            start_wall=parse_rfc3339(str(status.get("startTime") or "")),
        )
        if status.get("active"):
            for pod in self.store.list(
                PODS,
                namespace=meta.get("namespace"),
                label_selector=f"{LABEL_BATCH_CONTROLLER_UID}={st.uid}",
            ):
                phase = (pod.get("status") or {}).get("phase")
                if phase not in ("Succeeded", "Failed"):
                    self._delete_pod(pod)
        return st

    def _reconcile(self, key: Key, job: dict[str, Any], st: _JobState) -> None:
        spec = JobSpec.from_job(job)
        prev = job.get("status") or {}
        status: dict[str, Any] = dict(prev)
        now = now_rfc3339()
        sim, bad_annotation = _sim_spec(key, job)
        conditions = self._follow_suspension(key, spec, st, status, now)
        decision = self._run_pods(key, job, st, spec, sim, bad_annotation=bad_annotation)
        if decision.finish is not None:
            conditions = self._finish(st, decision.finish, conditions, status, now)
        status["conditions"] = conditions
        if not conditions:
            status.pop("conditions")
        self._set_counts(status, st, spec)
        if status != prev:
            job["status"] = status
            job["metadata"].pop("resourceVersion", None)
            try:
                self.store.update(
                    JOBS,
                    job,  # our own copy (store.get), not used after this write
                    namespace=key[0],
                    subresource="status",
                    copy_result=False,
                    owned=True,
                )
            except ApiError as exc:
                if exc.code != 404:
                    raise

    def _follow_suspension(
        self, key: Key, spec: JobSpec, st: _JobState, status: dict[str, Any], now: str
    ) -> list[dict[str, Any]]:
        """The Job's conditions after (un)suspending it; a running Job has its startTime and its
        activeDeadlineSeconds timer armed.

        As upstream syncJob: a Job created suspended gets no startTime until it is resumed; a
        suspended Job keeps the startTime it had (the deadline does not count while suspended,
        ``_deadline_passed``), and resuming sets startTime to now, so activeDeadlineSeconds
        counts the time the Job has been continuously active since the resume."""
        conditions = list(status.get("conditions") or [])
        suspended = any(
            c.get("type") == "Suspended" and c.get("status") == "True" for c in conditions
        )
        if spec.suspend:
            self._stop_runs(st, delete=True)
            if not suspended:
                conditions = set_condition(
                    conditions, "Suspended", "True", "JobSuspended", "Job suspended", now
                )
            st.deadline_armed = False
            return conditions
        if suspended:
            conditions = set_condition(
                conditions, "Suspended", "False", "JobResumed", "Job resumed", now
            )
            st.start_wall = time.time()  # resuming restarts the activeDeadlineSeconds clock
        if st.start_wall is None:
            st.start_wall = time.time()
        status["startTime"] = now_rfc3339(st.start_wall)
        if spec.active_deadline is not None and not st.deadline_armed:
            st.deadline_armed = True
            remaining = st.start_wall + spec.active_deadline - time.time()
            self._timers.at(time.monotonic() + max(remaining, 0.0), key)
        return conditions

    def _run_pods(
        self,
        key: Key,
        job: dict[str, Any],
        st: _JobState,
        spec: JobSpec,
        sim: SimSpec,
        *,
        bad_annotation: str,
    ) -> Decision:
        """Collect finished pods and start the ones the Job needs, until nothing changes
        (instant outcomes settle in one pass, bounded by MAX_STEPS); the last decision."""
        decision = Decision()
        for _ in range(MAX_STEPS):
            changed = self._collect(st, spec, sim)
            decision = decide(
                spec,
                succeeded=st.succeeded,
                failed=st.failed,
                active=len(st.runs),
                restarts=sum(r.restarts for r in st.runs.values()),
                deadline_exceeded=_deadline_passed(spec, st),
            )
            if decision.finish is not None:
                break
            if decision.create == 0:
                if changed:
                    continue  # an instant OnFailure restart may be due already
                break
            delay = pod_backoff_delay(sim.pod_backoff, st.failed)
            wait = st.last_failure + delay - time.monotonic()
            if st.failed and wait > 0:
                self._timers.at(time.monotonic() + wait, key)
                break
            instant = False
            for index in self._next_indexes(spec, st, decision.create):
                run = self._start_pod(
                    key, job, st, spec, sim, index=index, bad_annotation=bad_annotation
                )
                if run is None:
                    continue
                instant = instant or (run.due is not None and run.due <= time.monotonic())
            if not (changed or instant):
                break
        return decision

    def _finish(
        self,
        st: _JobState,
        finish: tuple[str, str, str],
        conditions: list[dict[str, Any]],
        status: dict[str, Any],
        now: str,
    ) -> list[dict[str, Any]]:
        """Stop the Job's pods and set its terminal conditions (and completionTime)."""
        ctype, reason, message = finish
        stopped = self._stop_runs(st, delete=True)
        if ctype == "Failed":
            st.failed += stopped  # upstream counts the pods it terminates as failed
        st.finished = True
        target = "SuccessCriteriaMet" if ctype == "Complete" else "FailureTarget"
        conditions = set_condition(conditions, target, "True", reason, message, now)
        conditions = set_condition(conditions, ctype, "True", reason, message, now)
        if ctype == "Complete":
            status["completionTime"] = now
        return conditions

    @staticmethod
    def _set_counts(status: dict[str, Any], st: _JobState, spec: JobSpec) -> None:
        ready = sum(1 for r in st.runs.values() if r.due is None or r.due > time.monotonic())
        for name, value in (
            ("active", len(st.runs)),
            ("succeeded", st.succeeded),
            ("failed", st.failed),
        ):
            if value:
                status[name] = value
            else:
                status.pop(name, None)  # int32 with omitempty upstream
        status["ready"] = ready if st.runs else 0
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        if spec.indexed and st.succeeded_indexes:
            status["completedIndexes"] = format_indexes(st.succeeded_indexes)

    def _next_indexes(self, spec: JobSpec, st: _JobState, count: int) -> list[int | None]:
        if not spec.indexed or spec.completions is None:
            return [None] * count
        busy = {r.index for r in st.runs.values()}
        free = [
            i for i in range(spec.completions) if i not in st.succeeded_indexes and i not in busy
        ]
        return list(free[:count])

    # -- pods ----------------------------------------------------------------------------------

    def _start_pod(
        self,
        key: Key,
        job: dict[str, Any],
        st: _JobState,
        spec: JobSpec,
        sim: SimSpec,
        *,
        index: int | None,
        bad_annotation: str,
    ) -> _Run | None:
        namespace, name = key
        template = (job.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            LABEL_CONTROLLER_UID: st.uid,
            LABEL_JOB_NAME: name,
            LABEL_BATCH_CONTROLLER_UID: st.uid,
            LABEL_BATCH_JOB_NAME: name,
        }
        annotations = dict(tmeta.get("annotations") or {})
        prefix = f"{name}-" if index is None else f"{name}-{index}-"
        prefix = prefix[: POD_NAME_MAX - GENERATE_SUFFIX]
        if index is not None:
            labels[COMPLETION_INDEX] = str(index)
            annotations[COMPLETION_INDEX] = str(index)
        pod_spec = dict(template.get("spec") or {})
        pod_spec["nodeName"] = NODE_NAME
        if index is not None:
            pod_spec["containers"] = [
                {
                    **c,
                    "env": [
                        *(c.get("env") or []),
                        {"name": "JOB_COMPLETION_INDEX", "value": str(index)},
                    ],
                }
                for c in pod_spec.get("containers") or []
            ]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": prefix,
                "namespace": namespace,
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": st.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        if not annotations:
            del pod["metadata"]["annotations"]
        try:
            created = self.store.create(PODS, pod, namespace=namespace)
        except ApiError as exc:
            log.warning(
                "pod creation failed",
                extra={"namespace": namespace, "job": name, "error": exc.message},
            )
            self._timers.at(time.monotonic() + REQUEUE_AFTER_ERROR, key)
            return None
        run = _Run(key=key, job_uid=st.uid, pod=created, index=index, started_at=now_rfc3339())
        st.runs[run.uid] = run
        with self._lock:
            self._runs[run.uid] = run
        self._start_container(run, sim, bad_annotation=bad_annotation)
        return run

    def _start_container(self, run: _Run, sim: SimSpec, *, bad_annotation: str = "") -> None:
        """Begin one container run (first run or an OnFailure restart)."""
        run.container_started_at = now_rfc3339()
        run.outcome = None
        namespace = run.key[0]
        if bad_annotation:
            run.planned, run.due = Outcome(2, bad_annotation), time.monotonic()
            return
        if self.exec_mode == "sim":
            with self._lock:
                akey = (namespace, sim.attempt_key)
                attempt = self._attempts[akey] = self._attempts.get(akey, 0) + 1
            run.planned = sim.outcome(attempt)
            run.due = time.monotonic() + sim.duration
            if sim.log:
                self._set_log(run, sim.log)
            if sim.duration > 0:
                self._write_running(run)
                self._timers.at(run.due, run.key)
            return
        run.due = None
        run.failed_init = None
        self._set_log(run, "", container=_first_name(run))  # a (re)started run's log starts empty
        inits = _init_containers(run)
        if inits:
            # as a pod whose init containers have not run yet: Pending, everything waiting
            run.init_states = {str(c.get("name", "")): _waiting_init() for c in inits}
            self._write_pod_status(run, "Pending", _waiting_init())
        else:
            self._write_running(run)
        thread = threading.Thread(
            target=self._run_local, args=(run,), name=f"kubesim-pod-{run.name}", daemon=True
        )
        with self._lock:
            if self._stopping:
                run.cancelled = True  # stop() has taken its snapshot: start nothing new
                return
            self._local[thread] = run
            # started under the lock, so stop() never sees (and joins) an unstarted thread
            thread.start()

    def _collect(self, st: _JobState, spec: JobSpec, sim: SimSpec) -> bool:
        """Finish the runs whose outcome is known; returns whether anything changed."""
        changed = False
        now_mono = time.monotonic()
        for run in list(st.runs.values()):
            with self._lock:
                gone = run.gone
                outcome = run.outcome
            if gone:
                # deleted while active: a failure, replaced like one (pod-failure tracking)
                del st.runs[run.uid]
                st.failed += 1
                st.last_failure = now_mono
                changed = True
                continue
            if (
                outcome is None
                and run.planned is not None
                and run.due is not None
                and (run.due <= now_mono)
            ):
                outcome = run.planned
            if outcome is None:
                continue
            changed = True
            if run.failed_init is not None:
                self._init_failed(st, spec, sim, run, run.failed_init)
                continue
            exit_code = outcome.exit_code
            containers = (run.pod.get("spec") or {}).get("containers") or [{}]
            message = self._termination_message(run, containers[0], exit_code, outcome.message)
            finished = now_rfc3339()
            term = terminated_state(
                exit_code,
                message,
                started_at=run.container_started_at,
                finished_at=finished,
                container_id=_container_id(run),
                reason=outcome.reason,
            )
            if exit_code != 0 and spec.restart_policy == "OnFailure":
                # the kubelet restarts the container in the same pod; the Job controller
                # compares the restart count with backoffLimit (decide())
                run.restarts += 1
                run.last_state = {"terminated": term}
                total = sum(r.restarts for r in st.runs.values())
                if restarts_exceed(total, spec.backoff_limit):
                    self._write_pod_status(
                        run,
                        "Running",
                        {
                            "waiting": {
                                "reason": "CrashLoopBackOff",
                                "message": f"back-off restarting failed container {_first_name(run)}",
                            }
                        },
                    )
                    run.planned, run.due, run.outcome = None, None, None
                else:
                    self._start_container(run, sim)
                continue
            phase = "Succeeded" if exit_code == 0 else "Failed"
            self._write_pod_status(run, phase, {"terminated": term})
            del st.runs[run.uid]
            with self._lock:
                self._runs.pop(run.uid, None)
            if exit_code == 0:
                st.succeeded += 1
                if run.index is not None:
                    st.succeeded_indexes.add(run.index)
            else:
                st.failed += 1
                st.last_failure = now_mono
        return changed

    def _init_failed(
        self, st: _JobState, spec: JobSpec, sim: SimSpec, run: _Run, name: str
    ) -> None:
        """An init container exited non-zero (local mode). restartPolicy Never: the pod fails
        without its app containers having run. OnFailure: counted as a restart of the pod's run
        (which starts again from the first init container), like a failed app container."""
        if spec.restart_policy == "OnFailure":
            run.restarts += 1
            run.init_restarts[name] = run.init_restarts.get(name, 0) + 1
            run.init_last[name] = {"terminated": run.init_states.get(name, {}).get("terminated")}
            total = sum(r.restarts for r in st.runs.values())
            if restarts_exceed(total, spec.backoff_limit):
                run.init_states[name] = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off restarting failed container {name}",
                    }
                }
                self._write_pod_status(run, "Pending", _waiting_init())
                run.planned, run.due, run.outcome, run.failed_init = None, None, None, None
            else:
                self._start_container(run, sim)
            return
        self._write_pod_status(run, "Failed", _waiting_init())
        del st.runs[run.uid]
        with self._lock:
            self._runs.pop(run.uid, None)
        st.failed += 1
        st.last_failure = time.monotonic()

    def _termination_message(
        self, run: _Run, container: Mapping[str, Any], exit_code: int, message: str
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

    def _write_running(self, run: _Run) -> None:
        self._write_pod_status(run, "Running", {"running": {"startedAt": run.container_started_at}})

    def _write_pod_status(self, run: _Run, phase: str, state: dict[str, Any]) -> None:
        now = now_rfc3339()
        containers = (run.pod.get("spec") or {}).get("containers") or []
        inits = _init_containers(run) if self.exec_mode == "local" else []
        init_statuses = [
            init_container_status(
                c,
                run.init_states.get(str(c.get("name", "")), _waiting_init()),
                restarts=run.init_restarts.get(str(c.get("name", "")), 0),
                last_state=run.init_last.get(str(c.get("name", ""))),
                container_id=f"{_container_id(run)}-init{i}",
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
            container_id=_container_id(run),
            now=now,
            init_statuses=init_statuses if inits else None,
        )
        body = dict(run.pod)
        body["metadata"] = {k: v for k, v in run.pod["metadata"].items() if k != "resourceVersion"}
        try:
            self.store.update(
                PODS, body, namespace=run.key[0], subresource="status", copy_result=False
            )
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _set_log(
        self, run: _Run, text: str, *, container: str | None = None, append: bool = False
    ) -> bool:
        """Write one container's log (the pod's default container when None); False when the
        pod is gone (a run outliving its pod keeps draining its process, writing nothing)."""
        try:
            self.store.set_pod_log(run.key[0], run.name, text, container=container, append=append)
        except ApiError:
            return False
        return True

    def _stop_runs(self, st: _JobState, *, delete: bool) -> int:
        """Kill every active run (and delete its pod); returns how many there were."""
        runs = list(st.runs.values())
        st.runs.clear()
        with self._lock:
            for run in runs:
                self._runs.pop(run.uid, None)
        for run in runs:
            self._cancel(run)
            if delete:
                self._delete_pod(run.pod)
        return len(runs)

    def _delete_pod(self, pod: Mapping[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        try:
            self.store.delete(PODS, str(meta.get("name")), namespace=meta.get("namespace"))
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _forget(self, key: Key) -> None:
        st = self._jobs.pop(key, None)
        if st is None:
            return
        with self._lock:
            self._generations.pop(st.uid, None)
        self._stop_runs(st, delete=False)  # the Store's garbage collector deletes the pods

    # -- the kubelet's bare pods --------------------------------------------------------------

    def _sync_bare_pod(self, key: Key) -> None:
        """Run a pod no Job owns (``kubectl run``, a test's pod) as the kubelet would: its
        restartPolicy (default Always) decides whether an exited container restarts (after the
        kubelet's back-off, CrashLoopBackOff meanwhile) or the pod ends Succeeded/Failed."""
        namespace, name = key[0], key[1][len(POD_KEY_PREFIX) :]
        try:
            pod = self.store.get(PODS, name, namespace=namespace)
        except ApiError as exc:
            if exc.code != 404:
                raise
            pod = None
        run = self._bare.get(key)
        if run is not None and (pod is None or run.uid != pod["metadata"]["uid"]):
            self._drop_bare(key, run)
            run = None
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            if run is not None:
                self._drop_bare(key, run)
            return
        sim, bad_annotation = _pod_sim_spec(pod)
        if run is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            run = _Run(key=key, job_uid="", pod=pod, index=None, started_at=now_rfc3339())
            self._bare[key] = run
            with self._lock:
                self._runs[run.uid] = run
            self._start_bare(run, sim, bad_annotation)
        for _ in range(MAX_STEPS):  # instant sim runs settle in one pass
            if not self._collect_bare(key, run, sim, bad_annotation):
                return

    def _start_bare(self, run: _Run, sim: SimSpec, bad_annotation: str) -> None:
        run.restart_due = None
        policy = _restart_policy(run.pod)
        annotations = run.pod["metadata"].get("annotations") or {}
        if (
            self.exec_mode == "sim"
            and policy == "Always"
            and not bad_annotation
            and ANN_DURATION not in annotations
        ):
            # a long-running server: it runs until the pod is deleted
            run.container_started_at = now_rfc3339()
            run.planned, run.due = None, None
            if sim.log:
                self._set_log(run, sim.log)
            self._write_running(run)
            return
        self._start_container(run, sim, bad_annotation=bad_annotation)

    def _collect_bare(self, key: Key, run: _Run, sim: SimSpec, bad_annotation: str) -> bool:
        """Act on the run's exit or due restart; True when another pass may do more."""
        now_mono = time.monotonic()
        if run.restart_due is not None:
            if now_mono < run.restart_due:
                return False
            self._start_bare(run, sim, bad_annotation)
            return True
        with self._lock:
            outcome = run.outcome
        if outcome is None and run.planned is not None and run.due is not None:
            outcome = run.planned if run.due <= now_mono else None
        if outcome is None:
            return False
        run.planned, run.due, run.outcome = None, None, None
        containers = (run.pod.get("spec") or {}).get("containers") or [{}]
        message = self._termination_message(run, containers[0], outcome.exit_code, outcome.message)
        term = terminated_state(
            outcome.exit_code,
            message,
            started_at=run.container_started_at,
            finished_at=now_rfc3339(),
            container_id=_container_id(run),
            reason=outcome.reason,
        )
        policy = _restart_policy(run.pod)
        if policy == "Always" or (policy == "OnFailure" and outcome.exit_code != 0):
            run.restarts += 1
            run.last_state = {"terminated": term}
            delay = min(CRASH_BACKOFF_BASE * 2.0 ** (run.restarts - 1), CRASH_BACKOFF_MAX)
            run.restart_due = now_mono + delay
            waiting = {
                "reason": "CrashLoopBackOff",
                "message": f"back-off {delay:g}s restarting failed container="
                f"{_first_name(run)} pod={run.name}_{key[0]}({run.uid})",
            }
            self._write_pod_status(run, "Running", {"waiting": waiting})
            self._timers.at(run.restart_due, key)
            return False
        self._write_pod_status(
            run, "Succeeded" if outcome.exit_code == 0 else "Failed", {"terminated": term}
        )
        self._drop_bare(key, run)
        return False

    def _drop_bare(self, key: Key, run: _Run) -> None:
        self._bare.pop(key, None)
        with self._lock:
            self._runs.pop(run.uid, None)
        self._cancel(run)

    # -- local processes -------------------------------------------------------------------

    def _cancel(self, run: _Run) -> None:
        """Kill the run's process group; a process not yet started never will be."""
        with self._lock:
            run.cancelled = True
            proc = run.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    def _run_local(self, run: _Run) -> None:
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
                        extra={"namespace": namespace, "pod": run.name, "error": repr(exc)},
                    )
                else:
                    log.exception(
                        "local run failed", extra={"namespace": namespace, "pod": run.name}
                    )
                outcome = Outcome(128, f"kubesim could not run the container: {exc}")
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
            with self._lock:
                run.outcome = outcome
                run.process = None
            self._queue.add(run.key)
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

    def _execute(self, run: _Run, workdir: Path) -> Outcome:
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
        inits = _init_containers(run)
        for i, init in enumerate(inits):
            name = str(init.get("name", ""))
            started = now_rfc3339()
            with self._lock:
                if run.cancelled:
                    return Outcome(137, "")
                run.init_states[name] = {"running": {"startedAt": started}}
            self._write_pod_status(run, "Pending", _waiting_init())
            ran = self._exec_container(
                run, init, workdir, base_env, tfile=workdir / f"termination-log.init-{i}"
            )
            code = ran.exit_code
            message = self._termination_message(run, init, code, ran.message)
            term = terminated_state(
                code,
                message,
                started_at=started,
                finished_at=now_rfc3339(),
                container_id=f"{_container_id(run)}-init{i}",
                reason=ran.reason,
            )
            with self._lock:
                run.init_states[name] = {"terminated": term}
                if code != 0 or run.cancelled:
                    run.failed_init = name
                    return Outcome(code, message, ran.reason)
        run.container_started_at = now_rfc3339()
        if inits:
            with self._lock:
                if run.cancelled:
                    return Outcome(137, "")
            self._write_running(run)
        return self._exec_container(
            run, containers[0], workdir, base_env, tfile=workdir / "termination-log", app=True
        )

    def _exec_container(
        self,
        run: _Run,
        container: Mapping[str, Any],
        workdir: Path,
        base_env: Mapping[str, str],
        *,
        tfile: Path,
        app: bool = False,
    ) -> Outcome:
        """One container as a process in its own session (killable by ``_cancel``); its
        stdout+stderr stream into its own container log, which an init container's run starts
        afresh (the app container's was reset when the run started, so a restarted run does not
        show the previous output meanwhile). ``app`` is the first app container. The caller
        turns the raw message into the reported one (``_termination_message``)."""
        namespace = run.key[0]
        name = str(container.get("name", ""))
        if not app:
            self._set_log(run, "", container=name)
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
        with self._lock:
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
                    log_ok = self._set_log(run, text, container=name, append=True)
                if not chunk:
                    break
            proc.stdout.close()
        code = proc.wait()
        with self._lock:
            run.process = None
        if code < 0:
            code = 128 - code  # killed by a signal: the shell convention the kubelet reports
        message = tfile.read_bytes()[:MAX_TERMINATION_MESSAGE].decode("utf-8", "replace")
        return Outcome(code, message)


def _init_containers(run: _Run) -> list[Mapping[str, Any]]:
    """The init containers local mode runs (sidecars, restartPolicy Always, are not emulated)."""
    inits = (run.pod.get("spec") or {}).get("initContainers") or []
    return [c for c in inits if isinstance(c, Mapping) and c.get("restartPolicy") != "Always"]


def _waiting_init() -> dict[str, Any]:
    return {"waiting": {"reason": WAITING_INIT}}


def _container_id(run: _Run) -> str:
    return f"kubesim://{run.uid[:8]}-{run.restarts}"


def _first_name(run: _Run) -> str:
    containers = (run.pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))
