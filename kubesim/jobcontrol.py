"""The Job controller's decisions (pure), as upstream syncJob makes them: the parts of a Job
spec it acts on with their defaults, what to do next (finish, or create pods), the back-off
rules, conditions and completed indexes."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubesim.timestamps import parse_rfc3339

DEFAULT_BACKOFF_LIMIT = 6  # upstream default of spec.backoffLimit
MAX_POD_BACKOFF = 360.0  # upstream caps the pod re-creation delay at 6 minutes
REASON_COMPLETIONS = "CompletionsReached"
MSG_COMPLETIONS = "Reached expected number of succeeded pods"
REASON_BACKOFF = "BackoffLimitExceeded"
MSG_BACKOFF = "Job has reached the specified backoff limit"
REASON_DEADLINE = "DeadlineExceeded"
MSG_DEADLINE = "Job was active longer than specified deadline"


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
