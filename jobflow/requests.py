"""Operator requests on a JobFlow (``spec.retry``, ``spec.stop``) and the flow parameters.

Requests are declarative fields, so `kubectl patch`, GitOps and `zen-flow retry/stop/terminate`
are the same write. Each carries an ``id``; the controller acts on a request exactly once: the
id it acted on goes into ``status.requests`` in the same status write that carries the
request's effect (steps reset, steps stopped). A controller killed before that write finds the
request still new and redoes the same deterministic work: a retried step's next attempt has the
same Job name (attempts continue their numbering), so the Job created before the kill is
adopted, never doubled.

- ``spec.retry {id, steps?, parameters?}`` acts on a finished flow. One that arrives while the
  flow runs is recorded and refused with a Warning Event (so a manifest applied with a retry
  in it never retries later by surprise), except while a stop is in effect: then it waits for
  the flow to end (stop, then retry, is one gesture). Without ``steps``
  every Failed and Skipped step runs again; with ``steps`` those steps and everything
  downstream of them. Succeeded steps keep their results and outputs. ``parameters``
  override ``spec.parameters`` values for this run. A retry that finds nothing to run again is
  recorded and said in an Event; the flow stays as it was.
- ``spec.stop {id, mode}``: ``Stop`` starts nothing new and lets running steps finish;
  ``Terminate`` also deletes the running Jobs (and their pods) now. Both end the flow Failed,
  reason Stopped / Terminated. The stop in effect is kept in ``status.stop`` until a retry.
  A stop that arrives when the flow already finished is recorded and does nothing.
- ``spec.parameters [{name, value}]``: the values in effect are ``status.parameters``, fixed
  when the flow starts (from the spec) and changed only by a retry's ``parameters``; a step
  takes one with ``inputs.parameters[].valueFrom.flowParameter`` and ``when`` reads
  ``flow.parameters['<name>']``.

Who asked: the mutating webhook stamps ``requestedBy`` from the admission request's user when
the API server sends one (jobflow.requests.stamp_patch); a value a user wrote is replaced, or
removed when the server sends no user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from jobflow import decoded, outputs
from jobflow.phases import StepPhase
from jobflow.spec import StopMode

# A request id is a short token (a timestamp, a commit, a counter); 63 keeps it label-sized.
MAX_REQUEST_ID: Final = 63
# status.history keeps the newest entries only: a flow retried forever must not grow its
# status without bound (etcd's object size limit).
MAX_HISTORY: Final = 50
# A flow parameter's value, like an output parameter's, goes into `when` contexts (whose cost
# estimate counts a context string at that size) and env vars.
MAX_PARAMETER_VALUE: Final = outputs.MAX_VALUE_BYTES

RUN: Final = "Run"
RETRY: Final = "Retry"


@dataclass(frozen=True)
class Retry:
    id: str
    steps: tuple[str, ...]
    parameters: Mapping[str, str]
    requested_by: str | None


@dataclass(frozen=True)
class Stop:
    id: str
    mode: StopMode
    requested_by: str | None

    @property
    def is_terminate(self) -> bool:
        return self.mode == StopMode.TERMINATE


def read_retry(obj: Mapping[str, object]) -> Retry | None:
    raw = decoded.mapping(decoded.path(obj, "spec", "retry"))
    request_id = decoded.string(raw.get("id"))
    if not request_id:
        return None
    return Retry(
        id=request_id,
        steps=tuple(decoded.strings(raw.get("steps"))),
        parameters=decoded.string_map(raw.get("parameters")),
        requested_by=decoded.string(raw.get("requestedBy")) or None,
    )


def read_stop(obj: Mapping[str, object]) -> Stop | None:
    raw = decoded.mapping(decoded.path(obj, "spec", "stop"))
    request_id = decoded.string(raw.get("id"))
    if not request_id:
        return None
    mode = StopMode.TERMINATE if raw.get("mode") == StopMode.TERMINATE else StopMode.STOP
    return Stop(
        id=request_id, mode=mode, requested_by=decoded.string(raw.get("requestedBy")) or None
    )


def handled(status: Mapping[str, object], kind: str) -> str | None:
    """The id of the last ``kind`` ("retry" or "stop") request acted on."""
    return decoded.string(decoded.path(status, "requests", kind))


def pending_retry(obj: Mapping[str, object]) -> Retry | None:
    """``spec.retry`` when the controller has not acted on it yet."""
    retry = read_retry(obj)
    status = decoded.mapping(obj.get("status"))
    return retry if retry is not None and retry.id != handled(status, "retry") else None


def pending_stop(obj: Mapping[str, object]) -> Stop | None:
    stop = read_stop(obj)
    status = decoded.mapping(obj.get("status"))
    return stop if stop is not None and stop.id != handled(status, "stop") else None


def stop_in_effect(status: Mapping[str, object]) -> Stop | None:
    """The stop recorded for the current run (``status.stop``), if any."""
    raw = decoded.mapping(status.get("stop"))
    request_id = decoded.string(raw.get("id"))
    if not request_id:
        return None
    mode = StopMode.TERMINATE if raw.get("type") == StopMode.TERMINATE else StopMode.STOP
    return Stop(id=request_id, mode=mode, requested_by=decoded.string(raw.get("requestedBy")))


def declared_parameters(spec: Mapping[str, object]) -> dict[str, str]:
    """name -> default value of ``spec.parameters``."""
    found: dict[str, str] = {}
    for entry in decoded.items(spec.get("parameters")):
        name = decoded.string(entry.get("name"))
        value = decoded.string(entry.get("value"))
        if name and value is not None:
            found[name] = value
    return found


def effective_parameters(
    spec: Mapping[str, object], status: Mapping[str, object]
) -> dict[str, str]:
    """The values in effect: the spec's defaults, overridden by what ``status.parameters``
    recorded for declared names (fixed at start, changed by retries)."""
    values = declared_parameters(spec)
    recorded = decoded.string_map(status.get("parameters"))
    for name in values:
        # A status is an observation anyone with status access may write: a value over the
        # limit validation holds the spec to (and the `when` cost estimate assumes) is ignored.
        value = recorded.get(name)
        if value is not None and len(value.encode()) <= MAX_PARAMETER_VALUE:
            values[name] = value
    return values


def downstream(roots: Sequence[str], dependencies: Mapping[str, Sequence[str]]) -> set[str]:
    """``roots`` and every step that depends on one of them, directly or not. O(V + E)."""
    dependants: dict[str, list[str]] = {}
    for step, deps in dependencies.items():
        for dep in deps:
            dependants.setdefault(dep, []).append(step)
    found: set[str] = set()
    stack = [r for r in roots if r in dependencies]
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.add(name)
        stack.extend(dependants.get(name, ()))
    return found


def steps_to_rerun(
    retry: Retry,
    *,
    order: Sequence[str],
    dependencies: Mapping[str, Sequence[str]],
    phases: Mapping[str, str | None],
) -> list[str]:
    """The steps ``retry`` runs again, in spec ``order``: the named ones and their dependants,
    or (none named) every Failed and Skipped step."""
    if retry.steps:
        chosen = downstream(retry.steps, dependencies)
    else:
        chosen = {n for n in order if phases.get(n) in (StepPhase.FAILED, StepPhase.SKIPPED)}
    return [n for n in order if n in chosen]


def rerun_for(obj: Mapping[str, object], retry: Retry) -> list[str]:
    """``steps_to_rerun`` for a JobFlow object, from its spec and its status."""
    # spec.finally too: a flow that failed only in a finally step can be retried from it.
    spec_steps = decoded.items(decoded.path(obj, "spec", "steps")) + decoded.items(
        decoded.path(obj, "spec", "finally")
    )
    order = [decoded.string(s.get("name")) or "" for s in spec_steps]
    return steps_to_rerun(
        retry,
        order=order,
        dependencies={
            name: decoded.strings(s.get("dependencies"))
            for name, s in zip(order, spec_steps, strict=True)
        },
        phases={
            decoded.string(e.get("name")) or "": decoded.string(e.get("phase"))
            for e in decoded.items(decoded.path(obj, "status", "steps"))
        },
    )


def by(requested_by: str | None) -> str:
    """`` by alice`` when the requester is known."""
    return f" by {requested_by}" if requested_by else ""


def history_entry(
    kind: str,
    *,
    at: str,
    request_id: str | None = None,
    requested_by: str | None = None,
    steps: Sequence[str] = (),
    parameters: Mapping[str, str] | None = None,
    message: str = "",
) -> dict[str, object]:
    entry: dict[str, object] = {"type": kind}
    if request_id is not None:
        entry["id"] = request_id
    entry["time"] = at
    if requested_by:
        entry["requestedBy"] = requested_by
    if steps:
        entry["steps"] = list(steps)
    if parameters:
        entry["parameters"] = dict(parameters)
    if message:
        entry["message"] = message
    return entry


def with_history(status: Mapping[str, object], entry: Mapping[str, object]) -> list[object]:
    """``status.history`` with ``entry`` appended, the oldest dropped past MAX_HISTORY."""
    history: list[object] = list(decoded.items(status.get("history")))
    history.append(dict(entry))
    return history[-MAX_HISTORY:]


def with_handled(status: Mapping[str, object], kind: str, request_id: str) -> dict[str, object]:
    """``status.requests`` with ``kind`` set to ``request_id``."""
    return {**decoded.mapping(status.get("requests")), kind: request_id}


def stamp_patch(
    old: Mapping[str, object] | None, new: Mapping[str, object], username: str
) -> list[dict[str, object]]:
    """JSONPatch ops that set ``requestedBy`` of a request this write makes or changes (its id
    differs from ``old``'s) to ``username``, or remove a value the writer put there when the
    API server names no user: who asked is the API server's word, never the writer's."""
    ops: list[dict[str, object]] = []
    for field in ("retry", "stop"):
        raw = decoded.path(new, "spec", field)
        if not isinstance(raw, Mapping) or not decoded.string(raw.get("id")):
            continue
        before = decoded.mapping(decoded.path(old or {}, "spec", field))
        if before.get("id") == raw.get("id") and before.get("requestedBy") == raw.get(
            "requestedBy"
        ):
            continue  # an unchanged request keeps the stamp it got
        path = f"/spec/{field}/requestedBy"
        if username:
            if raw.get("requestedBy") != username:
                ops.append({"op": "add", "path": path, "value": username})
        elif "requestedBy" in raw:
            ops.append({"op": "remove", "path": path})
    return ops
