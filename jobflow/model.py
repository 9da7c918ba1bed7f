"""The JobFlow API (``workflow.kube-zen.io/v1alpha1``) as pydantic v2 models.

These models are the single description of the API: the CRD schema is generated from them
(``jobflow.crd``), the validation layer uses their field sets to report unknown fields, and the
CLI/controller may use them as a typed view of a flow.

Wire rules:
- Field names are camelCase on the wire (``alias_generator``) and snake_case in Python
  (``populate_by_name``). Dump with ``model_dump(by_alias=True, exclude_none=True, mode="json")``
  so a round trip gives back what came in: optional fields default to ``None``, never to ``[]``.
- Spec structures forbid unknown fields (a typo such as ``dependsOn`` is a user's mistake that
  must be reported with its path). Embedded Kubernetes objects (``steps[].template``, the
  resourceTemplates items, ``metadata``) are kept whole as JSON.
- Status structures are an observation written by the controller; they accept and keep unknown
  fields (and the CRD preserves them) so a newer controller's status is never pruned or
  rejected by an older schema (the seed lost ``jobRef`` and outputs to pruning).
- Enumerations are ``StrEnum``s; the CRD enums are generated from them, so every phase a
  controller can write is accepted by the API server.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, Strict
from pydantic.alias_generators import to_camel

# Re-exported: the model (and the CRD generated from it) uses the one set of phases and the
# value sets that jobflow.spec reads.
from jobflow.phases import (  # noqa: F401
    TERMINAL_FLOW_PHASES,
    TERMINAL_STEP_PHASES,
    FlowPhase,
    StepPhase,
)
from jobflow.spec import (
    BackoffType,
    ConcurrencyPolicy,
    ExitCodeOperator,
    PodFailureAction,
    StepType,
    StopMode,
)

# Embedded Kubernetes objects are kept whole and not validated here (jobflow.validation checks the
# parts that matter); ``object`` keeps pydantic from walking them, which is most of a flow.
JsonObject = dict[str, object]

_E = TypeVar("_E")
# Models are strict (no "5" for 5, no 1 for true: the API server would refuse those too),
# except enumerations, which arrive as plain strings from decoded JSON.
Lax = Annotated[_E, Strict(False)]


class OutcomeField(StrEnum):
    PHASE = "phase"
    FAILED_STEPS = "failedSteps"


class ArchiveFormat(StrEnum):
    TAR = "tar"
    ZIP = "zip"


class ArchiveCompression(StrEnum):
    NONE = "none"
    GZIP = "gzip"


class OnTimeout(StrEnum):
    REJECT = "Reject"
    APPROVE = "Approve"


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    ACCEPTED = "Accepted"
    PROGRESSING = "Progressing"
    COMPLETE = "Complete"
    FAILED = "Failed"
    AWAITING_APPROVAL = "AwaitingApproval"
    QUEUED = "Queued"


class SpecModel(BaseModel):
    """Base of every spec structure: camelCase on the wire, unknown fields are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
    )


