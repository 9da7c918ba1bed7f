"""Checks of the step list: the budget, names, dependencies and cycles (the graph), each step's
kind and template, and the other step fields (labels, timeout, retryPolicy, ``when``, data).

One loop over the steps does the per-step work that needs no graph (shape, kind, template,
name); the graph is built from what it collected; the steps with fields beyond the plain ones
are then checked against the graph. Hot path: a 2,000-step flow of plain steps is the common
big case, so paths are built only when a problem needs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from jobflow import conditions, dag, decoded, kinds, names, quantities
from jobflow.errors import Problem
from jobflow.model import Step
from jobflow.validation import approval, data, fanout, fast, risks, shape, templates
from jobflow.validation.context import (
    MAX_BACKOFF_SECONDS,
    MAX_INT32,
    MAX_STEP_TIMEOUT_SECONDS,
    Context,
)

# Each step is a status entry, events and at least one Job; past this a flow is better split.
MAX_STEPS: Final = 2000
_RESERVED_LABELS: Final = frozenset(
    {names.LABEL_FLOW, names.LABEL_STEP, names.LABEL_ATTEMPT, names.LABEL_MANAGED_BY}
)


def too_many_steps(count: int) -> Problem:
    """The one problem of a flow over MAX_STEPS (validate() says it before walking the steps)."""
    return Problem(
        "too-many-steps",
        "spec.steps",
        f"{count} steps exceed the limit of {MAX_STEPS}; split the flow",
    )


def check_steps(ctx: Context, steps: list[object]) -> None:
    base = "spec.steps"
    if not steps:
        ctx.add("no-steps", base, "a JobFlow needs at least one step")
    # Over MAX_STEPS, validate() has already answered with too_many_steps alone.
    read: list[Mapping[str, object]] = []
    pairs: list[tuple[str, list[str]]] = []
    first_index: dict[str, int] = {}
    rich: list[int] = []  # steps with fields beyond the plain ones: checked after the graph
    # Hot loop (up to MAX_STEPS turns): look these up once, not once per step.
    is_plain_step, plain_keys = shape.is_plain_step, shape.PLAIN_STEP_KEYS
    mapping_or_none, is_dns1123_label = decoded.mapping_or_none, names.is_dns1123_label
    vouch = fast.vouch_step if ctx.fast else None
    warnings = ctx.warnings
    # True while every step is vouched for and depends only on steps before it (the usual
    # flow): then no dependency can be unknown, a self-dependency or on a cycle, and the
    # graph is built only if a later check reads it.
    backward = every = vouch is not None
    for i, item in enumerate(steps):
        if vouch is not None and vouch(item, i, warnings):
            # Valid in itself (jobflow.validation.fast): only what involves other steps is left.
            step: Mapping[str, object] = item  # type: ignore[assignment]
            read.append(step)
            name = step["name"]
            deps = step.get("dependencies")
            pairs.append((name, deps or []))  # type: ignore[arg-type]
            if backward and deps:
                # Every dependency names a step listed before this one (``first_index`` holds
                # those so far): an edge back in spec order, never to itself (its own name is
                # not in there yet, or is a duplicate's, whose edge dag.build keeps as one to
                # the first). map() of the dict's own method: no Python call per dependency.
                backward = all(map(first_index.__contains__, deps))  # type: ignore[call-overload]
            if ctx.has_placeholders and step.get("template") is not None:
                templates.check_placeholders(ctx, step, step["template"], i)  # type: ignore[arg-type]
                fanout.check_outside(ctx, step, i)  # {{ item }} in a step without items
            if name in first_index:
                _duplicate(ctx, name, i, first_index[name])
            else:
                first_index[name] = i  # type: ignore[index]
            continue
        backward = every = False
        if warnings is not None:
            risks.step_warnings(item, i, warnings)
        if not ctx.fast or not is_plain_step(item):
            ctx.problems.extend(shape.pydantic_problems(Step, item, ("spec", "steps", i)))
        step = mapping_or_none(item) or decoded.EMPTY
        read.append(step)
        check_step_kind(ctx, step, i)
        if not step.keys() <= plain_keys:
            rich.append(i)
        deps = step.get("dependencies")
        dep_names = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
        name = step.get("name")
        if not isinstance(name, str):
            pairs.append(("", dep_names))
            continue
        pairs.append((name, dep_names))
        if not is_dns1123_label(name):
            ctx.add(
                "invalid-step-name",
                f"{base}[{i}].name",
                f"step name {name!r} must be a DNS-1123 label: lower-case letters, digits"
                f" and '-', starting and ending with a letter or digit, at most"
                f" {names.MAX_LABEL_LENGTH} characters",
            )
        if name in first_index:
            _duplicate(ctx, name, i, first_index[name])
            continue
        first_index[name] = i
        _declare_outputs(ctx, name, step)
    ctx.all_vouched = every
    if backward:
        ctx.defer_graph(pairs)  # nothing below would find anything (``backward``)
        return
    check_graph(ctx, pairs, read, first_index)
    for i in rich:
        check_step_fields(ctx, read[i], i)


def check_graph(
    ctx: Context,
    pairs: list[tuple[str, list[str]]],
    steps: Sequence[Mapping[str, object]],
    first_index: Mapping[str, int],
) -> None:
    """The graph of the steps' (name, dependencies): unknown and self dependencies, cycles."""
    graph = ctx.graph = dag.build(pairs)
    # A step whose edges are fewer than its list entries has an unknown, self or repeated
    # dependency (or a non-string one): only those are looked at one by one.
    suspicious = [i for i, (_, deps) in enumerate(pairs) if len(deps) != len(graph.deps[i])]
    check_dependencies(ctx, steps, first_index, suspicious)
    for component in dag.cycles(graph):
        start = graph.index[component[0]]
        ctx.add(
            "dependency-cycle",
            f"spec.steps[{start}].dependencies",
            f"dependency cycle: {dag.format_cycle(component)} (each step depends on the"
            " next); remove one of these dependencies",
        )


