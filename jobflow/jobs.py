"""Building the objects a flow owns (Jobs, PVCs, ConfigMaps) and reading a Job's outcome.

Invariants of every manifest built here:
- ``metadata.namespace`` is the flow's namespace, whatever the template says: nothing a flow
  declares can create objects outside its namespace.
- ``metadata.ownerReferences`` is exactly one controller reference to the flow with
  ``blockOwnerDeletion``, so deleting the flow removes everything it created.
- Job names come from ``names.job_name`` (deterministic per flow uid/step/attempt) and every
  Job and its pod template carry the flow/step/attempt/managed-by labels; user labels from the
  template or ``step.metadata`` never override ours (the controller selects Jobs by them).
- A template without ``spec.backoffLimit`` gets 0: a step's retries are its retryPolicy's, each
  visible as its own Job.
- ``spec.ttlSecondsAfterFinished`` is dropped from templates: a Job must not disappear before its
  result is read; the flow's TTL removes its Jobs.

A Job's outcome is read from its conditions (``Complete``/``Failed`` with status True), never
from the ``succeeded``/``failed`` counters, which count pods and move while the Job is still
retrying internally.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from jobflow import decoded, names

JOB_API_VERSION: Final = "batch/v1"
# Metadata the API server owns; copying it from a template would make the create fail or lie.
_SERVER_METADATA: Final = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
)


def owner_reference(flow_name: str, flow_uid: str) -> dict[str, object]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": names.KIND,
        "name": flow_name,
        "uid": flow_uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def flow_labels(flow_name: str, step: str, attempt: int) -> dict[str, str]:
    return {
        names.LABEL_FLOW: names.label_value(flow_name),
        names.LABEL_STEP: step,
        names.LABEL_ATTEMPT: str(attempt),
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
    }


@dataclass(frozen=True)
class FlowRef:
    """What every built object needs to know about the flow that owns it."""

    name: str
    namespace: str
    uid: str


def _own_metadata(meta: Mapping[str, object], *, flow: FlowRef, name: str) -> dict[str, object]:
    out = {k: v for k, v in decoded.thaw(meta).items() if k not in _SERVER_METADATA}
    out["name"] = name
    out["namespace"] = flow.namespace
    out["ownerReferences"] = [owner_reference(flow.name, flow.uid)]
    return out


def resource_objects(
    resource_templates: Mapping[str, object], *, flow: FlowRef
) -> list[dict[str, object]]:
    """The PVCs, then the ConfigMaps, of ``spec.resourceTemplates``, ready to create."""
    out: list[dict[str, object]] = []
    for key, api_version, kind in (
        ("volumeClaimTemplates", "v1", "PersistentVolumeClaim"),
        ("configMapTemplates", "v1", "ConfigMap"),
    ):
        for template in decoded.items(resource_templates.get(key)):
            meta = decoded.mapping(template.get("metadata"))
            short = decoded.string(meta.get("name"))
            if not short:
                continue  # validation reports it; nothing sensible to create
            obj = {k: v for k, v in decoded.thaw(template).items() if k != "status"}
            obj["apiVersion"] = api_version
            obj["kind"] = kind
            own = _own_metadata(meta, flow=flow, name=names.resource_name(flow.name, short))
            own["labels"] = {
                **decoded.string_map(meta.get("labels")),
                names.LABEL_FLOW: names.label_value(flow.name),
                names.LABEL_MANAGED_BY: names.MANAGED_BY,
            }
            obj["metadata"] = own
            out.append(obj)
    return out


def resource_renames(resource_templates: Mapping[str, object], flow_name: str) -> Renames:
    """Template name -> real object name, per kind, for rewriting Job templates."""
    claims: dict[str, str] = {}
    config_maps: dict[str, str] = {}
    for key, target in (("volumeClaimTemplates", claims), ("configMapTemplates", config_maps)):
        for template in decoded.items(resource_templates.get(key)):
            short = decoded.string(decoded.path(template, "metadata", "name"))
            if short:
                target[short] = names.resource_name(flow_name, short)
    return Renames(claims=claims, config_maps=config_maps)


@dataclass(frozen=True)
class Renames:
    claims: Mapping[str, str]
    config_maps: Mapping[str, str]

    def is_empty(self) -> bool:
        return not self.claims and not self.config_maps


def _rename(obj: object, key: str, table: Mapping[str, str]) -> None:
    if isinstance(obj, dict):
        current = obj.get(key)
        if isinstance(current, str) and current in table:
            obj[key] = table[current]


def _rewrite_containers(containers: object, renames: Renames) -> None:
    if not isinstance(containers, list):
        return
    for container in containers:
        if not isinstance(container, dict):
            continue
        env_from = container.get("envFrom")
        if isinstance(env_from, list):
            for source in env_from:
                if isinstance(source, dict):
                    _rename(source.get("configMapRef"), "name", renames.config_maps)
        env = container.get("env")
        if isinstance(env, list):
            for var in env:
                value_from = var.get("valueFrom") if isinstance(var, dict) else None
                if isinstance(value_from, dict):
                    _rename(value_from.get("configMapKeyRef"), "name", renames.config_maps)


def rewrite_references(pod_spec: dict[str, object], renames: Renames) -> None:
    """Point the pod's references to resourceTemplates names at the real ``<flow>-<name>``.

    Covers volumes (persistentVolumeClaim.claimName, configMap.name, projected configMap
    sources) and containers/initContainers (envFrom configMapRef, env configMapKeyRef). Names
    that are not resourceTemplates are left alone: they may be the user's own objects.
    """
    volumes = pod_spec.get("volumes")
    if isinstance(volumes, list):
        for volume in volumes:
            if not isinstance(volume, dict):
                continue
            _rename(volume.get("persistentVolumeClaim"), "claimName", renames.claims)
            _rename(volume.get("configMap"), "name", renames.config_maps)
            projected = volume.get("projected")
            sources = projected.get("sources") if isinstance(projected, dict) else None
            if isinstance(sources, list):
                for source in sources:
                    if isinstance(source, dict):
                        _rename(source.get("configMap"), "name", renames.config_maps)
    for key in ("containers", "initContainers"):
        _rewrite_containers(pod_spec.get(key), renames)


def build_job(
    step: Mapping[str, object],
    *,
    flow: FlowRef,
    attempt: int,
    renames: Renames,
    labels: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The batch/v1 Job manifest for ``attempt`` (0-based) of a Job ``step``; ``labels`` go on
    the Job (not its pods) over the template's (Kueue's queue and priority labels)."""
    step_name = decoded.string(step.get("name")) or ""
    template = decoded.mapping(step.get("template"))
    job = {k: v for k, v in decoded.thaw(template).items() if k != "status"}
    ours = flow_labels(flow.name, step_name, attempt)
    step_meta = decoded.mapping(step.get("metadata"))
    template_meta = decoded.mapping(template.get("metadata"))

    meta = _own_metadata(
        template_meta, flow=flow, name=names.job_name(flow.name, flow.uid, step_name, attempt)
    )
    # Our labels are applied last: the controller finds its Jobs by them (the seed let
    # step.metadata.labels override them).
    meta["labels"] = {
        **decoded.string_map(template_meta.get("labels")),
        **decoded.string_map(step_meta.get("labels")),
        **(labels or {}),
        **ours,
    }
    annotations = {
        **decoded.string_map(template_meta.get("annotations")),
        **decoded.string_map(step_meta.get("annotations")),
    }
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    job["apiVersion"] = JOB_API_VERSION
    job["kind"] = "Job"
    job["metadata"] = meta

    # ``job`` is already a deep copy of the template: edit its parts in place.
    spec = job.get("spec")
    if not isinstance(spec, dict):
        spec = {}
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 0
    # A Job that deletes itself when done can vanish before the controller reads its result,
    # and a Running step whose Job is missing gets it re-created (the same attempt would run
    # twice). The flow's own ttlSecondsAfterFinished removes its Jobs through owner references.
    spec.pop("ttlSecondsAfterFinished", None)
    pod_template = spec.get("template")
    if not isinstance(pod_template, dict):
        pod_template = {}
    pod_meta = decoded.mapping(pod_template.get("metadata"))
    pod_meta_out = {k: v for k, v in pod_meta.items() if k not in ("name", "namespace")}
    pod_meta_out["labels"] = {**decoded.string_map(pod_meta.get("labels")), **ours}
    pod_template["metadata"] = pod_meta_out
    pod_spec = pod_template.get("spec")
    if isinstance(pod_spec, dict):
        rewrite_references(pod_spec, renames)
    spec["template"] = pod_template
    job["spec"] = spec
    return job


