"""Output parameters of a finished step: read them from its own data plane and cap their size.

Where a value comes from (``steps[].outputs.parameters[].valueFrom``):
- ``terminationMessageKey`` (the default, with the parameter's own name as the key): the step's
  container termination message, which the kubelet reads from ``terminationMessagePath`` when
  the container exits and Kubernetes caps at 4 KiB. It is either a JSON object (string values
  as they are, other values as compact JSON; the only way to carry newlines) or ``key=value``
  lines (key and value stripped; the first ``=`` splits).
- ``jsonPath``: a JSONPath (``$.status.succeeded``) into the step's own Job.

Invariants:
- A value is stored only whole: a value over ``MAX_VALUE_BYTES`` fails the step (a truncated
  value would be passed on silently as if it were right), and so does a step whose values
  would take the flow's recorded outputs over ``MAX_FLOW_BYTES`` (they live in the JobFlow's
  status, and etcd refuses objects over ~1.5 MiB). The messages name the cap.
- A declared output that is not found fails the step, unless it is ``optional: true``.
- Pure: the caller (the planner) passes the Job and the termination message it was given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from jobflow import decoded, parameters

# One value: what a termination message can hold at most (the kubelet's 4 KiB cap).
MAX_VALUE_BYTES: Final = 4096
# All recorded output values of one flow together: keeps the status far below etcd's limit.
MAX_FLOW_BYTES: Final = 64 * 1024

OUTPUT_ERROR: Final = "OutputError"  # the step reason when its outputs cannot be recorded


class OutputError(ValueError):
    """A step's outputs cannot be recorded; the message says which and why."""


def parse_termination_message(text: str) -> dict[str, str]:
    """A JSON object (values as text; non-strings as compact JSON) or ``key=value`` lines."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            loaded: object = json.loads(stripped)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            return {
                str(k): v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
                for k, v in loaded.items()
            }
    out: dict[str, str] = {}
    for line in stripped.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


def needs_termination_message(step: Mapping[str, object]) -> bool:
    """Whether some declared output of ``step`` is read from the termination message."""
    for param in decoded.items(decoded.path(step, "outputs", "parameters")):
        if not decoded.string(decoded.path(param, "valueFrom", "jsonPath")):
            return True
    return False


def collect(
    step: Mapping[str, object],
    *,
    job: Mapping[str, object],
    termination_message: str | None,
) -> dict[str, str]:
    """The output parameter values of ``step`` whose Job ``job`` succeeded.

    ``termination_message`` is None when the pods could not be read (gone): outputs that need
    it are then missing. Raises ``OutputError`` for a missing non-optional output or a value
    over ``MAX_VALUE_BYTES``.
    """
    values: dict[str, str] = {}
    message: dict[str, str] | None = None
    missing: list[str] = []
    for param in decoded.items(decoded.path(step, "outputs", "parameters")):
        name = decoded.string(param.get("name"))
        if not name:
            continue
        value_from = decoded.mapping(param.get("valueFrom"))
        expression = decoded.string(value_from.get("jsonPath"))
        found: str | None
        if expression:
            found = parameters.json_path(job, expression)
            where = f"jsonPath {expression!r} of the Job"
        else:
            key = decoded.string(value_from.get("terminationMessageKey")) or name
            if message is None:
                message = parse_termination_message(termination_message or "")
            found = message.get(key)
            where = f"key {key!r} of the termination message"
        if found is None:
            if not decoded.boolean(param.get("optional")):
                missing.append(f"{name!r} ({where})")
            continue
        size = len(found.encode())
        if size > MAX_VALUE_BYTES:
            raise OutputError(
                f"output parameter {name!r} is {size} bytes, over the cap of {MAX_VALUE_BYTES}"
                " bytes per value; pass large data as an artifact"
            )
        values[name] = found
    if missing:
        hint = (
            " (the termination message was empty, or its pod is gone)"
            if termination_message is None and message is not None
            else ""
        )
        raise OutputError(f"missing output parameter {', '.join(missing)}{hint}")
    return values


def check_flow_budget(new: Mapping[str, str], recorded: Sequence[Mapping[str, str]]) -> None:
    """Raise ``OutputError`` if ``new`` would take the flow's outputs over ``MAX_FLOW_BYTES``."""
    total = sum(len(k.encode()) + len(v.encode()) for m in (new, *recorded) for k, v in m.items())
    if total > MAX_FLOW_BYTES:
        raise OutputError(
            f"output parameters of the flow would take {total} bytes, over the cap of"
            f" {MAX_FLOW_BYTES} bytes per flow; pass large data as an artifact"
        )