class StatusModel(BaseModel):
    """Base of every status structure: camelCase on the wire, unknown fields kept."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", strict=True
    )


# --- spec.executionPolicy ------------------------------------------------------------------


class OnExitCodes(SpecModel):
    container_name: str | None = Field(
        default=None, description="Container whose exit code is compared (default main)."
    )
    operator: Lax[ExitCodeOperator]
    values: list[int] = Field(description="Exit codes, each 0..255.")


class PodFailurePolicyRule(SpecModel):
    action: Lax[PodFailureAction]
    on_exit_codes: OnExitCodes


class PodFailurePolicy(SpecModel):
    rules: list[PodFailurePolicyRule]


class ExecutionPolicy(SpecModel):
    concurrency_policy: Lax[ConcurrencyPolicy] | None = Field(
        default=None, description="Allow, Forbid (default) or Replace, within concurrencyKey."
    )
    concurrency_key: str | None = Field(
        default=None,
        description="Flows of one namespace sharing this key form one concurrency group.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, description="Delete the flow this long after completionTime (86400)."
    )
    pod_failure_policy: PodFailurePolicy | None = None
    backoff_limit: int | None = Field(
        default=None, description="Cap on the sum of retries over all steps (default 6)."
    )
    active_deadline_seconds: int | None = Field(
        default=None, description="The flow fails (DeadlineExceeded) this long after start."
    )
    parallelism: int | None = Field(
        default=None,
        description="At most this many steps of the flow have a Job at once (Running or "
        "Queued); ready steps beyond it stay Pending (reason WaitingForParallelism) and start "
        "in spec order as slots free. Unset: no limit.",
    )
    pending_timeout_seconds: int | None = Field(
        default=None,
        description="Default pendingTimeoutSeconds of every step that sets none.",
    )


# --- spec.resourceTemplates ----------------------------------------------------------------


class ResourceTemplates(SpecModel):
    volume_claim_templates: list[JsonObject] | None = Field(
        default=None, description="PersistentVolumeClaims created as <flow>-<metadata.name>."
    )
    config_map_templates: list[JsonObject] | None = Field(
        default=None, description="ConfigMaps created as <flow>-<metadata.name>."
    )


# --- spec.steps[] --------------------------------------------------------------------------


class StepMetadata(SpecModel):
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Backoff(SpecModel):
    type: Lax[BackoffType] | None = None
    factor: float | None = Field(default=None, description="Exponential factor (default 2.0).")
    duration: str | None = Field(default=None, description="Go duration, e.g. 10s or 1m30s.")


class RetryPolicy(SpecModel):
    limit: int | None = Field(default=None, description="Retries after the first attempt (3).")
    backoff: Backoff | None = None


class KeySelector(SpecModel):
    name: str
    key: str
    optional: bool | None = None


class StepOutputRef(SpecModel):
    """An output parameter of another step (an ancestor of the consuming step)."""

    step: str
    parameter: str


class ParameterValueFrom(SpecModel):
    """Exactly one source. ``jsonPath`` is the seed's ``<step>:$.expr`` into that step's Job."""

    json_path: str | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None
    step_output_ref: StepOutputRef | None = None
    flow_parameter: str | None = Field(
        default=None,
        description="The value of spec.parameters[name] in effect for this run (its default, "
        "or what `zen-flow run -p` or a retry request set).",
    )
    flow_outcome: Lax[OutcomeField] | None = Field(
        default=None,
        description="spec.finally steps only: how spec.steps ended, phase (Succeeded or "
        "Failed) or failedSteps (a JSON list of step names).",
    )


class InputParameter(SpecModel):
    name: str
    value: str | None = None
    value_from: ParameterValueFrom | None = None


class HttpSource(SpecModel):
    url: str
    headers: dict[str, str] | None = None


class InputArtifact(SpecModel):
    name: str
    from_: str | None = Field(default=None, alias="from", description="<step>[/<artifact>]")
    path: str | None = None
    http: HttpSource | None = None


class OutputValueFrom(SpecModel):
    json_path: str | None = Field(default=None, description="JSONPath into the step's own Job.")
    termination_message_key: str | None = Field(
        default=None,
        description="Key in the container's termination message (key=value lines or JSON).",
    )


class OutputParameter(SpecModel):
    name: str
    value_from: OutputValueFrom | None = Field(
        default=None,
        description="Absent: the termination-message key of the same name as the parameter.",
    )
    optional: bool | None = Field(
        default=None, description="A missing value leaves the parameter unset instead of failing."
    )


class Archive(SpecModel):
    format: Lax[ArchiveFormat] | None = None
    compression: Lax[ArchiveCompression] | None = None


class SecretRef(SpecModel):
    name: str
    key: str | None = None


class S3Location(SpecModel):
    endpoint: str | None = None
    bucket: str | None = None
    key: str | None = None
    access_key_id_secret_ref: SecretRef | None = Field(default=None, alias="accessKeyIDSecretRef")
    secret_access_key_secret_ref: SecretRef | None = None


class OutputArtifact(SpecModel):
    name: str
    path: str
    optional: bool | None = None
    archive: Archive | None = None
    s3: S3Location | None = None


class StepInputs(SpecModel):
    parameters: list[InputParameter] | None = None
    artifacts: list[InputArtifact] | None = None


class StepOutputs(SpecModel):
    parameters: list[OutputParameter] | None = None
    artifacts: list[OutputArtifact] | None = None


class Approvers(SpecModel):
    """Who may approve or reject: a user in users or a member of one of groups; none: anyone."""

    # Users and groups as the API server authenticated the request (request.userInfo); with
    # neither, anyone who may update the flow decides (RBAC).

    users: list[str] | None = Field(default=None, description="User names (request.userInfo).")
    groups: list[str] | None = Field(default=None, description="Group names (request.userInfo).")


class ApprovalInput(SpecModel):
    """A value given at approval (zen-flow approve -p NAME=VALUE): an output parameter."""

    name: str = Field(description="DNS-1123 subdomain, unique within the step.")
    description: str | None = None
    default: str | None = Field(
        default=None, description="Used when no approver gives it; absent: the input is required."
    )
    enum: list[str] | None = Field(default=None, description="The values allowed.")


class ApprovalPolicy(SpecModel):
    """Who must approve a Manual step, how many, until when, and what they give."""

    # Decisions are recorded by the admission webhook with the requesting user and time
    # (annotation approvals.workflow.kube-zen.io/<step>; jobflow.approvals) and shown in
    # status.steps[].approvedBy / rejectedBy.

    approvers: Approvers | None = None
    required: int | None = Field(
        default=None,
        description="Distinct approving users needed (default 1; the same user twice counts once).",
    )
    allow_creator: bool | None = Field(
        default=None,
        description="false: the user who created the flow may not approve this step (they may "
        "reject). Default true; the creator then counts as one approver at most.",
    )
    timeout_seconds: int | None = Field(
        default=None,
        description="Seconds (at most 30 days) from when the step began waiting; past it "
        "onTimeout applies with reason ApprovalTimeout.",
    )
    on_timeout: Lax[OnTimeout] | None = Field(
        default=None, description="Reject (default: the step fails) or Approve (it succeeds)."
    )
    inputs: list[ApprovalInput] | None = Field(
        default=None, description="Values approvers give; each becomes an output parameter."
    )


class Step(SpecModel):
    name: str = Field(description="DNS-1123 label, unique within the flow.")
    type: Lax[StepType] | None = Field(default=None, description="Job (default) or Manual.")
    message: str | None = Field(default=None, description="Shown while a Manual step waits.")
    approval: ApprovalPolicy | None = Field(
        default=None,
        description="Manual steps: who may approve, how many must, timeout, inputs "
        "(docs/approvals.md).",
    )
    metadata: StepMetadata | None = None
    dependencies: list[str] | None = None
    retry_policy: RetryPolicy | None = None
    timeout_seconds: int | None = Field(
        default=None,
        description="Run timeout, at most 30 days, counted from when the step's Job started "
        "(admitted), never while it is suspended or queued: past it the Job is deleted and "
        "the attempt fails (Timeout; retries apply).",
    )
    pending_timeout_seconds: int | None = Field(
        default=None,
        description="Queue timeout, at most 30 days: how long the step's Job may wait before a "
        "pod of it runs (suspended by Kueue, unschedulable or pending pods), from its creation "
        "or last suspension. Past it the Job is deleted and the attempt fails "
        "(PendingTimeout; retries apply). Default: executionPolicy.pendingTimeoutSeconds.",
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue for this step's Jobs (label kueue.x-k8s.io/queue-name); "
        "overrides spec.queueName.",
    )
    priority_class_name: str | None = Field(
        default=None,
        description="Kueue WorkloadPriorityClass for this step's Jobs (label "
        "kueue.x-k8s.io/priority-class); overrides spec.priorityClassName.",
    )
    when: str | None = Field(
        default=None, description="always|never|true|false or a CEL expression over ancestors."
    )
    continue_on_failure: bool | None = None
    template: JsonObject | None = Field(
        default=None, description="A full batch/v1 Job manifest (Job steps only)."
    )
    inputs: StepInputs | None = None
    outputs: StepOutputs | None = None
    with_items: list[JsonValue] | None = Field(
        default=None,
        description="Fan-out: one Job per item (strings, numbers or objects, at most 1,000). "
        "The template reads {{ item }}, {{ item.<field> }} (object items) and {{ item.index }}; "
        "each item has its own attempts and retries; the step succeeds when every item does.",
    )
    with_param: StepOutputRef | None = Field(
        default=None,
        description="Fan-out over a JSON list held by an output parameter of an ancestor step "
        "(read when this step starts); the items are as for withItems.",
    )
    parallelism: int | None = Field(
        default=None,
        description="Fan-out only: at most this many items of the step have a Job at once "
        "(executionPolicy.parallelism and the controller's cap still apply).",
    )


class Workspace(SpecModel):
    volume_claim_template: JsonObject = Field(
        description="A PersistentVolumeClaim (spec, optional metadata) created as "
        "<flow>-workspace with the flow; artifacts live in it under <flow>/<step>/<artifact>."
    )


class FlowParameter(SpecModel):
    name: str = Field(description="DNS-1123 subdomain, unique within the flow.")
    value: str = Field(
        description="The default value (`zen-flow run -p NAME=VALUE` sets it at submit; a "
        "retry request may override it for the steps it runs again)."
    )
    description: str | None = None


class RetryRequest(SpecModel):
    """Run the flow again from its failed steps, once per id (the controller records the id it
    acted on in status.requests.retry)."""

    id: str = Field(description="A new value (1-63 characters) makes a new request.")
    steps: list[str] | None = Field(
        default=None,
        description="Run these steps and everything downstream of them again; absent: every "
        "Failed and Skipped step.",
    )
    parameters: dict[str, str] | None = Field(
        default=None,
        description="New values of spec.parameters for the steps that run again.",
    )
    requested_by: str | None = Field(
        default=None, description="Set by the admission webhook from the request's user."
    )


class StopRequest(SpecModel):
    """Stop the flow once per id: Stop starts nothing new and lets running steps finish;
    Terminate also deletes the running Jobs and their pods now. Both end Failed."""

    id: str = Field(description="A new value (1-63 characters) makes a new request.")
    mode: Lax[StopMode] | None = Field(default=None, description="Stop (default) or Terminate.")
    requested_by: str | None = Field(
        default=None, description="Set by the admission webhook from the request's user."
    )


class JobFlowSpec(SpecModel):
    execution_policy: ExecutionPolicy | None = None
    suspend: bool | None = Field(
        default=None,
        description="Start no new steps while true (running and queued Jobs are left as they "
        "are; zen-flow never changes a Job's own spec.suspend).",
    )
    queue_name: str | None = Field(
        default=None,
        description="Kueue LocalQueue of every step's Jobs (label kueue.x-k8s.io/queue-name): "
        "Kueue admits each Job on its own, so a started flow may wait mid-DAG for quota.",
    )
    priority_class_name: str | None = Field(
        default=None,
        description="Kueue WorkloadPriorityClass of every step's Jobs (label "
        "kueue.x-k8s.io/priority-class).",
    )
    parameters: list[FlowParameter] | None = Field(
        default=None,
        description="Flow parameters: steps take them as inputs (valueFrom.flowParameter) and "
        "`when` reads flow.parameters['<name>'].",
    )
    retry: RetryRequest | None = None
    stop: StopRequest | None = None
    resource_templates: ResourceTemplates | None = None
    workspace: Workspace | None = Field(
        default=None, description="The shared volume that carries artifacts between steps."
    )
    steps: list[Step]
    finally_: list[Step] | None = Field(
        default=None,
        alias="finally",
        description="Steps that start once every step of spec.steps has ended, whatever the "
        "outcome (failure, activeDeadlineSeconds, a Stop request); they may depend on each "
        "other only, read the outcome as flow.phase / flow.failedSteps, and a failing one fails "
        "a flow that would otherwise succeed. Terminate skips them (their Jobs are deleted).",
    )


# --- status --------------------------------------------------------------------------------


class Condition(StatusModel):
    type: str
    status: Lax[ConditionStatus]
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None
    observed_generation: int | None = None


class JobRef(StatusModel):
    name: str
    namespace: str | None = None
    uid: str | None = None


class ArtifactStatus(StatusModel):
    name: str
    path: str | None = None


class StepOutputsStatus(StatusModel):
    parameters: dict[str, str] | None = None
    artifacts: list[ArtifactStatus] | None = None


class Decision(StatusModel):
    user: str = Field(description="The user, as the API server authenticated the request.")
    time: str | None = Field(default=None, description="When the webhook recorded it.")


class ItemsStatus(StatusModel):
    """A fan-out's items in a compact form: one character per item in ``phases`` (P pending,
    R running, Q queued, B waiting to retry, S succeeded, F failed, K skipped) plus entries
    only for the items whose attempts, timers or failure cannot be read from that character."""

    count: int = 0
    phases: str | None = None
    first_attempt: int | None = Field(
        default=None, description="The attempt number the current run of the items began at."
    )
    detail: list[dict[str, object]] | None = Field(
        default=None, description="Items with more than their phase to remember."
    )


class StepStatus(StatusModel):
    name: str
    phase: Lax[StepPhase]
    attempts: int | None = Field(default=None, description="Jobs created so far.")
    first_attempt: int | None = Field(
        default=None,
        description="Attempts before the current run of the step (set when a retry request "
        "ran it again; its attempts keep their numbering).",
    )
    retries: int | None = Field(default=None, description="Attempts counted as retries.")
    next_attempt_time: str | None = Field(
        default=None, description="When the next attempt starts (after a retry delay)."
    )
    job_ref: JobRef | None = None
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    outputs: StepOutputsStatus | None = None
    approved_by: list[Decision] | None = Field(
        default=None,
        description="Who approved this Manual step and when, as the admission webhook recorded.",
    )
    rejected_by: Decision | None = Field(default=None, description="Who rejected it, and when.")
    finally_: bool | None = Field(
        default=None, alias="finally", description="A step of spec.finally."
    )
    items: ItemsStatus | None = Field(
        default=None, description="A fan-out's items, summarised (jobflow.fanout)."
    )


class Progress(StatusModel):
    completed: int = 0
    total: int = 0
    succeeded: int | None = None
    failed: int | None = None
    skipped: int | None = None
    display: str | None = Field(default=None, description='"done/total" for kubectl get.')


class HandledRequests(StatusModel):
    retry: str | None = Field(default=None, description="Id of the last retry acted on.")
    stop: str | None = Field(default=None, description="Id of the last stop acted on.")


class HistoryEntry(StatusModel):
    type: str = Field(description="Run, Retry, Stop or Terminate.")
    id: str | None = None
    time: str | None = None
    requested_by: str | None = None
    steps: list[str] | None = Field(default=None, description="The steps it ran again.")
    parameters: dict[str, str] | None = None
    message: str | None = None


class FlowOutcome(StatusModel):
    phase: str | None = None
    reason: str | None = None
    message: str | None = None
    failed_steps: list[str] | None = None


class JobFlowStatus(StatusModel):
    phase: Lax[FlowPhase] | None = None
    observed_generation: int | None = None
    start_time: str | None = Field(default=None, description="When the current run started.")
    completion_time: str | None = None
    parameters: dict[str, str] | None = Field(
        default=None, description="The flow parameters in effect for this run."
    )
    requests: HandledRequests | None = None
    stop: HistoryEntry | None = Field(
        default=None, description="The stop request in effect for this run (a retry clears it)."
    )
    history: list[HistoryEntry] | None = Field(
        default=None, description="Runs, retries and stops of this flow, oldest first."
    )
    steps: list[StepStatus] | None = None
    outcome: FlowOutcome | None = Field(
        default=None,
        description="How spec.steps ended, while spec.finally steps run (what they read as "
        "flow.phase and flow.failedSteps).",
    )
    progress: Progress | None = None
    conditions: list[Condition] | None = None


class JobFlow(SpecModel):
    api_version: str = "workflow.kube-zen.io/v1alpha1"
    kind: str = "JobFlow"
    metadata: JsonObject | None = None
    spec: JobFlowSpec
    status: JobFlowStatus | None = None
