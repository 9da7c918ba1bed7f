"""The Job of a step's attempt: its template with inputs resolved, owned and named by the flow,
with the workspace and artifact volumes mounted (jobflow.jobs, jobflow.parameters,
jobflow.artifacts do the work; this module decides what goes in)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from jobflow import artifacts, decoded, jobs, parameters


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
) -> dict[str, object]:
    """The Job for ``attempt`` of ``step`` (its raw spec); raises ParameterError when an input
    cannot be used. ``sources()`` gives what inputs are resolved from: every step's recorded
    output parameters and each step's newest Job (for JSONPath inputs); ``flow_parameters`` are
    the flow parameters in effect (jobflow.requests). ``sources`` is called only for
    a step with inputs (building them for every Job made a 2,000-step fan-out quadratic).
    ``labels`` (Kueue's, from queueName/priorityClassName) go on the Job over the template's."""
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
