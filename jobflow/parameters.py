"""Input parameters of a step: resolve their values and put them into the Job template.

Sources (``steps[].inputs.parameters[]``, exactly one per parameter; validation checks that):
- ``value``: the literal string.
- ``valueFrom.stepOutputRef {step, parameter}``: an output parameter of an earlier step, from
  ``status.steps[].outputs.parameters`` (recorded when that step succeeded).
- ``valueFrom.flowOutcome phase|failedSteps``: how spec.steps ended (the phase, or the failed
  steps as a JSON list), for a step of spec.finally
- ``valueFrom.flowParameter <name>``: the flow parameter's value in effect for this run
  (``spec.parameters`` overridden by `run -p` or a retry request; jobflow.requests).
- ``valueFrom.jsonPath "<step>:$.expr"``: a JSONPath into that step's latest Job (the seed's
  form; the root is the whole Job, e.g. ``build:$.status.succeeded``).
- ``valueFrom.configMapKeyRef`` / ``secretKeyRef``: read by the kubelet, not by the controller
  (the planner is pure and the controller should not cache every Secret in the cluster). The
  value reaches the pod as an env var with ``valueFrom``; a ``{{ parameters.<name> }}``
  placeholder for it becomes the Kubernetes reference ``$(ENV)``, which the kubelet expands in
  ``command``, ``args`` and ``env[].value`` only, so such a placeholder anywhere else is an error.
  A ConfigMap named like a resourceTemplate gets its real name ``<flow>-<name>``.

Substitution: ``{{ parameters.<name> }}`` (blanks inside the braces optional) is replaced in
every string leaf of the decoded Job template (never by text templating of the JSON, so a value
cannot break the structure). A placeholder naming no input is an error. Every input is also
set as an env var (name upper-cased, non-alphanumerics as ``_``) on each container that does not
already define that variable.

Values arrive exactly: in the fields the kubelet expands (container ``command``, ``args``,
``env[].value``) every ``$`` of a value is written ``$$``, which the kubelet turns back into
``$``, so a value containing ``$(HOME)`` is not expanded a second time.

Errors are returned, not raised: the planner fails the step with a message saying which
parameter and which field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from jobflow import decoded

PLACEHOLDER: Final = re.compile(r"\{\{\s*parameters\.([A-Za-z0-9_.-]+)\s*\}\}")
_NOT_ENV: Final = re.compile(r"[^A-Za-z0-9_]")
_PATH_TOKEN: Final = re.compile(r"\.([^.\[]+)|\[(-?\d+)\]")
# Fields whose $(VAR) references the kubelet expands (container command/args/env values).
_EXPANDED_FIELDS: Final = ("command", "args", "value")


class ParameterError(ValueError):
    """An input that cannot be resolved or used; the message names the parameter and field."""


@dataclass(frozen=True)
class Resolved:
    """A step's inputs: literal values, and kubelet-read values as env var sources."""

    values: Mapping[str, str]
    # name -> env var source for configMapKeyRef/secretKeyRef inputs ({"configMapKeyRef": ...})
    kubelet: Mapping[str, Mapping[str, object]]

    def is_empty(self) -> bool:
        return not self.values and not self.kubelet


def env_name(parameter: str) -> str:
    name = _NOT_ENV.sub("_", parameter).upper()
    return f"P_{name}" if name[:1].isdigit() else name


def resolve(
    step: Mapping[str, object],
    *,
    outputs: Mapping[str, Mapping[str, str]],
    jobs: Mapping[str, Mapping[str, object]],
    config_map_renames: Mapping[str, str],
    flow_parameters: Mapping[str, str] | None = None,
    flow_outcome: Mapping[str, str] | None = None,
) -> Resolved:
    """Resolve ``step``'s input parameters.

    ``outputs`` maps step name -> its recorded output parameters; ``jobs`` maps step name -> its
    latest Job. Raises ``ParameterError`` for an input that cannot be resolved.
    """
    values: dict[str, str] = {}
    kubelet: dict[str, Mapping[str, object]] = {}
    for param in decoded.items(decoded.path(step, "inputs", "parameters")):
        name = decoded.string(param.get("name"))
        if not name:
            continue
        literal = decoded.string(param.get("value"))
        if literal is not None:
            values[name] = literal
            continue
        source = decoded.mapping(param.get("valueFrom"))
        flow_value = _flow_value(name, source, flow_parameters, flow_outcome)
        if flow_value is not None:
            values[name] = flow_value
            continue
        ref = decoded.mapping(source.get("stepOutputRef"))
        if ref:
            upstream = decoded.string(ref.get("step")) or ""
            output = decoded.string(ref.get("parameter")) or ""
            recorded = outputs.get(upstream, {})
            if output not in recorded:
                raise ParameterError(
                    f"input parameter {name!r}: step {upstream!r} has no output parameter "
                    f"{output!r} (did it succeed and write it to its termination message?)"
                )
            values[name] = recorded[output]
            continue
        expression = decoded.string(source.get("jsonPath"))
        if expression is not None:
            upstream, _, expr = expression.partition(":")
            job = jobs.get(upstream.strip())
            found = json_path(job, expr.strip()) if job is not None else None
            if found is None:
                raise ParameterError(
                    f"input parameter {name!r}: {expression!r} found nothing"
                    + ("" if job is not None else f" (step {upstream.strip()!r} has no Job)")
                )
            values[name] = found
            continue
        for kind in ("configMapKeyRef", "secretKeyRef"):
            key_ref = decoded.mapping(source.get(kind))
            if not key_ref:
                continue
            ref_name = decoded.string(key_ref.get("name")) or ""
            if kind == "configMapKeyRef":
                ref_name = config_map_renames.get(ref_name, ref_name)
            env_source: dict[str, object] = {
                "name": ref_name,
                "key": decoded.string(key_ref.get("key")) or "value",
            }
            if key_ref.get("optional") is not None:
                env_source["optional"] = decoded.boolean(key_ref.get("optional"))
            kubelet[name] = {kind: env_source}
            break
        else:
            raise ParameterError(f"input parameter {name!r} has no source")
    return Resolved(values=values, kubelet=kubelet)


