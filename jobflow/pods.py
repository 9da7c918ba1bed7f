"""What a Job's pods say about its attempt: the exit code and termination message of the
container that matters, and which container that is.

Pods are read only for finished attempts (the planner asks through ``Plan.needs_pod_details``);
the rules here decide which pod and which container answer, so the controller only lists pods
and hands them over.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from jobflow import decoded

# The container a podFailurePolicy rule matches when it names none (the seed's convention).
DEFAULT_CONTAINER: Final = "main"
# terminated.reason values that say no more than a non-zero exit code does. Any other reason is
# the runtime's own word (StartError, ContainerCannotRun, OOMKilled, DeadlineExceeded...).
_PLAIN_REASONS: Final = frozenset({"", "Error", "Completed"})


@dataclass(frozen=True)
class PodDetails:
    exit_code: int | None
    # The container's terminated.message; for a failed container whose terminated.reason says
    # more than "Error", that reason first ("StartError: exec: ...", "OOMKilled"): the kubelet
    # puts a runtime failure (a missing binary, no command) there, and the step's message shows
    # it. A succeeded container's message is untouched (it carries the step's outputs).
    termination_message: str | None
    init_container: str | None = None  # set when they are a failed init container's


def failure_container(flow: Mapping[str, object]) -> str:
    """The container whose exit code a flow's pod failure policy reads: the first
    ``onExitCodes.containerName`` of its rules, else ``main``."""
    rules = decoded.items(
        decoded.path(flow, "spec", "executionPolicy", "podFailurePolicy", "rules")
    )
    for rule in rules:
        name = decoded.string(decoded.path(rule, "onExitCodes", "containerName"))
        if name:
            return name
    return DEFAULT_CONTAINER


def pick_pod_details(pods: Sequence[Mapping[str, object]], *, container: str) -> PodDetails:
    """Exit code and termination message of ``container`` in the most recent finished pod
    (Failed pods first: the planner asks about failed attempts). Falls back to the first
    terminated container with a non-zero exit code when no container has that name, then to
    the only container of a one-container pod (a succeeded step's outputs), then to a failed
    init container (named in ``init_container``: upstream's podFailurePolicy matches init
    containers' exit codes too)."""

    def finished_key(pod: Mapping[str, object]) -> tuple[int, str]:
        phase = decoded.path(pod, "status", "phase")
        created = decoded.string(decoded.path(pod, "metadata", "creationTimestamp")) or ""
        return (1 if phase == "Failed" else 0, created)

    candidates = [p for p in pods if decoded.path(p, "status", "phase") in ("Failed", "Succeeded")]
    for pod in sorted(candidates, key=finished_key, reverse=True):
        statuses = decoded.items(decoded.path(pod, "status", "containerStatuses"))
        chosen = next((s for s in statuses if s.get("name") == container), None)
        if chosen is None:
            chosen = next((s for s in statuses if _terminated(s).get("exitCode")), None)
        if chosen is None and len(statuses) == 1:
            # A one-container pod that succeeded: its termination message carries the step's
            # output parameters whatever the container is called.
            chosen = statuses[0]
        terminated = _terminated(chosen or {})
        code = decoded.integer(terminated.get("exitCode"))
        if code is not None:
            return PodDetails(exit_code=code, termination_message=_said(terminated, code))
        # No app container ran to the end: did an init container fail (the pod then fails
        # with its app containers still waiting in PodInitializing)?
        for init in decoded.items(decoded.path(pod, "status", "initContainerStatuses")):
            terminated = _terminated(init)
            code = decoded.integer(terminated.get("exitCode"))
            if code:
                return PodDetails(
                    exit_code=code,
                    termination_message=_said(terminated, code),
                    init_container=decoded.string(init.get("name")) or "",
                )
    return PodDetails(exit_code=None, termination_message=None)


def _terminated(container_status: Mapping[str, object]) -> Mapping[str, object]:
    return decoded.mapping(decoded.path(container_status, "state", "terminated"))


def _said(terminated: Mapping[str, object], code: int) -> str | None:
    """What a terminated container said: its message, led by its reason when the container
    failed for a reason of its own (see ``PodDetails.termination_message``)."""
    message = decoded.string(terminated.get("message"))
    reason = decoded.string(terminated.get("reason")) or ""
    if code == 0 or reason in _PLAIN_REASONS:
        return message
    return f"{reason}: {message}" if message and message.strip() else reason
