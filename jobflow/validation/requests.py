"""Checks of the flow parameters and the operator requests (``spec.parameters``,
``spec.retry``, ``spec.stop``; semantics in jobflow.requests).

Run before the steps, so that a step's ``valueFrom.flowParameter`` is checked against the
declared names (``Context.flow_parameters``). A retry naming a step or a parameter the flow
does not have is refused at apply, with the names it has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from jobflow import conditions, decoded, requests
from jobflow.validation.context import Context
from jobflow.validation.data import check_name

# A request id: letters, digits and - _ . : (a counter, a timestamp, a commit hash).
_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?")


def check(ctx: Context, spec: Mapping[str, object]) -> None:
    ctx.flow_parameters = check_parameters(ctx, spec)
    check_when_parameters(ctx, spec)
    retry = decoded.mapping_or_none(spec.get("retry"))
    if retry is not None:
        check_request_id(ctx, retry, "spec.retry")
        check_retry(ctx, spec, retry)
    stop = decoded.mapping_or_none(spec.get("stop"))
    if stop is not None:
        check_request_id(ctx, stop, "spec.stop")


def check_parameters(ctx: Context, spec: Mapping[str, object]) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(decoded.list_or_none(spec.get("parameters")) or []):
        param = decoded.mapping_or_none(item)
        if param is None:
            continue
        path = f"spec.parameters[{i}]"
        check_name(ctx, param, path, seen, "parameter")
        check_value(ctx, param.get("value"), f"{path}.value")
    return seen


def check_when_parameters(ctx: Context, spec: Mapping[str, object]) -> None:
    """A ``when`` reading ``flow.parameters['<p>']`` names a declared parameter (else it could
    only fail at run time, after its upstream steps ran)."""
    declared = ", ".join(sorted(ctx.flow_parameters)) or "none"
    # Paths count the objects of each list (decoded.items), as they always have.
    listed = [("spec.steps", decoded.items(spec.get("steps")))]
    listed += [("spec.finally", decoded.items(spec.get("finally")))]
    for field, found in listed:
        for i, step in enumerate(found):
            if "when" in step:  # most steps have none: no path built for them
                _check_when_parameters(ctx, step, f"{field}[{i}]", declared)


def _check_when_parameters(
    ctx: Context, step: Mapping[str, object], base: str, declared: str
) -> None:
    when = decoded.string(step.get("when"))
    if when is None or conditions.literal_value(when) is not None:
        return
    try:
        tokens = conditions.shape(when)
    except conditions.ConditionError:
        return  # over a limit: the steps' checks say so
    for name in _flow_parameters(tokens):
        if name not in ctx.flow_parameters:
            ctx.add(
                "when-unknown-parameter",
                f"{base}.when",
                f"flow.parameters[{name!r}] is not declared in spec.parameters (declared:"
                f" {declared})",
            )


def _flow_parameters(tokens: list[conditions.Token]) -> list[str]:
    """Names in ``flow.parameters['<p>']`` / ``flow.parameters.<p>`` (plain literals only:
    one with escapes or triple quotes is left to the run time)."""
    found: list[str] = []
    for at, (kind, text) in enumerate(tokens):
        if (kind, text) != ("ident", "flow") or (at and tokens[at - 1] == ("other", ".")):
            continue
        if tokens[at + 1 : at + 3] != [("other", "."), ("ident", "parameters")]:
            continue
        rest = tokens[at + 3 : at + 6]
        if len(rest) == 3 and rest[0] == ("other", "[") and rest[1][0] == "string":
            literal = rest[1][1]
            plain = len(literal) >= 2 and literal[0] == literal[-1] and literal[0] in "'\""
            inner = literal[1:-1]
            if plain and "\\" not in inner and inner[:2] not in ("''", '""'):
                found.append(inner)
        elif len(rest) >= 2 and rest[0] == ("other", ".") and rest[1][0] == "ident":
            found.append(rest[1][1])
    return found


def check_value(ctx: Context, value: object, path: str) -> None:
    text = decoded.string(value)
    if text is not None and len(text.encode()) > requests.MAX_PARAMETER_VALUE:
        ctx.add(
            "parameter-too-long",
            path,
            f"is {len(text.encode())} bytes, over the limit of {requests.MAX_PARAMETER_VALUE};"
            " pass large data through a ConfigMap or an artifact",
        )


def check_request_id(ctx: Context, request: Mapping[str, object], path: str) -> None:
    request_id = decoded.string(request.get("id"))
    if request_id is None:
        return  # missing or not a string: the shape check says so
    if len(request_id) > requests.MAX_REQUEST_ID or not _REQUEST_ID.fullmatch(request_id):
        ctx.add(
            "invalid-request-id",
            f"{path}.id",
            f"{request_id!r} must be 1-{requests.MAX_REQUEST_ID} letters, digits, '-', '_',"
            " '.' or ':', starting and ending with a letter or digit; use a new id for each"
            " request (zen-flow uses the time)",
        )


def check_retry(ctx: Context, spec: Mapping[str, object], retry: Mapping[str, object]) -> None:
    steps = [
        name
        for name in (
            decoded.string(s.get("name"))
            for s in decoded.items(spec.get("steps")) + decoded.items(spec.get("finally"))
        )
        if name
    ]
    known = set(steps)
    for i, name in enumerate(decoded.list_or_none(retry.get("steps")) or []):
        if isinstance(name, str) and name not in known:
            ctx.add(
                "retry-unknown-step",
                f"spec.retry.steps[{i}]",
                f"{name!r} is not a step of this flow; its steps: {_listed(steps)}",
            )
    declared = sorted(ctx.flow_parameters)
    for name, value in (decoded.mapping_or_none(retry.get("parameters")) or {}).items():
        path = f"spec.retry.parameters.{name}"
        if name not in ctx.flow_parameters:
            ctx.add(
                "retry-unknown-parameter",
                path,
                f"{name!r} is not a parameter of this flow (spec.parameters); "
                + (f"its parameters: {_listed(declared)}" if declared else "it declares none"),
            )
        check_value(ctx, value, path)


def _listed(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