def _duplicate(ctx: Context, name: str, index: int, first: int) -> None:
    ctx.add(
        "duplicate-step-name",
        f"spec.steps[{index}].name",
        f"step name {name!r} is already used by spec.steps[{first}]",
    )


def _declare_outputs(ctx: Context, name: str, step: Mapping[str, object]) -> None:
    if "outputs" in step:
        ctx.outputs[name] = data.declared_outputs(step)
    elif "approval" in step:
        # An approved Manual step's outputs are its approval's inputs (jobflow.approvals).
        ctx.outputs[name] = (approval.declared_inputs(step), set())


def check_dependencies(
    ctx: Context,
    steps: Sequence[Mapping[str, object]],
    first_index: Mapping[str, int],
    indices: Sequence[int],
) -> None:
    for i in indices:
        step = steps[i]
        deps = decoded.list_or_none(step.get("dependencies"))
        if not deps:
            continue
        own = step.get("name")
        for j, dep in enumerate(deps):
            if not isinstance(dep, str) or (dep in first_index and dep != own):
                continue
            path = f"spec.steps[{i}].dependencies[{j}]"
            if dep == own:
                ctx.add("self-dependency", path, f"step {dep!r} cannot depend on itself")
            else:
                what = "an empty name" if not dep else f"{dep!r}"
                ctx.add(
                    "unknown-dependency",
                    path,
                    f"depends on {what}, which is not a step of this flow",
                )


def check_step_kind(ctx: Context, step: Mapping[str, object], index: int) -> None:
    """Type and template rules (need no graph). Hot path: paths are built on failure only."""
    step_type = step.get("type")
    template = step.get("template")
    if step_type is not None and not (isinstance(step_type, str) and step_type in kinds.KINDS):
        return  # an unknown type: reported by the shape layer (an enumeration of the model)
    kind = kinds.of(step_type)
    if not kind.needs_template:
        if template is not None:
            ctx.add("manual-step-template", f"spec.steps[{index}].template", kind.template_rule)
    elif template is None:
        ctx.add("template-required", f"spec.steps[{index}].template", kind.template_rule)
    elif isinstance(template, decoded.OBJECT_TYPES):
        templates.check_template(ctx, template, index)
        if ctx.has_placeholders:
            templates.check_placeholders(ctx, step, template, index)
            fanout.check_outside(ctx, step, index)


