"""batch/v1 Jobs: upstream's defaults (backoffLimit 6, completions and parallelism 1, a
generated ``controller-uid`` selector and the ``job-name``/``controller-uid`` pod-template
labels, pod spec defaults for a template with restartPolicy Never/OnFailure), validation of the
template and of the immutable fields, and kubectl's columns."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kubesim import errors, uids
from kubesim.errors import Cause
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.strategies.podspec import (
    POD_TEMPLATE_COLUMNS,
    default_pod_spec,
    validate_containers,
)
from kubesim.tables import col, field, human_duration, parse_time

TYPE = builtin_type(
    "batch",
    "v1",
    "jobs",
    "Job",
    categories=("all",),
    has_status=True,
    has_generation=True,
    description="Job represents the configuration of a single job.",
)


def _default_job(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("parallelism", 1)
    if spec.get("completionMode", "NonIndexed") == "NonIndexed":
        spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    tmeta = template.setdefault("metadata", {})
    tspec = template.setdefault("spec", {})
    if tspec.get("restartPolicy") in ("Never", "OnFailure"):
        # the template gets the pod defaults as upstream's; without a Job restartPolicy it is
        # left alone, for validation to name the missing field
        default_pod_spec(tspec)
    else:
        for c in tspec.get("containers") or []:
            if isinstance(c, dict):
                c.setdefault("terminationMessagePath", "/dev/termination-log")
                c.setdefault("terminationMessagePolicy", "File")
    if old is None and not spec.get("manualSelector"):
        # upstream generates the selector from the Job's (future) uid; we pick the uid here and
        # the Store keeps it because it never overwrites labels it did not set
        # prepare() may run more than once on one create (before and after admission): keep the
        # uid already chosen for the selector
        picked = (tmeta.get("labels") or {}).get("batch.kubernetes.io/controller-uid")
        cuid = picked or obj.setdefault("metadata", {}).get("uid") or uids.new_uid()
        obj["metadata"]["uid"] = cuid
        name = obj["metadata"].get("name", "")
        labels = tmeta.setdefault("labels", {})
        labels.setdefault("controller-uid", cuid)
        labels.setdefault("batch.kubernetes.io/controller-uid", cuid)
        if name:
            labels.setdefault("job-name", name)
            labels.setdefault("batch.kubernetes.io/job-name", name)
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": cuid}})
        if not obj["metadata"].get("labels"):
            obj["metadata"]["labels"] = dict(
                labels
            )  # upstream copies template labels to a label-less Job


def _validate_job(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    if old is not None and "spec" in old and spec is old["spec"]:
        # a status write keeps the stored (validated) spec itself: upstream's status strategy
        # validates only the status and the metadata
        return []
    tspec = ((spec.get("template") or {}).get("spec")) or {}
    causes = validate_containers(tspec.get("containers"), "spec.template.spec.containers")
    rp = tspec.get("restartPolicy")
    if rp not in ("OnFailure", "Never"):
        if rp is None:
            causes.append(
                errors.required(
                    "spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'
                )
            )
        else:
            causes.append(
                errors.not_supported("spec.template.spec.restartPolicy", rp, ["OnFailure", "Never"])
            )
    for f in (
        "backoffLimit",
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
    ):
        v = spec.get(f)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            causes.append(
                errors.invalid_value(f"spec.{f}", v, "must be greater than or equal to 0")
            )
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and ads == 0:
        causes.append(
            errors.invalid_value("spec.activeDeadlineSeconds", ads, "must be greater than 0")
        )
    if old is not None:
        old_spec = old.get("spec") or {}
        if old_spec.get("template") != spec.get("template") and not old_spec.get("suspend"):
            causes.append(errors.invalid_value("spec.template", "object", "field is immutable"))
        if old_spec.get("selector") != spec.get("selector"):
            causes.append(errors.invalid_value("spec.selector", "object", "field is immutable"))
        if old_spec.get("completions") != spec.get("completions"):
            causes.append(
                errors.invalid_value(
                    "spec.completions", spec.get("completions"), "field is immutable"
                )
            )
    return causes


def _job_status(obj: dict[str, Any]) -> str:
    for c in field(obj, "status", "conditions", default=[]) or []:
        if c.get("status") == "True" and c.get("type") in (
            "Complete",
            "Failed",
            "Suspended",
            "FailureTarget",
        ):
            kind = str(c["type"])
            return {"FailureTarget": "Failed"}.get(kind, kind)
    return "Running"


def _job_duration(obj: dict[str, Any]) -> str | None:
    start = parse_time(field(obj, "status", "startTime"))
    if start is None:
        return None
    end = parse_time(field(obj, "status", "completionTime")) or dt.datetime.now(dt.UTC)
    return human_duration((end - start).total_seconds())


class JobStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Status"), _job_status),
        (
            col("Completions"),
            lambda o: (
                f"{field(o, 'status', 'succeeded', default=0)}/{field(o, 'spec', 'completions', default=1)}"
            ),
        ),
        (col("Duration"), _job_duration),
        *POD_TEMPLATE_COLUMNS,
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_job(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_job(obj, old)

    def preset_uid(self, obj: dict[str, Any]) -> str | None:
        spec = obj.get("spec") or {}
        if spec.get("manualSelector"):
            return None
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        uid = labels.get("batch.kubernetes.io/controller-uid")
        return str(uid) if uid else None


STRATEGY = JobStrategy()
