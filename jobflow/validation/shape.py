"""Layer 1, shape: the pydantic model (``jobflow.model``, strict) reports unknown fields,
missing required fields, wrong types and values outside an enumeration, each with its path.

Steps are not checked here when ``spec.steps`` is a list: ``steps.check_steps`` checks them one
by one in its own pass, with ``is_plain_step`` first and pydantic only for a step it cannot
vouch for (big generated flows are made of plain steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import pydantic

from jobflow import kinds
from jobflow.errors import Problem
from jobflow.model import JobFlow

# Step fields that need no checks beyond their JSON type (template aside, checked by rules).
PLAIN_STEP_KEYS: Final = frozenset(
    {"name", "dependencies", "template", "type", "message", "continueOnFailure"}
)


def _loc_to_path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def is_plain_step(step: object) -> bool:
    """True when a step uses only the simple fields, each with a valid JSON type.

    Such a step needs no pydantic pass: this check gives the same verdict for it at a fraction
    of the cost (a test keeps the two in agreement). Big generated flows are made of these.
    """
    if type(step) is not dict or not step.keys() <= PLAIN_STEP_KEYS:
        return False
    get = step.get
    if type(get("name")) is not str:
        return False
    deps = get("dependencies")
    if deps is not None:
        if type(deps) is not list:
            return False
        for dep in deps:
            if type(dep) is not str:
                return False
    step_type = get("type")
    template = get("template")
    message = get("message")
    flag = get("continueOnFailure")
    # The template's own keys must be strings (the model's dict[str, object]; YAML allows
    # others); its fields are the API server's to check when the Job is created.
    return (
        (step_type is None or (type(step_type) is str and step_type in kinds.KINDS))
        and (template is None or (type(template) is dict and all(type(k) is str for k in template)))
        and (message is None or type(message) is str)
        and (flag is None or type(flag) is bool)
    )


def pydantic_problems(
    model: type[pydantic.BaseModel], value: object, prefix: tuple[int | str, ...]
) -> list[Problem]:
    try:
        model.model_validate(value)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        return []
    problems: list[Problem] = []
    for error in errors:
        loc = (*prefix, *error["loc"])
        path = _loc_to_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            problems.append(
                Problem("unknown-field", path, f"unknown field {str(loc[-1])!r}; check spelling")
            )
        elif kind == "missing":
            problems.append(Problem("required-field", path, "required field is missing"))
        elif kind in ("enum", "literal_error"):
            expected = error.get("ctx", {}).get("expected", "")
            problems.append(
                Problem("invalid-value", path, f"must be one of {expected}; got {error['input']!r}")
            )
        else:
            wanted = error["msg"].replace("Input should be ", "must be ")
            got = _json_type(error["input"])
            problems.append(Problem("invalid-type", path, f"{wanted}; got {got}"))
    return problems


def shape_problems(obj: Mapping[str, object]) -> list[Problem]:
    """Shape problems of everything but the steps when ``spec.steps`` is a list."""
    spec = obj.get("spec")
    steps = spec.get("steps") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or not isinstance(steps, list):
        return pydantic_problems(JobFlow, obj, ())
    # spec.finally's steps are checked with spec.steps (validation.finale) when a list.
    rest = {**spec, "steps": []}
    if isinstance(spec.get("finally"), list):
        rest["finally"] = []
    return pydantic_problems(JobFlow, {**obj, "spec": rest}, ())
