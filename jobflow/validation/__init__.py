"""Validation of a whole JobFlow object: the webhook's ``/validate`` and ``zen-flow validate``.

``validate(obj)`` takes the decoded JSON object and returns every problem it finds (``[]``
means valid); it never raises on bad input. Two layers:

1. Shape (``shape``): the pydantic model (``jobflow.model``, strict) reports unknown fields,
   missing required fields, wrong types and values outside an enumeration, each with its path.
2. Meaning: the rules of DESIGN section 3 and the seed's webhook rules, walked over the raw
   dict, grouped by what they check: ``flow`` (identity, executionPolicy, podFailurePolicy,
   resourceTemplates, workspace), ``steps`` (names, graph, dependencies, kinds, retryPolicy,
   ``when``), ``templates`` (Job templates, containers, resources, placeholders) and ``data``
   (parameters and artifacts); ``context`` is the state they share. These read a field only
   when it has the right type (``jobflow.decoded``'s ``*_or_none`` readers), so a wrong-typed
   field is reported once (by layer 1), never twice.

Paths use the kubectl notation ``spec.steps[2].dependencies[0]``; codes are stable kebab-case
strings (the tests and tools match on codes, people read messages).

Cost: O(size of the object) plus O(V + E) for the graph; the bench (``bench/validate.py``)
compares a 10,000-step flow with stdlib ``graphlib`` on the same graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import pydantic_core

from jobflow import decoded
from jobflow.errors import Problem
from jobflow.validation import context, flow, risks, shape, sourcebound, steps
from jobflow.validation.steps import MAX_STEPS

__all__ = ["MAX_OBJECT_BYTES", "MAX_STEPS", "Problem", "validate"]

# etcd refuses requests over 1.5 MiB by default (--max-request-bytes); an object near that
# also makes every watch event and status write heavy.
MAX_OBJECT_BYTES: Final = 1536 * 1024

# tests/unit/test_validation.py holds the fast step check to the model's verdict through these.
_PLAIN_STEP_KEYS: Final = shape.PLAIN_STEP_KEYS
_is_plain_step: Final = shape.is_plain_step


def _size_problems(size: int) -> list[Problem]:
    if size <= MAX_OBJECT_BYTES:
        return []
    return [
        Problem(
            "too-large",
            "",
            f"the JobFlow is {size} bytes serialised, over the limit of {MAX_OBJECT_BYTES}"
            " bytes (1.5 MiB, what etcd accepts); move data to ConfigMaps or split the flow",
        )
    ]


def validate(
    obj: Mapping[str, object],
    *,
    warnings: list[str] | None = None,
    fast: bool = True,
    source: bytes | None = None,
) -> list[Problem]:
    """Every problem of a JobFlow object (decoded JSON); ``[]`` means valid.

    ``warnings``: when given, the risk warnings (``risks``) are appended to it, found in the
    same walk. ``fast=False`` checks every step on the full path (the reference that
    tests/unit/test_validation_fast.py holds the fast path to; same answers, slower).
    ``source``: the JSON text ``obj`` was decoded from (or one holding it, such as the
    AdmissionReview body); when it is small enough to prove the object within the size budget
    (``validation.sourcebound``), the object is not serialised. Same answers either way.
    """
    if not isinstance(obj, Mapping):
        return [Problem("not-an-object", "", "a JobFlow must be a JSON/YAML object")]
    if source is not None and sourcebound.fits(source, MAX_OBJECT_BYTES):
        placeholders = sourcebound.may_have_placeholders(source)
        return _check(obj, warnings, fast, has_placeholders=placeholders)
    # One serialisation serves the size budget and the placeholder pre-check. pydantic_core is
    # ~3x faster than json.dumps; non-JSON values from YAML (dates) count as their string form.
    # (orjson is ~3x faster again, but what it allocates for the hostile corpus's near-limit
    # objects left ~10 MiB more RSS behind: tests/api/test_webhook_hostile.py.)
    try:
        data = pydantic_core.to_json(obj, fallback=str)
    except pydantic_core.PydanticSerializationError:
        # Only text that UTF-8 cannot encode (a lone surrogate from a JSON "\udc80" escape)
        # gets here; the API server would refuse to store it too, so nothing else is checked.
        _early_warnings(obj, warnings)
        return [
            Problem(
                "invalid-text",
                "",
                "the JobFlow contains text that is not valid Unicode (a lone surrogate escape);"
                " remove the \\udXXX escape",
            )
        ]
    problems = _size_problems(len(data))
    if problems:
        # The API server would refuse to store it whatever else it says; checking the rest
        # (thousands of steps, each `when` compiled) would only spend time on a lost cause.
        _early_warnings(obj, warnings)
        return problems
    return _check(obj, warnings, fast, has_placeholders=b"{{" in data)


def _check(
    obj: Mapping[str, object], warnings: list[str] | None, fast: bool, *, has_placeholders: bool
) -> list[Problem]:
    """Everything after the size budget (within it)."""
    problems: list[Problem] = []
    listed = decoded.path(obj, "spec", "steps")
    if isinstance(listed, list) and len(listed) > steps.MAX_STEPS:
        # The same before anything walks the steps: 60,000 steps in a 1.2 MB body took a
        # second of validation (and a 16 MB denial) to say what this one line says.
        _early_warnings(obj, warnings)
        return [steps.too_many_steps(len(listed))]
    problems.extend(shape.shape_problems(obj))
    if warnings is not None:
        warnings.extend(risks.flow_warnings(obj))
    ctx = context.Context(obj, has_placeholders=has_placeholders, warnings=warnings, fast=fast)
    flow.check(ctx)
    problems.extend(ctx.problems)
    return problems


def _early_warnings(obj: Mapping[str, object], warnings: list[str] | None) -> None:
    # Validation stopped before the walk; the warnings do not depend on it.
    if warnings is not None:
        warnings.extend(risks.risk_warnings(obj))
