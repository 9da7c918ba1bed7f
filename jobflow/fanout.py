"""Fan-out: one Job step run once per item (``withItems`` or ``withParam``), pure parts.

- Items: ``withItems`` is a list written in the spec (strings, numbers, booleans or objects);
  ``withParam: {step, parameter}`` names an output parameter of an ancestor step holding a JSON
  list, read when the fan-out step starts (the upstream step has ended, so its value is
  frozen and every later pass reads the same list). At most ``MAX_ITEMS`` items.
- Placeholders, substituted in the step's template (after its input parameters):
  ``{{ item }}`` (a string as is, anything else as compact JSON), ``{{ item.<field> }}`` (object
  items; a missing field is an input error of that item) and ``{{ index }}`` (0-based).
- Each item is its own Job, with its own attempts and retries (the step's retryPolicy),
  named ``names.job_name(flow, uid, "<step>[<i>]", attempt)`` and labelled
  ``workflow.kube-zen.io/item-index=<i>``.
- Status stays small (``encode``/``decode``): one character per item (``PHASE_CODES``) plus a
  detail entry only for the items with something else to remember (running: since when;
  waiting to retry: until when; failed: why; retried: attempts), and the step's output
  parameters as JSON lists with one entry per item (null until the item succeeded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Final

from jobflow import decoded, phases
from jobflow.phases import StepPhase

# Each item is a Job, a status character and events; beyond this split the work per Job.
MAX_ITEMS: Final = 1000
# How much of a failed item's message the status keeps (the Job and its events keep the rest).
MAX_ITEM_MESSAGE: Final = 160
LABEL_ITEM: Final = "workflow.kube-zen.io/item-index"

PHASE_CODES: Final[Mapping[str, str]] = {
    StepPhase.PENDING: "P",
    StepPhase.RUNNING: "R",
    StepPhase.QUEUED: "Q",
    StepPhase.SUCCEEDED: "S",
    StepPhase.FAILED: "F",
    StepPhase.SKIPPED: "K",
}
RETRY_CODE: Final = "B"  # Pending, waiting for its next attempt (RetryBackoff)
_PHASES_BY_CODE: Final = {code: phase for phase, code in PHASE_CODES.items()}

ITEM_PLACEHOLDER: Final = re.compile(r"\{\{\s*(item(?:\.[A-Za-z0-9_-]+)?|index)\s*\}\}")


class ItemsError(ValueError):
    """The items cannot be read (the step fails, reason InputError)."""


def item_key(step: str, index: int) -> str:
    """How an item is shown and keyed: ``step[3]``."""
    return f"{step}[{index}]"


def is_fanout(step: Mapping[str, object]) -> bool:
    return "withItems" in step or "withParam" in step


def param_source(step: Mapping[str, object]) -> tuple[str, str] | None:
    """``withParam``'s (step, parameter), or None."""
    ref = decoded.mapping_or_none(step.get("withParam"))
    if ref is None:
        return None
    return decoded.string(ref.get("step")) or "", decoded.string(ref.get("parameter")) or ""


def read_items(
    step: Mapping[str, object], outputs: Mapping[str, Mapping[str, str]]
) -> list[object]:
    """The items of a fan-out ``step``; ``outputs`` are the steps' recorded output parameters."""
    listed = step.get("withItems")
    items: list[object]
    if isinstance(listed, list):
        items = listed
    else:
        source = param_source(step)
        if source is None:
            raise ItemsError("the step has neither withItems nor withParam")
        upstream, name = source
        text = outputs.get(upstream, {}).get(name)
        if text is None:
            raise ItemsError(f"withParam: step {upstream!r} has no output parameter {name!r}")
        try:
            value: object = json.loads(text)
        except ValueError as exc:
            raise ItemsError(
                f"withParam: output {upstream}.{name} is not JSON ({exc}); it must hold a JSON list"
            ) from None
        if not isinstance(value, list):
            raise ItemsError(
                f"withParam: output {upstream}.{name} holds a JSON {type(value).__name__},"
                " not a list"
            )
        items = value
    if len(items) > MAX_ITEMS:
        raise ItemsError(f"{len(items)} items exceed the limit of {MAX_ITEMS}; split the work")
    return list(items)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def substitute(template: object, item: object, index: int, *, where: str = "template") -> object:
    """A copy of ``template`` with ``{{ item }}``, ``{{ item.<field> }}`` and ``{{ index }}``
    replaced (only strings containing them are rebuilt)."""
    if isinstance(template, str):
        if "{{" not in template:
            return template

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == "index":
                return str(index)
            if name == "item":
                return _text(item)
            field = name.removeprefix("item.")
            if not isinstance(item, Mapping) or field not in item:
                raise ItemsError(
                    f"{match.group(0)} at {where}: item {index} ({_text(item)[:80]}) has no"
                    f" field {field!r}"
                )
            return _text(item[field])

        return ITEM_PLACEHOLDER.sub(replace, template)
    if isinstance(template, Mapping):
        return {k: substitute(v, item, index, where=f"{where}.{k}") for k, v in template.items()}
    if isinstance(template, list):
        return [substitute(v, item, index, where=f"{where}[{i}]") for i, v in enumerate(template)]
    return template


def item_fields(template: object) -> set[str]:
    """The ``{{ item.<field> }}`` fields ``template`` reads (validation)."""
    found: set[str] = set()
    stack = [template]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "{{" in node:
                found.update(
                    m.group(1).removeprefix("item.")
                    for m in ITEM_PLACEHOLDER.finditer(node)
                    if m.group(1).startswith("item.")
                )
        elif isinstance(node, Mapping):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def collect(names: Sequence[str], per_item: Sequence[Mapping[str, str] | None]) -> dict[str, str]:
    """The step's outputs: each declared parameter as a JSON list, one entry per item (the
    item's value, null when it has none yet)."""
    return {
        name: json.dumps(
            [None if values is None else values.get(name) for values in per_item],
            separators=(",", ":"),
        )
        for name in names
    }


def uncollect(outputs: Mapping[str, str] | None, count: int) -> list[dict[str, str] | None]:
    """``collect`` read back: each item's own output values (None when it has none)."""
    per_item: list[dict[str, str] | None] = [None] * count
    for name, text in (outputs or {}).items():
        try:
            values = json.loads(text)
        except ValueError:
            continue
        if not isinstance(values, list):
            continue
        for i, value in enumerate(values[:count]):
            if isinstance(value, str):
                entry = per_item[i]
                if entry is None:
                    entry = per_item[i] = {}
                entry[name] = value
    return per_item


def phase_code(phase: str, reason: str | None) -> str:
    if phase == StepPhase.PENDING and reason == phases.RETRY_BACKOFF:
        return RETRY_CODE
    return PHASE_CODES.get(phase, "P")


def code_phase(code: str) -> tuple[str, str | None]:
    """(phase, reason) of a status character."""
    if code == RETRY_CODE:
        return StepPhase.PENDING, phases.RETRY_BACKOFF
    return _PHASES_BY_CODE.get(code, StepPhase.PENDING), None
