"""The planner's side of operator requests (jobflow.requests): a retry reopens a finished flow,
a stop winds a running one down. Pure functions over the pass (``planning.passes.Pass``).

- ``reopen``: a new ``spec.retry`` on a Succeeded/Failed flow resets the steps it runs again
  (``StepState.rerun``: Pending, reason Retried, attempts keep counting) before the Jobs are
  read for adoption, so a pass planned again after a lost status write adopts the Jobs the
  first one created instead of creating new ones. The current run starts now (startTime; the
  flow deadline counts from it), completionTime goes (TTL waits for the new end), the
  parameters in effect take the retry's values, the stop in effect is cleared, and the id is
  recorded in ``status.requests.retry`` with a history entry and an Event.
- ``begin_stop``: a new ``spec.stop`` on an unfinished flow is recorded (``status.stop``,
  ``status.requests.stop``, history, Event). Every pass of a flow with a stop in effect then
  ``wind_down``s: Terminate is the pass's ``stop`` (running Jobs deleted); Stop starts nothing,
  ends waits (retries, approvals, unstarted steps: reason Stopped) and lets running steps
  finish, then the flow fails with reason Stopped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from jobflow import decoded, phases, requests
from jobflow.phases import StepPhase
from jobflow.spec import FlowSpec
from jobflow.stepstate import Event, StepState


class Pass(Protocol):
    """What this module uses of the pass."""

    @property
    def flow(self) -> FlowSpec: ...
    @property
    def now_text(self) -> str: ...
    @property
    def steps(self) -> Sequence[StepState]: ...

    prior: dict[str, object]
    parameters: dict[str, str]
    handled: dict[str, str]
    history: list[object]
    stop_entry: dict[str, object] | None

    def emit(self, event: Event) -> None: ...
    def stop(self, reason: str, message: str, *, everything: bool = False) -> None: ...


def reopen(p: Pass, retry: requests.Retry, chosen: Sequence[str]) -> None:
    """Reset the ``chosen`` steps and start a new run of the flow (see the module docstring)."""
    if not p.history:
        # The first run is written down when the first retry makes it history.
        p.history.append(
            requests.history_entry(
                requests.RUN,
                at=decoded.string(p.prior.get("startTime")) or p.now_text,
                parameters=p.parameters,
                message=_ended(p),
            )
        )
    else:
        # The run the last retry began has ended: say how, on its entry.
        last = decoded.mapping(p.history[-1])
        if last.get("type") == requests.RETRY and "ended" not in str(last.get("message")):
            said = decoded.string(last.get("message")) or ""
            p.history[-1] = {**last, "message": f"{said}; {_ended(p)}" if said else _ended(p)}
    by_name = {s.name: s for s in p.steps}
    shown: list[str] = []
    for name in chosen:
        step = by_name[name]
        why = f"run again by retry {retry.id}{requests.by(retry.requested_by)}"
        step.rerun(why)
        shown.append(f"{name} (attempt {step.attempts + 1})" if step.attempts else name)
    # The finally steps run again after the steps re-run (planning.finale): the DAG's outcome
    # is decided anew.
    for step in p.steps:
        if step.spec.is_finally and step.name not in chosen and (step.attempts or step.is_terminal):
            step.rerun(f"run again after retry {retry.id}")
    p.prior.pop("outcome", None)
    changed = {k: v for k, v in retry.parameters.items() if p.parameters.get(k) != v}
    p.parameters.update(retry.parameters)
    p.handled["retry"] = retry.id
    p.stop_entry = None
    # A stop that arrived after the flow ended is moot: it must not stop the new run.
    stop = requests.read_stop({"spec": p.flow.raw})
    if stop is not None:
        p.handled["stop"] = stop.id
    p.prior["startTime"] = p.now_text
    p.prior.pop("completionTime", None)
    params = ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    message = f"runs again: {', '.join(shown)}" + (f"; parameters {params}" if params else "")
    p.history.append(
        requests.history_entry(
            requests.RETRY,
            at=p.now_text,
            request_id=retry.id,
            requested_by=retry.requested_by,
            steps=chosen,
            parameters=dict(retry.parameters),
            message=message,
        )
    )
    p.emit(
        Event(
            "Normal",
            "FlowRetried",
            f"retry {retry.id}{requests.by(retry.requested_by)}: {message}",
        )
    )


def _ended(p: Pass) -> str:
    phase = decoded.string(p.prior.get("phase")) or "?"
    failed = [s.name for s in p.steps if s.phase == StepPhase.FAILED]
    return f"ended {phase}" + (f" (failed: {', '.join(failed)})" if failed else "")


def begin_stop(p: Pass, stop: requests.Stop) -> None:
    """Record a new stop request; ``wind_down`` acts on it in this pass and the next ones."""
    kind = phases.TERMINATED if stop.is_terminate else phases.STOPPED
    running = [s.name for s in p.steps if s.is_active]
    p.handled["stop"] = stop.id
    entry = requests.history_entry(
        str(stop.mode),
        at=p.now_text,
        request_id=stop.id,
        requested_by=stop.requested_by,
        message=_stop_words(stop, running),
    )
    p.stop_entry = entry
    p.history.append(entry)
    p.emit(
        Event(
            "Normal",
            "FlowStopping" if not stop.is_terminate else "FlowTerminating",
            f"{kind.lower()} requested ({stop.id}){requests.by(stop.requested_by)}: "
            f"{_stop_words(stop, running)}",
        )
    )


def _stop_words(stop: requests.Stop, running: Sequence[str]) -> str:
    if stop.is_terminate:
        return "nothing new starts; running Jobs are deleted" + (
            f" ({', '.join(running)})" if running else ""
        )
    return "nothing new starts" + (
        f"; running steps finish first ({', '.join(running)})" if running else ""
    )


def stop_message(stop: requests.Stop) -> str:
    verb = "terminated" if stop.is_terminate else "stopped"
    return f"{verb} by request {stop.id}{requests.by(stop.requested_by)}"


def wind_down(p: Pass, stop: requests.Stop) -> str | None:
    """Act on the stop in effect; the flow's failure reason once it may end, else None."""
    message = stop_message(stop)
    if stop.is_terminate:
        p.stop(phases.TERMINATED, message, everything=True)  # finally steps too
        return None  # p.stop set the flow's reason
    dag = [s for s in p.steps if not s.spec.is_finally]  # finally steps run after a Stop
    for step in dag:
        if step.is_active or step.is_terminal:
            continue
        if step.is_waiting_retry:
            p.emit(step.give_up_retry(message, reason=phases.STOPPED))
        else:
            p.emit(step.skip(phases.STOPPED, message, at=p.now_text))
    if any(s.is_active for s in dag):
        return None
    return message
