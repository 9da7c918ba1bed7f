"""Checks of fan-out steps (jobflow.fanout): ``withItems``, ``withParam``, ``parallelism`` and
the ``{{ item }}`` placeholders.

- ``fanout-both-sources``: withItems and withParam together.
- ``fanout-manual``: a Manual step runs no Job to fan out.
- ``too-many-items``: more than ``fanout.MAX_ITEMS`` items written in withItems.
- ``with-param-unknown-step`` / ``with-param-references-non-ancestor``: withParam reads an
  output of an ancestor (a dependency, direct or not), ``with-param-undeclared-output``: one
  that step declares in outputs.parameters.
- ``item-field-not-in-items``: ``{{ item.<field> }}`` where a withItems item is not an object
  with that field (withParam's items are known only at run time: a missing field then fails
  the item, reason InputError).
- ``item-outside-fanout``: ``{{ item }}`` or ``{{ index }}`` in a step that does not fan out.
- ``invalid-parallelism``: the step's parallelism is at least 1 and only on a fan-out.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobflow import decoded, fanout, kinds
from jobflow.validation.context import Context


def check(ctx: Context, step: Mapping[str, object], index: int) -> None:
    base = f"spec.steps[{index}]"
    name = decoded.string(step.get("name")) or ""
    template = step.get("template")
    is_fanout = fanout.is_fanout(step)
    cap = decoded.strict_integer(step.get("parallelism"))
    if cap is not None and (cap < 1 or not is_fanout):
        ctx.add(
            "invalid-parallelism",
            f"{base}.parallelism",
            "a step's parallelism caps its fan-out's items: set withItems or withParam, and a"
            f" value of at least 1 (got {cap})",
        )
    if not is_fanout:
        return
    if not kinds.of_step(step).runs_jobs:
        ctx.add("fanout-manual", base, "a Manual step runs no Job: it cannot fan out")
    listed = decoded.list_or_none(step.get("withItems"))
    param = decoded.mapping_or_none(step.get("withParam"))
    if listed is not None and param is not None:
        ctx.add("fanout-both-sources", base, "set withItems or withParam, not both")
    if listed is not None:
        _check_items(ctx, listed, template, base)
    if param is not None:
        _check_param(ctx, param, name, f"{base}.withParam")


def check_outside(ctx: Context, step: Mapping[str, object], index: int) -> None:
    """``{{ item }}`` / ``{{ index }}`` in the template of a step without items."""
    if not fanout.is_fanout(step) and _uses_items(step.get("template")):
        ctx.add(
            "item-outside-fanout",
            f"spec.steps[{index}].template",
            "{{ item }} and {{ index }} are an item's: only a step with withItems or"
            " withParam has items",
        )


def _uses_items(template: object) -> bool:
    stack = [template]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "{{" in node and fanout.ITEM_PLACEHOLDER.search(node):
                return True
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _check_items(ctx: Context, listed: list[object], template: object, base: str) -> None:
    if len(listed) > fanout.MAX_ITEMS:
        ctx.add(
            "too-many-items",
            f"{base}.withItems",
            f"{len(listed)} items exceed the limit of {fanout.MAX_ITEMS}; split the work",
        )
        return
    for field in sorted(fanout.item_fields(template)):
        for i, item in enumerate(listed):
            if not isinstance(item, Mapping) or field not in item:
                ctx.add(
                    "item-field-not-in-items",
                    f"{base}.withItems[{i}]",
                    f"the template reads {{{{ item.{field} }}}} but this item"
                    + (
                        " is not an object"
                        if not isinstance(item, Mapping)
                        else f" has no {field!r}"
                    )
                    + "; use {{ item }} for plain items",
                )
                break


def _check_param(ctx: Context, param: Mapping[str, object], name: str, path: str) -> None:
    upstream = decoded.string(param.get("step"))
    output = decoded.string(param.get("parameter"))
    if upstream is None or output is None:
        return  # the shape layer says what is missing
    before = len(ctx.problems)
    ctx.check_step_reference(upstream, name, f"{path}.step", code_prefix="with-param")
    if len(ctx.problems) != before:
        return
    declared, _ = ctx.outputs.get(upstream, (set(), set()))
    if output not in declared:
        ctx.add(
            "with-param-undeclared-output",
            f"{path}.parameter",
            f"step {upstream!r} declares no output parameter {output!r} (outputs.parameters);"
            " withParam reads a JSON list from one",
        )