def _flow_value(
    name: str,
    source: Mapping[str, object],
    flow_parameters: Mapping[str, str] | None,
    flow_outcome: Mapping[str, str] | None,
) -> str | None:
    """A ``flowParameter`` or ``flowOutcome`` input's value; None for another source."""
    flow_parameter = decoded.string(source.get("flowParameter"))
    if flow_parameter is not None:
        known = flow_parameters or {}
        if flow_parameter not in known:
            raise ParameterError(
                f"input parameter {name!r}: the flow has no parameter {flow_parameter!r}"
                " (spec.parameters)"
            )
        return known[flow_parameter]
    outcome_field = decoded.string(source.get("flowOutcome"))
    if outcome_field is not None:
        # How spec.steps ended (a finally step's input; jobflow.planning.finale).
        if flow_outcome is None or outcome_field not in flow_outcome:
            raise ParameterError(
                f"input parameter {name!r}: the flow's outcome ({outcome_field}) is known"
                " only to spec.finally steps"
            )
        return flow_outcome[outcome_field]
    return None


def json_path(obj: Mapping[str, object], expression: str) -> str | None:
    """A small JSONPath subset: ``$.a.b[0].c`` or kubectl's ``{.a.b}``; None if nothing matches.

    Strings are returned as they are, booleans as ``true``/``false``, anything else as compact
    JSON (numbers included, so ``$.status.succeeded`` gives ``1``).
    """
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    text = text.removeprefix("$")
    current: object = obj
    for key, index in _PATH_TOKEN.findall(text):
        if key:
            current = current.get(key) if isinstance(current, Mapping) else None
        else:
            elements = list(current) if isinstance(current, list) else []
            position = int(index)
            in_range = -len(elements) <= position < len(elements)
            current = elements[position] if in_range else None
        if current is None:
            return None
    if isinstance(current, str):
        return current
    if isinstance(current, bool):
        return "true" if current else "false"
    return json.dumps(current, separators=(",", ":"))


def _escape_expansion(value: str) -> str:
    """``value`` as written in a field the kubelet expands: ``$$`` reads back as ``$``."""
    return value.replace("$", "$$")


def _substitute_text(text: str, inputs: Resolved, where: str, *, expanded: bool) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in inputs.values:
            value = inputs.values[name]
            return _escape_expansion(value) if expanded else value
        if name in inputs.kubelet:
            if not expanded:
                raise ParameterError(
                    f"{{{{ parameters.{name} }}}} at {where}: a value read from a "
                    "ConfigMap/Secret can only be used in command, args or env values"
                )
            return f"$({env_name(name)})"
        raise ParameterError(
            f"unresolved reference {{{{ parameters.{name} }}}} at {where}: the step declares"
            f" no input parameter {name!r}"
        )

    return PLACEHOLDER.sub(replace, text)


def _walk(node: object, inputs: Resolved, where: str, *, expanded: bool) -> object:
    if isinstance(node, str):
        return _substitute_text(node, inputs, where, expanded=expanded)
    if isinstance(node, dict):
        return {
            key: _walk(
                value,
                inputs,
                f"{where}.{key}",
                expanded=expanded or (key in _EXPANDED_FIELDS and "containers[" in where.lower()),
            )
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [
            _walk(value, inputs, f"{where}[{i}]", expanded=expanded) for i, value in enumerate(node)
        ]
    return node


def apply(template: Mapping[str, object], inputs: Resolved) -> dict[str, object]:
    """A copy of the Job ``template`` with placeholders replaced and inputs set as env vars."""
    walked = _walk(decoded.thaw(template), inputs, "template", expanded=False)
    out = dict(walked) if isinstance(walked, dict) else {}
    if inputs.is_empty():
        return out
    pod_spec = decoded.path(out, "spec", "template", "spec")
    if not isinstance(pod_spec, dict):
        return out
    for key in ("initContainers", "containers"):
        containers = pod_spec.get(key)
        if not isinstance(containers, list):
            continue
        for container in containers:
            if isinstance(container, dict):
                _add_env(container, inputs)
    return out


def _add_env(container: dict[str, object], inputs: Resolved) -> None:
    env = container.get("env")
    current = env if isinstance(env, list) else []
    defined = {decoded.string(decoded.mapping(v).get("name")) for v in current}
    added: list[object] = []
    for name, value in inputs.values.items():
        var = env_name(name)
        if var not in defined:
            added.append({"name": var, "value": _escape_expansion(value)})
    for name, source in inputs.kubelet.items():
        var = env_name(name)
        if var not in defined:
            added.append({"name": var, "valueFrom": dict(source)})
    # Ours first: the kubelet expands $(VAR) only for variables defined earlier in the list,
    # so the user's env values may refer to the parameters.
    container["env"] = [*added, *current]
