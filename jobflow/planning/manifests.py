"""The Job of a step's attempt: its template with inputs resolved, owned and named by the flow,
with the workspace and artifact volumes mounted (jobflow.jobs, jobflow.parameters,
jobflow.artifacts do the work; this module decides what goes in)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from jobflow import artifacts, decoded, fanout, jobs, names, parameters


@dataclass(frozen=True, slots=True)
class Item:
    """A fan-out item's Job: its index, its value and its key (``step[i]``)."""

    index: int
    value: object
    key: str


def job_manifest(
    step: Mapping[str, object],
    attempt: int,
    *,
    flow: jobs.FlowRef,
    renames: jobs.Renames,
    fetch_image: str,
    sources: Callable[
        [], tuple[Mapping[str, Mapping[str, str]], Mapping[str, Mapping[str, object]]]
    ],
    labels: Mapping[str, str] | None = None,
    flow_parameters: Mapping[str, str] | None = None,
    flow_outcome: Mapping[str, str] | None = None,
    item: Item | None = None,
) -> dict[str, object]:
    """The Job for ``attempt`` of ``step`` (its raw spec); raises ParameterError when an input
    cannot be used. ``sources()`` gives what inputs are resolved from: every step's recorded
    output parameters and each step's newest Job (for JSONPath inputs); ``flow_parameters`` are
    the flow parameters in effect (jobflow.requests). ``sources`` is called only for
    a step with inputs (building them for every Job made a 2,000-step fan-out quadratic).
    ``labels`` (Kueue's, from queueName/priorityClassName) go on the Job over the template's."""
    if item is not None:
        # {{ item }} & co. on the decoded template first (jobflow.fanout), then the inputs.
        template = fanout.substitute(decoded.mapping(step.get("template")), item.value, item.index)
        job = job_manifest(
            {**step, "template": template, "withItems": None, "withParam": None},
            attempt,
            flow=flow,
            renames=renames,
            fetch_image=fetch_image,
            sources=sources,
            labels=labels,
            flow_parameters=flow_parameters,
            flow_outcome=flow_outcome,
        )
        return _as_item(job, item, flow=flow, attempt=attempt)
    if not decoded.path(step, "inputs", "parameters"):
        # No inputs: validation guarantees the template has no placeholders either.
        job = jobs.build_job(step, flow=flow, attempt=attempt, renames=renames, labels=labels)
        return artifacts.apply(job, step, flow_name=flow.name, fetch_image=fetch_image)
    outputs, latest_jobs = sources()
    inputs = parameters.resolve(
        step,
        outputs=outputs,
        jobs=latest_jobs,
        config_map_renames=renames.config_maps,
        flow_parameters=flow_parameters,
        flow_outcome=flow_outcome,
    )
    template = parameters.apply(decoded.mapping(step.get("template")), inputs)
    job = jobs.build_job(
        {**step, "template": template}, flow=flow, attempt=attempt, renames=renames, labels=labels
    )
    return artifacts.apply(job, step, flow_name=flow.name, fetch_image=fetch_image)


def _as_item(
    job: dict[str, object], item: Item, *, flow: jobs.FlowRef, attempt: int
) -> dict[str, object]:
    """The item's own name (``names.job_name`` of ``step[i]``) and its index label, on the Job
    and its pods (``kubectl logs -l workflow.kube-zen.io/item-index=3``)."""
    meta = job.get("metadata")
    if isinstance(meta, dict):
        meta["name"] = names.job_name(flow.name, flow.uid, item.key, attempt)
        labels = meta.get("labels")
        if isinstance(labels, dict):
            labels[fanout.LABEL_ITEM] = str(item.index)
    pod_meta = decoded.path(job, "spec", "template", "metadata")
    if isinstance(pod_meta, dict) and isinstance(pod_meta.get("labels"), dict):
        pod_meta["labels"][fanout.LABEL_ITEM] = str(item.index)
    return job
