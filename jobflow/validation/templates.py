"""Checks of a Job step's template: the batch/v1 Job and its pod spec, the containers and their
resources, and the ``{{ parameters.<name> }}`` placeholders (each must name an input).

Hot path (every Job step of a big flow): a valid container is recognised without building a
path, and the step's path is formatted only when a problem needs it (``StepPath``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from jobflow import decoded, names, parameters, quantities
from jobflow.validation.context import Context


class StepPath:
    """``spec.steps[i]``, formatted only when a problem needs it (hot path of big flows)."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __format__(self, spec: str) -> str:
        return f"spec.steps[{self.index}]"


def _format_path(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def check_template(ctx: Context, template: Mapping[str, object], index: int) -> None:
    step_path = StepPath(index)
    get = template.get
    kind = get("kind")
    if kind != "Job":
        ctx.add(
            "invalid-template-kind",
            f"{step_path}.template.kind",
            f"must be 'Job'; got {kind!r}",
        )
    api_version = get("apiVersion")
    if api_version is not None and api_version != "batch/v1":
        ctx.add(
            "invalid-template-api-version",
            f"{step_path}.template.apiVersion",
            f"must be 'batch/v1' (or omitted); got {api_version!r}",
        )
    job_spec = decoded.mapping_or_none(get("spec"))
    if job_spec is None:
        ctx.add("invalid-template", f"{step_path}.template.spec", "the Job needs a spec")
        return
    raw_limit = job_spec.get("backoffLimit")
    if raw_limit is not None:
        limit = decoded.strict_integer(raw_limit)
        if limit is None or limit < 0:
            ctx.add(
                "invalid-job-backoff-limit",
                f"{step_path}.template.spec.backoffLimit",
                f"must be an integer >= 0; got {raw_limit!r}",
            )
    raw_deadline = job_spec.get("activeDeadlineSeconds")
    if raw_deadline is not None:
        deadline = decoded.strict_integer(raw_deadline)
        if deadline is None or deadline <= 0:
            ctx.add(
                "invalid-job-active-deadline",
                f"{step_path}.template.spec.activeDeadlineSeconds",
                f"must be an integer > 0; got {raw_deadline!r}",
            )
    pod_template = decoded.mapping_or_none(job_spec.get("template"))
    pod = decoded.mapping_or_none(pod_template.get("spec")) if pod_template is not None else None
    if pod is None:
        ctx.add(
            "invalid-template",
            f"{step_path}.template.spec.template.spec",
            "the Job template needs spec.template.spec (a pod spec with containers)",
        )
        return
    restart = pod.get("restartPolicy")
    if restart != "Never" and restart != "OnFailure":
        got = "it is missing" if restart is None else f"got {restart!r}"
        ctx.add(
            "invalid-restart-policy",
            f"{step_path}.template.spec.template.spec.restartPolicy",
            f"a Job's pods need restartPolicy Never or OnFailure; {got}",
        )
    containers = pod.get("containers")
    if not containers:
        ctx.add(
            "containers-required",
            f"{step_path}.template.spec.template.spec.containers",
            "the pod spec needs at least one container (name and image)",
        )
    init = pod.get("initContainers")
    for field, items in (("containers", containers), ("initContainers", init)):
        if not isinstance(items, list):
            continue  # not a list: the shape check reports it
        for i, container in enumerate(items):
            if isinstance(container, decoded.OBJECT_TYPES):
                check_container(ctx, container, step_path, field, i)


def check_placeholders(
    ctx: Context, step: Mapping[str, object], template: Mapping[str, object], index: int
) -> None:
    """Every ``{{ parameters.<name> }}`` in the template names an input of the step.

    The pattern is the planner's own (``parameters.PLACEHOLDER``): what is checked here is
    exactly what gets substituted.
    """
    inputs = decoded.mapping_or_none(step.get("inputs"))
    declared: set[str] = set()
    params = decoded.list_or_none(inputs.get("parameters")) if inputs is not None else None
    for item in params or []:
        entry = decoded.mapping_or_none(item)
        name = decoded.string(entry.get("name")) if entry is not None else None
        if name is not None:
            declared.add(name)
    stack: list[tuple[object, tuple[str | int, ...]]] = [(template, ())]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            if "{{" not in node:
                continue
            for match in parameters.PLACEHOLDER.finditer(node):
                if match.group(1) not in declared:
                    ctx.add(
                        "unknown-parameter-reference",
                        f"spec.steps[{index}].template{_format_path(where)}",
                        f"{match.group(0)!r} names no input parameter of this step; declare"
                        f" {match.group(1)!r} in inputs.parameters",
                    )
        elif isinstance(node, dict):
            stack.extend((value, (*where, key)) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((value, (*where, i)) for i, value in reversed(list(enumerate(node))))


def check_container(
    ctx: Context, container: Mapping[str, object], step_path: StepPath, field: str, index: int
) -> None:
    name = container.get("name")
    image = container.get("image")
    resources = container.get("resources")
    if (
        isinstance(name, str)
        and isinstance(image, str)
        and image.strip()
        and resources is None
        and names.is_dns1123_label(name)
    ):
        return  # the common case, checked without building a path
    path = f"{step_path}.template.spec.template.spec.{field}[{index}]"
    if not isinstance(name, str) or not name:
        ctx.add("container-name-required", f"{path}.name", "each container needs a name")
    elif not names.is_dns1123_label(name):
        ctx.add(
            "invalid-container-name",
            f"{path}.name",
            f"{name!r} is not a valid container name (DNS-1123 label)",
        )
    if not isinstance(image, str) or not image.strip():
        ctx.add("container-image-required", f"{path}.image", "each container needs an image")
    resources_map = decoded.mapping_or_none(resources)
    if resources_map is not None:
        check_resources(ctx, resources_map, f"{path}.resources")


def check_resources(ctx: Context, resources: Mapping[str, object], path: str) -> None:
    parsed: dict[str, dict[str, Decimal]] = {}
    for part in ("requests", "limits"):
        table = decoded.mapping_or_none(resources.get(part))
        parsed[part] = {}
        if table is None:
            continue
        for resource, raw in table.items():
            amount = quantities.parse_quantity(raw)
            if amount is None or amount <= 0:
                ctx.add(
                    "invalid-resource-quantity",
                    f"{path}.{part}.{resource}",
                    f"must be a positive quantity such as 500m or 1Gi; got {raw!r}",
                )
            else:
                parsed[part][resource] = amount
    for resource, limit in parsed["limits"].items():
        request = parsed["requests"].get(resource)
        if request is not None and limit < request:
            ctx.add(
                "limit-below-request",
                f"{path}.limits.{resource}",
                f"the {resource} limit is below its request",
            )
