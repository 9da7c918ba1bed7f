"""Checks of ``spec.finally`` (jobflow.planning.finale), by reusing the step checks.

A finally step runs after every step of ``spec.steps``: to the step rules it is a step that
depends on all of them. So the two lists are checked as one (``steps.check_steps`` over
``spec.steps + spec.finally``, each finally step given every DAG step as extra dependencies,
after its own): names are unique across both, a finally step's inputs and ``when`` may read
any DAG step and its finally ancestors, its own dependencies may name only steps of the flow,
and cycles among finally steps are found. Paths and messages are then written back to
``spec.finally[j]``. Rules of their own:

- ``dependency-on-finally``: a step of ``spec.steps`` cannot depend on a finally step (it would
  wait for what waits for it).
- ``flow-outcome-outside-finally``: ``valueFrom.flowOutcome`` (the DAG's outcome) is known only
  to finally steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from jobflow import decoded
from jobflow.errors import Problem
from jobflow.validation import risks, steps
from jobflow.validation.context import Context


def check(ctx: Context, dag_steps: list[object], finally_steps: list[object] | None) -> None:
    if not finally_steps:
        steps.check_steps(ctx, dag_steps)
        _check_outcome_inputs(ctx, dag_steps, "spec.steps")
        return
    count = len(dag_steps)
    if count + len(finally_steps) > steps.MAX_STEPS:
        ctx.problems.append(
            Problem(
                "too-many-steps",
                "spec.finally",
                f"{count + len(finally_steps)} steps and finally steps exceed the limit of"
                f" {steps.MAX_STEPS}; split the flow",
            )
        )
        return
    dag_names = [n for n in (_name(s) for s in dag_steps) if n]
    final_names = {n for n in (_name(s) for s in finally_steps) if n} - set(dag_names)
    combined: list[object] = [
        _without_finally_deps(ctx, s, i, final_names) for i, s in enumerate(dag_steps)
    ]
    for item in finally_steps:
        step = decoded.mapping_or_none(item)
        if step is None:
            combined.append(item)
            continue
        own = decoded.list_or_none(step.get("dependencies")) or []
        combined.append({**step, "dependencies": [*own, *(n for n in dag_names if n not in own)]})
    first = len(ctx.problems)
    first_warning = len(ctx.warnings) if ctx.warnings is not None else 0
    steps.check_steps(ctx, combined)
    ctx.problems[first:] = [_moved(p, count) for p in ctx.problems[first:]]
    if ctx.warnings is not None:
        ctx.warnings[first_warning:] = [
            risks.moved_to_finally(w, count) for w in ctx.warnings[first_warning:]
        ]
    _check_outcome_inputs(ctx, dag_steps, "spec.steps")


def _name(item: object) -> str | None:
    step = decoded.mapping_or_none(item)
    return decoded.string(step.get("name")) if step is not None else None


def _without_finally_deps(ctx: Context, item: object, index: int, final_names: set[str]) -> object:
    step = decoded.mapping_or_none(item)
    deps = decoded.list_or_none(step.get("dependencies")) if step is not None else None
    if step is None or not deps:
        return item
    kept: list[object] = []
    for j, dep in enumerate(deps):
        if isinstance(dep, str) and dep in final_names:
            ctx.add(
                "dependency-on-finally",
                f"spec.steps[{index}].dependencies[{j}]",
                f"{dep!r} is a finally step: it runs after every step of spec.steps, so none"
                " can depend on it; move the step into spec.finally or drop the dependency",
            )
        else:
            kept.append(dep)
    return {**step, "dependencies": kept}


def _moved(problem: Problem, count: int) -> Problem:
    """A problem of the combined list, with ``spec.steps[k]`` past the DAG named as it was
    written: ``spec.finally[k - count]``."""
    return Problem(
        problem.code,
        risks.moved_to_finally(problem.path, count),
        risks.moved_to_finally(problem.message, count),
    )


def _check_outcome_inputs(ctx: Context, dag_steps: Sequence[object], base: str) -> None:
    if ctx.all_vouched:
        return  # no step has inputs (steps.check_steps vouched for each)
    for i, item in enumerate(dag_steps):
        if type(item) is dict and "inputs" not in item:
            continue  # no inputs (most steps): nothing to read
        step = decoded.mapping_or_none(item)
        params = decoded.path(step, "inputs", "parameters") if step is not None else None
        if not isinstance(params, list):
            continue
        for j, param in enumerate(params):
            source = decoded.path(param, "valueFrom") if isinstance(param, Mapping) else None
            if isinstance(source, Mapping) and "flowOutcome" in source:
                ctx.add(
                    "flow-outcome-outside-finally",
                    f"{base}[{i}].inputs.parameters[{j}].valueFrom.flowOutcome",
                    "the flow's outcome is known only once spec.steps have ended: only a step"
                    " of spec.finally can read it",
                )
