"""Phases and reasons: the one set of names every package uses for what a flow or step is doing.

Values are the strings stored in ``.status`` (StrEnum members compare equal to them). The
terminal sets decide what is final: a terminal flow never changes phase again, a terminal step
is only ever re-run by a new attempt that the planner starts.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class FlowPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    PAUSED = "Paused"
    # Started, and every step that has a Job waits in a queue (its Job suspended by an
    # admission controller such as Kueue, or held by the controller's --max-active-jobs).
    QUEUED = "Queued"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class StepPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    PENDING_APPROVAL = "PendingApproval"
    # Its attempt's Job exists but is suspended (by Kueue or another admission controller):
    # the Job waits in a queue; its run timeout does not tick, its pending timeout does.
    QUEUED = "Queued"


TERMINAL_FLOW_PHASES: Final[frozenset[str]] = frozenset({FlowPhase.SUCCEEDED, FlowPhase.FAILED})
TERMINAL_STEP_PHASES: Final[frozenset[str]] = frozenset(
    {StepPhase.SUCCEEDED, StepPhase.FAILED, StepPhase.SKIPPED}
)
STEP_PHASES: Final[frozenset[str]] = frozenset(StepPhase)

# Step reasons (status.steps[].reason), each set by one transition of the planner.
RETRY_BACKOFF: Final = "RetryBackoff"  # waiting for its next attempt
UPSTREAM_FAILED: Final = "UpstreamFailed"
FLOW_FAILED: Final = "FlowFailed"
TIMEOUT: Final = "Timeout"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REPLACED: Final = "Replaced"
REJECTED: Final = "Rejected"
APPROVED: Final = "Approved"
# A Manual step whose approval.timeoutSeconds passed: onTimeout applied (jobflow.approvals).
APPROVAL_TIMEOUT: Final = "ApprovalTimeout"
AWAITING_APPROVAL: Final = "AwaitingApproval"
CONDITION_FALSE: Final = "ConditionFalse"
CONDITION_ERROR: Final = "ConditionError"
POD_FAILURE_POLICY: Final = "PodFailurePolicy"
JOB_FAILED: Final = "JobFailed"
INPUT_ERROR: Final = "InputError"
OUTPUT_ERROR: Final = "OutputError"
# The API server refused the attempt's Job for good (422 Invalid, 403 from an admission policy
# or a quota, an object we do not own in the way); the server's message is the step's.
CREATE_REJECTED: Final = "CreateRejected"
# Governance (executionPolicy.parallelism, --max-active-jobs, pendingTimeoutSeconds, Kueue).
WAITING_FOR_PARALLELISM: Final = "WaitingForParallelism"  # ready, held by the flow's own cap
WAITING_FOR_CAPACITY: Final = "WaitingForCapacity"  # ready, held by the controller's cap
JOB_SUSPENDED: Final = "JobSuspended"  # Queued: its Job is suspended (spec.suspend)
PENDING_TIMEOUT: Final = "PendingTimeout"  # its Job did not start within pendingTimeoutSeconds
# Operator requests (spec.stop, spec.retry; jobflow.requests): a stopped flow's unstarted steps
# and the flow itself end with STOPPED (Stop) or TERMINATED (Terminate, running Jobs deleted);
# a step that a retry will run again waits Pending with reason RETRIED.
STOPPED: Final = "Stopped"
TERMINATED: Final = "Terminated"
RETRIED: Final = "Retried"
# Flow reasons (the Failed condition) beyond the step reasons above.
STEP_FAILED: Final = "StepFailed"
INVALID_SPEC: Final = "InvalidSpec"