# --- reading a Job --------------------------------------------------------------------------

JobState = Literal["running", "succeeded", "failed"]


@dataclass(frozen=True)
class JobOutcome:
    state: JobState
    finished_at: datetime | None  # when the terminal condition became true
    reason: str | None  # the terminal condition's reason (e.g. BackoffLimitExceeded)
    message: str | None


def _condition(job: Mapping[str, object], kind: str) -> Mapping[str, object] | None:
    for cond in decoded.items(decoded.path(job, "status", "conditions")):
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_outcome(job: Mapping[str, object]) -> JobOutcome:
    """Terminal state from the Job's ``Complete``/``Failed`` conditions (never counters)."""
    for kind, state in (("Complete", "succeeded"), ("Failed", "failed")):
        cond = _condition(job, kind)
        if cond is None:
            continue
        at = decoded.parse_time(cond.get("lastTransitionTime")) or decoded.parse_time(
            decoded.path(job, "status", "completionTime")
        )
        outcome_state: JobState = "succeeded" if state == "succeeded" else "failed"
        return JobOutcome(
            state=outcome_state,
            finished_at=decoded.truncate(at) if at else None,
            reason=decoded.string(cond.get("reason")),
            message=decoded.string(cond.get("message")),
        )
    return JobOutcome(state="running", finished_at=None, reason=None, message=None)


