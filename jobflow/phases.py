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
# Operator requests (spec.stop, spec.retry; jobflow.requests): a stopped flow's unstarted steps
# and the flow itself end with STOPPED (Stop) or TERMINATED (Terminate, running Jobs deleted);
# a step that a retry will run again waits Pending with reason RETRIED.
STOPPED: Final = "Stopped"
TERMINATED: Final = "Terminated"
RETRIED: Final = "Retried"
# Flow reasons (the Failed condition) beyond the step reasons above.
STEP_FAILED: Final = "StepFailed"
INVALID_SPEC: Final = "InvalidSpec"
