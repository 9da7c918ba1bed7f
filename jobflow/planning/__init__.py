"""The planner: one pure function from (flow, its Jobs, now, peers) to what should happen next.

``plan()`` reads the JobFlow (with defaults applied in memory), the Jobs labelled with the
flow, the clock and the other flows of its concurrency group, and returns a ``Plan``: objects
and Jobs to create, Jobs to delete, the complete desired ``.status``, events, the next wake-up
and whether the flow's TTL has expired. It performs no I/O; ``controller`` applies the plan.

Memory across passes. The only memory is ``.status`` plus the Jobs themselves:
- ``status.steps[].attempts`` is how many Jobs a step got (attempt ``n`` is the Job
  ``names.job_name(flow, uid, step, n)`` labelled ``attempt=n``); ``retries`` counts the
  retries charged to the retry limit and the flow ``backoffLimit`` (pod-failure-policy
  ``Ignore`` retries are not charged); ``nextAttemptTime`` is when a retry is due.
- If a status write was lost after Jobs were created, the Jobs win: a Job for attempt ``n`` of
  a step whose status says fewer attempts is adopted (the step is Running that attempt), so a
  restarted controller never creates a second Job for an attempt.
  The Jobs are the record of retries too: each attempt newer than the ones whose retry the
  status already decided (a step in RetryBackoff has decided its next one) is charged once, so
  a lost write neither buys extra retries nor charges one twice.
- Time-derived failures use deterministic times, not "now": a step timeout fails at
  ``startTime + timeoutSeconds``, a retry is due at the failed Job's ``Failed`` condition time
  plus the backoff delay. Recomputing after a lost write gives the same answer.
- A Job is deleted for its step timeout only when the prior status records its attempt (an
  adopted Job is recorded first, deleted one pass later, ``requeue_after`` 0): otherwise a
  status write lost after the delete would leave no trace of the attempt and it would run again.

Semantics (DESIGN section 3), in the order a pass applies them:
1. Finished flows: only the TTL (``delete_flow`` at ``completionTime + ttl``). Invalid spec:
   ``Accepted=False`` once, phase unchanged (Pending for a new flow), nothing started.
2. Concurrency (``executionPolicy.concurrencyKey``): with Forbid, a flow that has not started
   waits (Pending, ``Queued=True``) while an older (creationTimestamp, then name) unfinished
   and not invalid flow of the group exists; a newer flow of the group with policy Replace makes
   an unfinished flow stop (reason Replaced). A queued flow has no wake-up: the runtime
   re-enqueues a group when one of its flows changes phase.
3. Running Jobs are read from their conditions (Complete/Failed, never counters). An attempt
   whose Job is absent and whose create the API server refused for good (``rejected``: 422,
   a 403 from an admission policy or a quota, a namesake we do not own) fails with reason
   CreateRejected and the server's message, plus a Warning Event saying so; it is a failed
   attempt like any other (Count). Absent and not refused, the Job is created again. A failed
   attempt's pod is read once (until the runtime has read it, the Job is named in
   ``needs_pod_details`` and the step waits): its exit code goes to ``status.steps[].exitCode``
   and the message, a failed init container is named (an http artifact's download says which
   artifact and URL), and the attempt goes through the pod failure policy:
   FailJob fails the step at once, Ignore retries without charging the limits, Count (or no
   match) charges one retry. Retries need a retryPolicy with retries left and the flow
   ``backoffLimit`` not used up; they are cancelled when the flow is failing.
4. ``activeDeadlineSeconds`` past ``startTime`` (or Replace): finished Jobs are credited first,
   running Jobs are deleted, unfinished steps fail/skip with that reason, the flow fails. A
   flow whose steps all finished keeps its own result.
5. Scheduling, repeated until nothing moves: a step is ready when every dependency is
   Succeeded, Skipped, or Failed with continueOnFailure. Ready steps evaluate ``when`` (false:
   Skipped, reason ConditionFalse; an evaluation error fails the step), Manual steps wait in
   PendingApproval until the ``approve.workflow.kube-zen.io/<step>`` annotation says "true"
   (Succeeded) or "false" (Failed, reason Rejected); Job steps get their inputs resolved
   (jobflow.parameters; an unusable input fails the step, reason InputError) and a Job. Once
   a step failed without continueOnFailure nothing new starts: steps downstream of it are
   Skipped (UpstreamFailed), the other unstarted ones Skipped (FlowFailed), and the flow fails
   when its running steps have finished. ``spec.suspend`` starts nothing (running Jobs finish,
   timeouts still apply); Jobs are created in spec order.
   Caps (jobflow.planning.governance): ``executionPolicy.parallelism`` bounds the active
   (Running or Queued) Job steps, ``max_starts`` the new Jobs of this pass; held steps stay
   Pending (WaitingForParallelism / WaitingForCapacity).
   A Job suspended by someone else (Kueue) makes its step Queued (reason JobSuspended); its
   run timeout counts from the Job's own ``status.startTime`` (admission), never while it is
   suspended; ``pendingTimeoutSeconds`` bounds the wait before a pod of it runs (from its
   creation or last suspension/resumption) and fails the attempt with PendingTimeout.
6. Phase: Failed/Succeeded when done; else Running while a step fails but others still run;
   Suspended; Queued when nothing runs and a step is Queued or held by the controller's cap
   (condition Queued=True names those steps and their messages);
   Paused when a step awaits approval and nothing runs or waits to retry; Running.

7. ``spec.finally`` (planning.finale): finally steps start once every DAG step is terminal,
   see the DAG's outcome (``status.outcome``) and end the flow: it is terminal only when they
   all are. Fan-out (jobflow.fanout_kind): a step with items runs each as its own attempts of
   Jobs (``step[i]``), summed up into the step once this pass's failed attempts are decided.

Idempotence (what the runtime relies on): applying a plan and planning again on the resulting
world yields no creates or deletes, the same status and no events. Events are emitted only on
transitions computed in this pass, so they are not repeated.

resourceTemplates: the PVCs/ConfigMaps are in ``create_objects`` on every pass until the status
carries condition ``ResourcesCreated=True``, which the same plan sets. The runtime applies
``create_objects`` first (AlreadyExists for an object owned by this flow is success), then the
Jobs and deletions, and writes the status last; if anything before fails it does not write the
status, so the condition is only ever recorded once the objects exist.

Terminal flows (Succeeded/Failed) are frozen: their phase, steps and completionTime never
change again, except through a retry request (``spec.retry`` with a new id: the steps it runs
again are reset and a normal pass runs; jobflow.requests, planning.operate); otherwise the
planner only watches the TTL and records a stop request that came too late. A stop request
on an unfinished flow winds it down (Stop) or deletes its running Jobs (Terminate).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final

from jobflow import artifacts, decoded, defaults, phases, requests, status, validation
from jobflow import outputs as jobflow_outputs
from jobflow.errors import Problem
from jobflow.jobs import ObservedJob
from jobflow.phases import FlowPhase
from jobflow.planning.failures import MAX_IGNORED_RETRIES
from jobflow.planning.passes import Pass
from jobflow.planning.types import Plan, make_plan
from jobflow.stepstate import Event

__all__ = [
    "MAX_IGNORED_RETRIES",
    "Event",
    "ObservedJob",
    "Plan",
    "plan",
    "spec_problems",
    "with_defaults",
]

logger = logging.getLogger(__name__)

# How many validation problems the Accepted=False message lists before "and N more".
MAX_PROBLEMS_IN_MESSAGE: Final = 10


def plan(
    flow: Mapping[str, object],
    observed_jobs: Sequence[ObservedJob],
    now: datetime,
    *,
    peers: Sequence[Mapping[str, object]] = (),
    fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE,
    problems: Sequence[Problem] | None = None,
    rejected: Mapping[str, str] | None = None,
    max_starts: int | None = None,
) -> Plan:
    """Decide the next actions for ``flow``; see the module docstring for the contract.

    ``fetch_image`` (a controller setting) runs the init containers that download ``http``
    input artifacts (jobflow.artifacts). ``problems`` is ``spec_problems(flow)`` when the caller
    already knows it (the controller keeps it per flow generation: the spec cannot change
    without a new generation); None validates here. ``rejected`` maps the name of a Job whose
    create the API server refused for good to the server's message: a Running attempt whose
    Job is absent and refused fails (reason CreateRejected) and its retryPolicy applies.
    ``max_starts`` (None: no limit) is how many new Jobs this pass may create under the
    controller's ``--max-active-jobs``; ready steps beyond it wait (WaitingForCapacity) and
    ``Plan.held_for_capacity`` counts them (see jobflow.planning.governance).
    """
    if now.tzinfo is None:
        raise ValueError("plan() needs a timezone-aware 'now'")
    obj = with_defaults(flow)
    prior = decoded.mapping(flow.get("status"))
    meta = decoded.mapping(obj.get("metadata"))
    if meta.get("deletionTimestamp"):
        # Being deleted: owner references remove the Jobs; nothing to add.
        return make_plan(status=prior)
    retry = None
    if decoded.string(prior.get("phase")) in phases.TERMINAL_FLOW_PHASES:
        retry = requests.pending_retry(obj)
        if retry is None or not requests.rerun_for(obj, retry):
            return _finished(obj, now, ignored=retry)
    if problems is None:
        problems = _validate(obj)
    if problems:
        return _invalid(obj, problems, now)
    return Pass(
        obj,
        observed_jobs,
        now,
        peers,
        fetch_image=fetch_image,
        rejected=rejected or {},
        max_starts=max_starts,
        retry=retry,
    ).run()


def spec_problems(flow: Mapping[str, object]) -> list[Problem]:
    """What ``plan`` finds wrong with ``flow``'s spec (its defaults filled in); [] when valid.

    It depends only on the spec and the name, never on the status or the rest of the metadata,
    so a caller may keep it for as long as ``metadata.generation`` stays the same."""
    return _validate(with_defaults(flow))


def _validate(obj: Mapping[str, object]) -> list[Problem]:
    # The spec is validated, not the status: a status written by another version must never
    # make a valid flow look invalid.
    return validation.validate({k: v for k, v in obj.items() if k != "status"})


def with_defaults(flow: Mapping[str, object]) -> dict[str, object]:
    """``defaults.apply_defaults(flow)`` without copying what the defaults do not touch.

    The planner runs on every pass and never mutates its input, so instead of a deep copy of
    the whole flow (Job templates included: most of the cost of a pass) it applies
    ``defaults.missing`` (the table behind default_patch, see jobflow.defaults) copy-on-write: only the
    objects on the path to a default are copied.
    """
    root: dict[str, object] = dict(flow)
    ours: set[int] = {id(root)}
    for parents, key, value in defaults.missing(flow):
        node: object = root
        for token in parents:
            child: object
            if isinstance(node, dict) and isinstance(token, str):
                child = node.get(token)
            elif isinstance(node, list) and isinstance(token, int) and token < len(node):
                child = node[token]
            else:
                break
            if id(child) not in ours:
                if type(child) is dict or isinstance(child, Mapping):  # dict first: ABC is slow
                    child = dict(child)
                elif isinstance(child, list):
                    child = list(child)
                else:
                    break
                ours.add(id(child))
                node[token] = child  # type: ignore[index]
            node = child
        else:
            if isinstance(node, dict):
                node[key] = copy.deepcopy(value)
    return root


def _finished(
    obj: Mapping[str, object], now: datetime, *, ignored: requests.Retry | None = None
) -> Plan:
    """A Succeeded/Failed flow: frozen status; delete it once its TTL has passed. A new stop
    request, or a retry that has nothing to run again (``ignored``), is recorded and said."""
    meta = decoded.mapping(obj.get("metadata"))
    prior = decoded.mapping(obj.get("status"))
    new_status = dict(prior)
    generation = decoded.integer(meta.get("generation"))
    if generation is not None:
        new_status["observedGeneration"] = generation
    completed = decoded.parse_time(prior.get("completionTime"))
    if completed is None:
        # Written by something that did not record it: fix it now, once.
        completed = decoded.truncate(now)
        new_status["completionTime"] = decoded.format_time(completed)
    policy = decoded.mapping(decoded.path(obj, "spec", "executionPolicy"))
    events: list[Event] = []
    if ignored is not None:
        new_status["requests"] = requests.with_handled(new_status, "retry", ignored.id)
        events.append(
            Event(
                "Normal",
                "RetryIgnored",
                f"retry {ignored.id}{requests.by(ignored.requested_by)}: no Failed or Skipped"
                " step to run again; name the steps to run again (zen-flow retry --step)",
            )
        )
    stop = requests.pending_stop(obj)
    if stop is not None:
        # Moot once the flow ended; recorded so that it never stops a later retry's run.
        new_status["requests"] = requests.with_handled(new_status, "stop", stop.id)
        events.append(
            Event(
                "Normal",
                "StopIgnored",
                f"stop request {stop.id}{requests.by(stop.requested_by)}: the flow already"
                f" finished ({decoded.string(prior.get('phase'))})",
            )
        )
    ttl = decoded.integer(policy.get("ttlSecondsAfterFinished"))
    if ttl is None:
        return make_plan(status=new_status, events=events)
    expiry = completed + timedelta(seconds=max(ttl, 0))
    if now >= expiry:
        return make_plan(status=new_status, events=events, delete_flow=True)
    return make_plan(status=new_status, events=events, requeue_after=(expiry - now).total_seconds())


def _invalid(obj: Mapping[str, object], problems: Sequence[Problem], now: datetime) -> Plan:
    """An invalid spec reached the controller: say so once (Accepted=False), start nothing."""
    meta = decoded.mapping(obj.get("metadata"))
    prior = decoded.mapping(obj.get("status"))
    shown = [str(p) for p in problems[:MAX_PROBLEMS_IN_MESSAGE]]
    if len(problems) > MAX_PROBLEMS_IN_MESSAGE:
        shown.append(f"and {len(problems) - MAX_PROBLEMS_IN_MESSAGE} more")
    message = "; ".join(shown)
    previous = decoded.items(prior.get("conditions"))
    kept = [
        status.Desired(
            type=t,
            status=decoded.string(c.get("status")) == "True",
            reason=decoded.string(c.get("reason")) or "",
            message=decoded.string(c.get("message")) or "",
        )
        for c in previous
        for t in (decoded.string(c.get("type")),)
        if t is not None and t != status.ACCEPTED
    ]
    desired = [status.Desired(status.ACCEPTED, False, "InvalidSpec", message), *kept]
    generation = decoded.integer(meta.get("generation"))
    new_status = dict(prior)
    new_status["phase"] = decoded.string(prior.get("phase")) or FlowPhase.PENDING
    if generation is not None:
        new_status["observedGeneration"] = generation
    new_status["conditions"] = status.merge_conditions(
        previous, desired, now=now, generation=generation
    )
    events: list[Event] = []
    old_accepted = [c for c in previous if c.get("type") == status.ACCEPTED]
    if (
        not old_accepted
        or old_accepted[0].get("status") != "False"
        or (old_accepted[0].get("message") != message)
    ):
        events.append(Event("Warning", "InvalidSpec", f"spec rejected: {message}"))
    return make_plan(status=new_status, events=events)


def _parse_termination_message(text: str) -> dict[str, str]:
    """A JSON object (values as text; non-strings as compact JSON) or ``key=value`` lines."""
    return jobflow_outputs.parse_termination_message(text)