def job_labels(job: Mapping[str, object]) -> dict[str, str]:
    return decoded.string_map(decoded.path(job, "metadata", "labels"))


def job_attempt(job: Mapping[str, object]) -> int | None:
    """The attempt index from the attempt label; None if absent or not a number."""
    return attempt_of(job_labels(job))


def attempt_of(labels: Mapping[str, str]) -> int | None:
    """``job_attempt`` from labels already read (``job_labels``)."""
    text = labels.get(names.LABEL_ATTEMPT)
    if text is None or not text.isdigit():
        return None
    return int(text)


@dataclass(frozen=True)
class ObservedJob:
    """A Job of this flow as the runtime sees it, plus what it read from the Job's pods."""

    job: Mapping[str, object]  # the batch/v1 Job JSON from the watch cache
    exit_code: int | None = None  # the failed pod's container exit code, when read
    termination_message: str | None = None  # that container's termination message
    # Set when the exit code and message are an init container's: the pod failed before the
    # step's own containers ran (an http input artifact's download, or the template's own).
    failed_init_container: str | None = None
    # True once the runtime looked at the pods, even if it found no exit code or message (pods
    # already gone): the planner then stops asking for them and decides without.
    pod_details_read: bool = False


# --- a Job waiting in a queue (Kueue, or pods that cannot start) ---------------------------


def is_suspended(job: Mapping[str, object]) -> bool:
    """The Job is held: ``spec.suspend`` is true (Kueue's webhook sets it on create and again on
    preemption; the Job controller then removes its pods) or the Job controller still says
    ``Suspended=True``. Whoever suspended it, zen-flow never flips it."""
    if decoded.boolean(decoded.path(job, "spec", "suspend")):
        return True
    cond = _condition(job, "Suspended")
    return cond is not None


def _suspended_transition(job: Mapping[str, object]) -> datetime | None:
    """When the Job's ``Suspended`` condition last changed (suspended or resumed), if it has one."""
    for cond in decoded.items(decoded.path(job, "status", "conditions")):
        if cond.get("type") == "Suspended":
            at = decoded.parse_time(cond.get("lastTransitionTime"))
            return decoded.truncate(at) if at else None
    return None


def waiting_since(job: Mapping[str, object] | None, created: datetime) -> datetime:
    """Since when the attempt has waited to run: its Job's creation (``created``: the step's
    start), or the last suspension or resumption of its Job when later (a Job preempted after
    it ran waits again from then; a resumed Job's pods get a fresh budget to start)."""
    changed = _suspended_transition(job) if job is not None else None
    return max(created, changed) if changed is not None else created


def has_run(job: Mapping[str, object]) -> bool:
    """A pod of the Job has run: one is ready, or one finished (either way), or it ended."""
    status = decoded.mapping(job.get("status"))
    counted = any(
        (decoded.integer(status.get(k)) or 0) > 0 for k in ("ready", "succeeded", "failed")
    )
    return counted or job_outcome(job).state != "running"


def started_at(job: Mapping[str, object]) -> datetime | None:
    """``status.startTime``: when the Job controller started the Job, i.e. admitted it (unset
    while suspended; reset when a suspended Job is resumed)."""
    at = decoded.parse_time(decoded.path(job, "status", "startTime"))
    return decoded.truncate(at) if at else None