def check_step_fields(ctx: Context, step: Mapping[str, object], index: int) -> None:
    """The rules of the other step fields (metadata, timeout, retries, when, data)."""
    get = step.get
    base = f"spec.steps[{index}]"
    name = decoded.string(get("name")) or ""
    meta = decoded.mapping_or_none(get("metadata"))
    labels = decoded.mapping_or_none(meta.get("labels")) if meta is not None else None
    if labels is not None:
        for key in labels:
            if key in _RESERVED_LABELS:
                ctx.add(
                    "reserved-label",
                    f"{base}.metadata.labels.{key}",
                    f"label {key!r} is set by zen-flow and cannot be overridden",
                )
    timeout = decoded.strict_integer(get("timeoutSeconds"))
    if timeout is not None and not 0 < timeout <= MAX_STEP_TIMEOUT_SECONDS:
        ctx.add(
            "invalid-timeout",
            f"{base}.timeoutSeconds",
            f"must be between 1 and {MAX_STEP_TIMEOUT_SECONDS} seconds (30 days); got {timeout}",
        )
    retry = decoded.mapping_or_none(get("retryPolicy"))
    if retry is not None:
        check_retry_policy(ctx, retry, f"{base}.retryPolicy")
    when = decoded.string(get("when"))
    if when is not None:
        check_when(ctx, when, name, f"{base}.when")
    inputs = decoded.mapping_or_none(get("inputs"))
    if inputs is not None:
        data.check_inputs(ctx, inputs, name, f"{base}.inputs")
    outputs = decoded.mapping_or_none(get("outputs"))
    if outputs is not None:
        data.check_outputs(ctx, outputs, f"{base}.outputs")
    if inputs is not None or outputs is not None:
        data.check_artifact_mounts(ctx, step, base)
    if "approval" in step:
        approval.check(ctx, step, base)
    fanout.check(ctx, step, index)


def check_retry_policy(ctx: Context, retry: Mapping[str, object], base: str) -> None:
    limit = decoded.strict_integer(retry.get("limit"))
    if limit is not None and not 0 <= limit <= MAX_INT32:
        ctx.add(
            "invalid-retry-limit",
            f"{base}.limit",
            f"must be between 0 (no retries) and {MAX_INT32}; got {limit}",
        )
    backoff = decoded.mapping_or_none(retry.get("backoff"))
    if backoff is None:
        return
    factor = decoded.number(backoff.get("factor"))
    if factor is not None and factor < 1.0:
        ctx.add("invalid-backoff-factor", f"{base}.backoff.factor", f"must be >= 1.0; got {factor}")
    duration = decoded.string(backoff.get("duration"))
    if duration is not None:
        seconds = quantities.parse_duration(duration)
        if seconds is None:
            ctx.add(
                "invalid-duration",
                f"{base}.backoff.duration",
                f"{duration!r} is not a duration; use e.g. 10s, 1m30s or 2h",
            )
        elif not 0 < seconds <= MAX_BACKOFF_SECONDS:
            ctx.add(
                "invalid-duration",
                f"{base}.backoff.duration",
                f"must be greater than 0 and at most 720h; got {duration!r}",
            )


def check_when(ctx: Context, when: str, step: str, path: str) -> None:
    if conditions.literal_value(when) is not None:
        return
    if when not in ctx.when_texts:
        ctx.when_texts.add(when)
        ctx.when_length += len(when)
        if ctx.when_length > conditions.MAX_TOTAL_LENGTH:
            # Compiling costs ~1-2 us a character: a flow of distinct long conditions would
            # hold the webhook for seconds. Said once, at the first step over the budget.
            if ctx.when_length - len(when) <= conditions.MAX_TOTAL_LENGTH:
                ctx.add(
                    "when-total-too-long",
                    path,
                    f"the flow's distinct when conditions exceed {conditions.MAX_TOTAL_LENGTH}"
                    " characters in all; share conditions between steps or move logic into"
                    " steps",
                )
            return
    try:
        # The largest collection the expression can iterate: a step's declared outputs.
        refs = conditions.check(when, max_collection=ctx.largest_outputs)
    except conditions.ConditionError as exc:
        ctx.add(exc.code, path, str(exc))
        return
    if refs.is_dynamic:
        ctx.add(
            "when-dynamic-reference",
            path,
            "refer to steps by literal name, e.g. steps['build'].phase",
        )
    for ref in refs.steps:
        ctx.check_step_reference(ref, step, path, code_prefix="when")
    for ref, parameter in refs.outputs:
        if ctx.graph is None or ref not in ctx.graph.index:
            continue  # an unknown step: said above
        declared = ctx.outputs.get(ref, (set(), set()))[0]
        if parameter not in declared:
            listed = ", ".join(sorted(declared)) if declared else "none"
            ctx.add(
                "when-unknown-output",
                path,
                f"step {ref!r} declares no output parameter {parameter!r} (it declares:"
                f" {listed}); add it to that step's outputs.parameters",
            )
