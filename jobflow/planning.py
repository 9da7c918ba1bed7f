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
  Retries the status missed are charged, so a lost write never buys extra retries.
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
3. Running Jobs are read from their conditions (Complete/Failed, never counters). A failed
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
6. Phase: Failed/Succeeded when done; else Running while a step fails but others still run;
   Suspended; Paused when a step awaits approval and nothing runs or waits to retry; Running.

Idempotence (what the runtime relies on): applying a plan and planning again on the resulting
world yields no creates or deletes, the same status and no events. Events are emitted only on
transitions computed in this pass, so they are not repeated.

resourceTemplates: the PVCs/ConfigMaps are in ``create_objects`` on every pass until the status
carries condition ``ResourcesCreated=True``, which the same plan sets. The runtime applies
``create_objects`` first (AlreadyExists for an object owned by this flow is success), then the
Jobs and deletions, and writes the status last; if anything before fails it does not write the
status, so the condition is only ever recorded once the objects exist.

Terminal flows (Succeeded/Failed) are frozen: their phase, steps and completionTime never
change again; the planner only watches the TTL.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from jobflow import (
    artifacts,
    backoff,
    conditions,
    decoded,
    defaults,
    jobs,
    names,
    parameters,
    status,
    validation,
)
from jobflow import outputs as jobflow_outputs
from jobflow.errors import Problem
from jobflow.model import FlowPhase, StepPhase

logger = logging.getLogger(__name__)

# Safety net for pod-failure-policy Ignore: those retries are not charged to any limit, so a
# step that always fails with an ignored exit code would otherwise loop forever.
MAX_IGNORED_RETRIES: Final = 20
# How many validation problems the Accepted=False message lists before "and N more".
MAX_PROBLEMS_IN_MESSAGE: Final = 10

RETRY_BACKOFF: Final = "RetryBackoff"  # step reason while waiting for its next attempt
UPSTREAM_FAILED: Final = "UpstreamFailed"
FLOW_FAILED: Final = "FlowFailed"
TIMEOUT: Final = "Timeout"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
REPLACED: Final = "Replaced"
REJECTED: Final = "Rejected"
APPROVED: Final = "Approved"
CONDITION_FALSE: Final = "ConditionFalse"
CONDITION_ERROR: Final = "ConditionError"
POD_FAILURE_POLICY: Final = "PodFailurePolicy"
JOB_FAILED: Final = "JobFailed"
INPUT_ERROR: Final = "InputError"

_TERMINAL_FLOW: Final = frozenset({FlowPhase.SUCCEEDED.value, FlowPhase.FAILED.value})
_TERMINAL_STEP: Final = frozenset(
    {StepPhase.SUCCEEDED.value, StepPhase.FAILED.value, StepPhase.SKIPPED.value}
)

_STEP_PHASES: Final = frozenset(p.value for p in StepPhase)

PodFailureAction = Literal["FailJob", "Ignore", "Count"]


@dataclass(frozen=True)
class ObservedJob:
    """A Job of this flow as the runtime sees it, plus what it read from the Job's pods."""

    job: Mapping[str, object]  # the batch/v1 Job JSON from the watch cache
    exit_code: int | None = None  # the failed pod's container exit code, when read
    termination_message: str | None = None  # that container's termination message
    # Set when the exit code and message are an init container's: the pod failed before the
    # step's own containers ran (an http input artifact's download, or the template's own).
    failed_init_container: str | None = None
    # True once the runtime looked at the pods, even if it found no exit code or message (pods
    # already gone): the planner then stops asking for them and decides without.
    pod_details_read: bool = False


@dataclass(frozen=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Plan:
    """What one pass decided. The runtime applies it in this order: ``create_objects``
    (AlreadyExists owned by the flow is fine), ``create_jobs`` (AlreadyExists owned by the flow
    is adoption), ``delete_jobs`` (propagation Background; NotFound is fine), then ``status``
    (only if it differs from the stored one; skipped if anything before failed), ``events``,
    and ``delete_flow``. ``requeue_after`` is the earliest pending deadline in seconds (retry,
    step timeout, flow deadline, TTL) or None. ``needs_pod_details`` names failed/succeeded
    Jobs whose pod exit code or termination message is needed: read them and plan again.
    """

    create_objects: tuple[Mapping[str, object], ...]
    create_jobs: tuple[Mapping[str, object], ...]
    delete_jobs: tuple[str, ...]
    status: Mapping[str, object]
    events: tuple[Event, ...]
    requeue_after: float | None
    delete_flow: bool
    needs_pod_details: tuple[str, ...]

    @property
    def is_noop(self) -> bool:
        """Nothing to create or delete and nothing to say (the status may still differ)."""
        return not (
            self.create_objects
            or self.create_jobs
            or self.delete_jobs
            or self.events
            or self.delete_flow
            or self.needs_pod_details
        )


def plan(
    flow: Mapping[str, object],
    observed_jobs: Sequence[ObservedJob],
    now: datetime,
    *,
    peers: Sequence[Mapping[str, object]] = (),
    fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE,
    problems: Sequence[Problem] | None = None,
) -> Plan:
    """Decide the next actions for ``flow``; see the module docstring for the contract.

    ``fetch_image`` (a controller setting) runs the init containers that download ``http``
    input artifacts (jobflow.artifacts). ``problems`` is ``spec_problems(flow)`` when the caller
    already knows it (the controller keeps it per flow generation: the spec cannot change
    without a new generation); None validates here.
    """
    if now.tzinfo is None:
        raise ValueError("plan() needs a timezone-aware 'now'")
    obj = with_defaults(flow)
    prior = decoded.mapping(flow.get("status"))
    meta = decoded.mapping(obj.get("metadata"))
    if meta.get("deletionTimestamp"):
        # Being deleted: owner references remove the Jobs; nothing to add.
        return _plan(status=prior)
    if decoded.string(prior.get("phase")) in _TERMINAL_FLOW:
        return _finished(obj, now)
    if problems is None:
        problems = _validate(obj)
    if problems:
        return _invalid(obj, problems, now)
    return _Pass(obj, observed_jobs, now, peers, fetch_image=fetch_image).run()


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
    ``defaults.default_patch`` (the same table, see jobflow.defaults) copy-on-write: only the
    objects on the path to a default are copied.
    """
    root: dict[str, object] = dict(flow)
    ours: set[int] = {id(root)}
    for op in defaults.default_patch(flow):
        pointer = op.get("path")
        if op.get("op") != "add" or not isinstance(pointer, str):
            continue
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
        node: object = root
        for token in tokens[:-1]:
            child: object
            if isinstance(node, dict):
                child = node.get(token)
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                child = node[int(token)]
            else:
                break
            if id(child) not in ours:
                if isinstance(child, Mapping):
                    child = dict(child)
                elif isinstance(child, list):
                    child = list(child)
                else:
                    break
                ours.add(id(child))
                if isinstance(node, dict):
                    node[token] = child
                elif isinstance(node, list):
                    node[int(token)] = child
            node = child
        else:
            if isinstance(node, dict) and tokens:
                node[tokens[-1]] = op.get("value")
    return root


def _plan(
    *,
    status: Mapping[str, object],
    create_objects: Sequence[Mapping[str, object]] = (),
    create_jobs: Sequence[Mapping[str, object]] = (),
    delete_jobs: Sequence[str] = (),
    events: Sequence[Event] = (),
    requeue_after: float | None = None,
    delete_flow: bool = False,
    needs_pod_details: Sequence[str] = (),
) -> Plan:
    return Plan(
        create_objects=tuple(create_objects),
        create_jobs=tuple(create_jobs),
        delete_jobs=tuple(dict.fromkeys(delete_jobs)),
        status=status,
        events=tuple(events),
        requeue_after=requeue_after,
        delete_flow=delete_flow,
        needs_pod_details=tuple(dict.fromkeys(needs_pod_details)),
    )


def _generation(meta: Mapping[str, object]) -> int | None:
    return decoded.integer(meta.get("generation"))


def _finished(obj: Mapping[str, object], now: datetime) -> Plan:
    """A Succeeded/Failed flow: frozen status; delete it once its TTL has passed."""
    meta = decoded.mapping(obj.get("metadata"))
    prior = decoded.mapping(obj.get("status"))
    new_status = dict(prior)
    generation = _generation(meta)
    if generation is not None:
        new_status["observedGeneration"] = generation
    completed = decoded.parse_time(prior.get("completionTime"))
    if completed is None:
        # Written by something that did not record it: fix it now, once.
        completed = decoded.truncate(now)
        new_status["completionTime"] = decoded.format_time(completed)
    policy = decoded.mapping(decoded.path(obj, "spec", "executionPolicy"))
    ttl = decoded.integer(policy.get("ttlSecondsAfterFinished"))
    if ttl is None:
        return _plan(status=new_status)
    expiry = completed + timedelta(seconds=max(ttl, 0))
    if now >= expiry:
        return _plan(status=new_status, delete_flow=True)
    return _plan(status=new_status, requeue_after=(expiry - now).total_seconds())


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
    generation = _generation(meta)
    new_status = dict(prior)
    new_status["phase"] = decoded.string(prior.get("phase")) or FlowPhase.PENDING.value
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
    return _plan(status=new_status, events=events)


# --- the main pass --------------------------------------------------------------------------


@dataclass
class _Step:
    """One step's working state during a pass (its status entry, being updated)."""

    name: str
    index: int
    spec: Mapping[str, object]
    dependencies: list[str]
    is_manual: bool
    continue_on_failure: bool
    timeout_seconds: int | None
    retry_policy: Mapping[str, object] | None
    phase: str = StepPhase.PENDING.value
    attempts: int = 0
    retries: int = 0
    job_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    next_attempt_time: str | None = None
    outputs: dict[str, str] | None = None
    # Running because of a Job the prior status did not record (adopted in this pass).
    adopted: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.phase in _TERMINAL_STEP

    @property
    def is_waiting_retry(self) -> bool:
        return self.phase == StepPhase.PENDING.value and self.reason == RETRY_BACKOFF

    @property
    def is_blocking_failure(self) -> bool:
        """Failed for good without continueOnFailure: the flow will fail."""
        return self.phase == StepPhase.FAILED.value and not self.continue_on_failure

    @property
    def satisfies_dependants(self) -> bool:
        return self.phase in (StepPhase.SUCCEEDED.value, StepPhase.SKIPPED.value) or (
            self.phase == StepPhase.FAILED.value and self.continue_on_failure
        )

    def to_status(self, namespace: str, *, flow_name: str = "") -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "phase": self.phase}
        out["attempts"] = self.attempts
        if self.retries:
            out["retries"] = self.retries
        if self.job_name is not None:
            out["jobRef"] = {"name": self.job_name, "namespace": namespace}
        optional: dict[str, object | None] = {
            "startTime": self.start_time,
            "completionTime": self.completion_time,
            "exitCode": self.exit_code,
            "reason": self.reason,
            "message": self.message,
            "nextAttemptTime": self.next_attempt_time,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.outputs is not None:
            out["outputs"] = {"parameters": dict(self.outputs)}
        # data passing (H8): where a succeeded step's artifacts are in the workspace claim
        # (derived from the spec, so every pass writes the same).
        if flow_name and self.phase == StepPhase.SUCCEEDED.value:
            files = artifacts.status_entries(self.spec, flow_name)
            if files:
                out["outputs"] = {**decoded.mapping(out.get("outputs")), "artifacts": files}
        return out


@dataclass(frozen=True)
class _Failure:
    """A finished-badly attempt seen in this pass, before retries are decided."""

    step: _Step
    at: datetime
    reason: str
    message: str
    action: PodFailureAction


def _step_from_spec(spec: Mapping[str, object], index: int) -> _Step:
    retry = spec.get("retryPolicy")
    timeout = decoded.integer(spec.get("timeoutSeconds"))
    return _Step(
        name=decoded.string(spec.get("name")) or f"step-{index}",
        index=index,
        spec=spec,
        dependencies=decoded.strings(spec.get("dependencies")),
        is_manual=spec.get("type") == "Manual",
        continue_on_failure=decoded.boolean(spec.get("continueOnFailure")),
        timeout_seconds=timeout,
        retry_policy=retry if isinstance(retry, Mapping) else None,
    )


def _restore(step: _Step, entry: Mapping[str, object]) -> None:
    phase = decoded.string(entry.get("phase"))
    if phase in _STEP_PHASES:
        step.phase = phase
    step.attempts = max(decoded.integer(entry.get("attempts")) or 0, 0)
    step.retries = max(decoded.integer(entry.get("retries")) or 0, 0)
    step.job_name = decoded.string(decoded.path(entry, "jobRef", "name"))
    step.start_time = decoded.string(entry.get("startTime"))
    step.completion_time = decoded.string(entry.get("completionTime"))
    step.exit_code = decoded.integer(entry.get("exitCode"))
    step.reason = decoded.string(entry.get("reason"))
    step.message = decoded.string(entry.get("message"))
    step.next_attempt_time = decoded.string(entry.get("nextAttemptTime"))
    params = decoded.path(entry, "outputs", "parameters")
    if isinstance(params, Mapping):
        step.outputs = decoded.string_map(params)


def _creation_key(obj: Mapping[str, object]) -> tuple[datetime, str]:
    meta = decoded.mapping(obj.get("metadata"))
    created = decoded.parse_time(meta.get("creationTimestamp")) or datetime.max.replace(tzinfo=UTC)
    return created, decoded.string(meta.get("name")) or ""


def _ceil_seconds(moment: datetime) -> datetime:
    """``moment`` rounded up to a whole second (stored times have second precision)."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


class _Pass:
    def __init__(
        self,
        obj: Mapping[str, object],
        observed_jobs: Sequence[ObservedJob],
        now: datetime,
        peers: Sequence[Mapping[str, object]],
        *,
        fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE,
    ) -> None:
        self.obj = obj
        self.fetch_image = fetch_image
        self.now = now
        self.now_text = decoded.format_time(now)
        self.peers = peers
        meta = decoded.mapping(obj.get("metadata"))
        self.meta = meta
        self.name = decoded.string(meta.get("name")) or ""
        self.namespace = decoded.string(meta.get("namespace")) or "default"
        self.uid = decoded.string(meta.get("uid")) or ""
        self.generation = _generation(meta)
        self.annotations = decoded.string_map(meta.get("annotations"))
        self.spec = decoded.mapping(obj.get("spec"))
        self.policy = decoded.mapping(self.spec.get("executionPolicy"))
        self.prior = decoded.mapping(obj.get("status"))
        self.prior_phase = decoded.string(self.prior.get("phase"))
        self.prior_conditions = decoded.items(self.prior.get("conditions"))
        self.suspended = decoded.boolean(self.spec.get("suspend"))
        self.flow_ref = jobs.FlowRef(name=self.name, namespace=self.namespace, uid=self.uid)
        templates = decoded.mapping(self.spec.get("resourceTemplates"))
        self.resource_templates = templates
        self.renames = jobs.resource_renames(templates, self.name)
        self.steps = [
            _step_from_spec(s, i) for i, s in enumerate(decoded.items(self.spec.get("steps")))
        ]
        self.by_name = {s.name: s for s in self.steps}
        self.observed: dict[str, dict[int, ObservedJob]] = {}
        for observed in observed_jobs:
            labels = jobs.job_labels(observed.job)
            attempt = jobs.job_attempt(observed.job)
            step_name = labels.get(names.LABEL_STEP)
            if step_name is None or attempt is None:
                continue
            self.observed.setdefault(step_name, {})[attempt] = observed

        self.create_objects: list[Mapping[str, object]] = []
        self.creates: list[tuple[int, Mapping[str, object]]] = []
        self.deletes: list[str] = []
        self.events: list[Event] = []
        self.needs_details: list[str] = []
        self.wakeups: list[datetime] = []
        self.failures: list[_Failure] = []
        self.stop_reason: str | None = None
        self.stop_message: str = ""
        self.failed_upstream: dict[str, str] | None = None

    # -- small tools --

    def event(self, kind: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.events.append(Event(kind, reason, message))

    def wake_at(self, moment: datetime) -> None:
        self.wakeups.append(moment)

    # -- loading --

    def load_steps(self) -> None:
        entries = {decoded.string(e.get("name")): e for e in decoded.items(self.prior.get("steps"))}
        for step in self.steps:
            entry = entries.get(step.name)
            if entry is not None:
                _restore(step, entry)
            self._adopt(step)

    def _adopt(self, step: _Step) -> None:
        """Jobs newer than the status knows (a lost status write): they are the truth."""
        observed = self.observed.get(step.name)
        if not observed or step.is_terminal or step.is_manual:
            return
        top = max(observed)
        if top < step.attempts:
            return
        job = observed[top].job
        created = decoded.parse_time(decoded.path(job, "metadata", "creationTimestamp"))
        # Every attempt after the first that the status missed was a retry: charge it, or a
        # lost write would buy the step extra retries. (An Ignore retry gets charged here too:
        # the conservative side of a rare race.)
        step.retries += max(top + 1 - max(step.attempts, 1), 0)
        step.attempts = top + 1
        step.adopted = True
        step.phase = StepPhase.RUNNING.value
        step.job_name = decoded.string(decoded.path(job, "metadata", "name")) or names.job_name(
            self.name, self.uid, step.name, top
        )
        step.start_time = decoded.format_time(created) if created else self.now_text
        step.completion_time = None
        step.reason = None
        step.message = None
        step.next_attempt_time = None
        step.exit_code = None

    # -- concurrency --

    def _concurrency_key(self) -> str | None:
        return decoded.string(self.policy.get("concurrencyKey")) or None

    def _group(self) -> list[Mapping[str, object]]:
        key = self._concurrency_key()
        if key is None:
            return []
        own = _creation_key(self.obj)
        out = []
        for peer in self.peers:
            meta = decoded.mapping(peer.get("metadata"))
            if meta.get("deletionTimestamp"):
                continue
            if decoded.string(meta.get("uid")) == self.uid and self.uid:
                continue
            if (
                decoded.string(meta.get("name")) == self.name
                and (decoded.string(meta.get("namespace")) or self.namespace) == self.namespace
            ):
                continue
            peer_key = decoded.path(peer, "spec", "executionPolicy", "concurrencyKey")
            if peer_key != key or _creation_key(peer) == own:
                continue
            out.append(peer)
        return out

    def replacing_peer(self) -> str | None:
        """A newer flow of the group with policy Replace: this flow must stop."""
        own = _creation_key(self.obj)
        for peer in self._group():
            policy = decoded.path(peer, "spec", "executionPolicy", "concurrencyPolicy")
            if policy == "Replace" and _creation_key(peer) > own:
                return decoded.string(decoded.path(peer, "metadata", "name")) or "?"
        return None

    def blocking_peer(self) -> str | None:
        """With Forbid, an older unfinished flow of the group that this one must wait for."""
        if self.policy.get("concurrencyPolicy", "Forbid") != "Forbid":
            return None
        if self.prior.get("startTime") or any(
            s.attempts or s.phase != StepPhase.PENDING.value for s in self.steps
        ):
            return None  # already started (even if that status write was lost): never queued
        own = _creation_key(self.obj)
        older = [
            p
            for p in self._group()
            if _creation_key(p) < own
            and decoded.string(decoded.path(p, "status", "phase")) not in _TERMINAL_FLOW
            # An invalid flow (Accepted=False) never runs: waiting for it would be forever.
            and status.condition_status(
                decoded.items(decoded.path(p, "status", "conditions")), status.ACCEPTED
            )
            != "False"
        ]
        if not older:
            return None
        first = min(older, key=_creation_key)
        return decoded.string(decoded.path(first, "metadata", "name")) or "?"

    # -- running steps --

    def refresh(self) -> None:
        for step in self.steps:
            if step.phase == StepPhase.RUNNING.value and not step.is_manual:
                self._refresh_job_step(step)

    def _refresh_job_step(self, step: _Step) -> None:
        attempt = step.attempts - 1
        if attempt < 0:
            # Running without a Job recorded: status from elsewhere; start attempt 0 properly.
            step.phase = StepPhase.PENDING.value
            return
        observed = self.observed.get(step.name, {}).get(attempt)
        job_name = names.job_name(self.name, self.uid, step.name, attempt)
        step.job_name = step.job_name or job_name
        outcome = jobs.job_outcome(observed.job) if observed is not None else None
        started = decoded.parse_time(step.start_time)
        deadline = (
            started + timedelta(seconds=step.timeout_seconds)
            if started is not None and step.timeout_seconds is not None
            else None
        )
        if observed is not None and outcome is not None and outcome.state == "succeeded":
            self._succeed(step, observed, outcome)
            return
        if observed is not None and outcome is not None and outcome.state == "failed":
            if not observed.pod_details_read:
                # the exit code explains the failure (status.steps[].exitCode, a failed
                # download) and the pod failure policy matches on it: read the pods once
                self.needs_details.append(step.job_name)
                return
            action = self._failure_action(observed, outcome)
            if observed.exit_code is not None:
                step.exit_code = observed.exit_code
            detail = outcome.message or outcome.reason or "the Job failed"
            if observed.failed_init_container is not None:
                detail = f"{detail}: {_init_failure(step.spec, observed)}"
            elif observed.exit_code is not None:
                detail = f"{detail} (exit code {observed.exit_code})"
            self.failures.append(
                _Failure(
                    step=step,
                    at=outcome.finished_at or decoded.truncate(self.now),
                    reason=JOB_FAILED if action != "FailJob" else POD_FAILURE_POLICY,
                    message=detail
                    if action != "FailJob"
                    else f"exit code {observed.exit_code} matched a FailJob rule: not retried",
                    action=action,
                )
            )
            return
        # Still running (or its Job is not visible). A Job is deleted for its timeout only once
        # a persisted status records its attempt: if this pass's status write were lost after
        # the delete, nothing would remember the attempt and it would run again.
        if deadline is not None and self.now >= deadline and not step.adopted:
            self.deletes.append(step.job_name)
            self.event(
                "Warning",
                "StepTimedOut",
                f"step {step.name} exceeded timeoutSeconds={step.timeout_seconds}; "
                f"deleting Job {step.job_name}",
            )
            self.failures.append(
                _Failure(
                    step=step,
                    at=deadline,
                    reason=TIMEOUT,
                    message=f"exceeded timeoutSeconds={step.timeout_seconds}",
                    action="Count",
                )
            )
            return
        if observed is None:
            # The Job of a Running step is missing (deleted by hand, or the cache has not caught
            # up with our own create): ensure it exists under its deterministic name. If it does
            # exist, the create is AlreadyExists, which the runtime treats as adoption.
            # Its inputs resolved when it first started; if they no longer do, leave it be.
            with contextlib.suppress(parameters.ParameterError):
                self.creates.append((step.index, self._job_manifest(step, attempt)))
        if deadline is not None:
            # An adopted step past its deadline: the next pass (after this status is written)
            # times it out.
            self.wake_at(max(deadline, self.now))

    def _failure_action(self, observed: ObservedJob, outcome: jobs.JobOutcome) -> PodFailureAction:
        """The pod failure policy's verdict (the pods have been read)."""
        rules = decoded.items(decoded.path(self.policy, "podFailurePolicy", "rules"))
        if not rules:
            return "Count"
        if outcome.reason == "DeadlineExceeded":
            return "Count"  # the Job's own activeDeadlineSeconds: no pod exit code to match
        code = observed.exit_code
        if code is None:
            return "Count"  # the pods were gone or said nothing
        for rule in rules:
            on_codes = decoded.mapping(rule.get("onExitCodes"))
            values = {
                v
                for v in (decoded.integer(x) for x in _list(on_codes.get("values")))
                if v is not None
            }
            operator = on_codes.get("operator", "In")
            matched = code in values if operator == "In" else code not in values
            if matched:
                action = rule.get("action")
                if action == "FailJob":
                    return "FailJob"
                if action == "Ignore":
                    return "Ignore"
                return "Count"
        return "Count"

    def _succeed(self, step: _Step, observed: ObservedJob, outcome: jobs.JobOutcome) -> None:
        # --- data passing (H8): outputs are collected by jobflow.outputs; a missing
        # non-optional value or one over a cap fails the attempt (retries apply).
        try:
            outputs = self._outputs(step, observed)
        except jobflow_outputs.OutputError as exc:
            self.failures.append(
                _Failure(
                    step=step,
                    at=outcome.finished_at or decoded.truncate(self.now),
                    reason=jobflow_outputs.OUTPUT_ERROR,
                    message=str(exc),
                    action="Count",
                )
            )
            return
        # --- end data passing
        if outputs is None:
            self.needs_details.append(step.job_name or "")
            return
        step.phase = StepPhase.SUCCEEDED.value
        step.completion_time = decoded.format_time(outcome.finished_at or self.now)
        step.reason = None
        step.message = None
        step.next_attempt_time = None
        if observed.exit_code is not None:
            step.exit_code = observed.exit_code
        if outputs:
            step.outputs = outputs
        self.event("Normal", "StepSucceeded", f"step {step.name} succeeded")

    def _outputs(self, step: _Step, observed: ObservedJob) -> dict[str, str] | None:
        """Output parameters of a succeeded step; None while the termination message is needed.

        Raises ``outputs.OutputError`` (missing value, over a cap)."""
        if not decoded.path(step.spec, "outputs", "parameters"):
            return {}
        if (
            observed.termination_message is None
            and not observed.pod_details_read
            and jobflow_outputs.needs_termination_message(step.spec)
        ):
            return None
        values = jobflow_outputs.collect(
            step.spec, job=observed.job, termination_message=observed.termination_message
        )
        jobflow_outputs.check_flow_budget(
            values, [s.outputs for s in self.steps if s is not step and s.outputs]
        )
        return values

    # -- failures and retries --

    def decide_failures(self, *, may_retry: bool) -> None:
        """Turn this pass's failed attempts into retries or final failures (spec order)."""
        total_retries = sum(s.retries for s in self.steps)
        backoff_limit = decoded.integer(self.policy.get("backoffLimit"))
        if backoff_limit is None:
            backoff_limit = defaults.DEFAULT_BACKOFF_LIMIT
        retrying: list[tuple[_Failure, bool]] = []
        final: list[_Failure] = []
        for failure in sorted(self.failures, key=lambda f: f.step.index):
            step = failure.step
            step.phase = StepPhase.FAILED.value
            step.reason = failure.reason
            step.message = failure.message
            step.completion_time = decoded.format_time(failure.at)
            step.next_attempt_time = None
            if failure.action == "FailJob" or not may_retry:
                final.append(failure)
                continue
            if failure.action == "Ignore":
                ignored = step.attempts - 1 - step.retries
                if ignored < MAX_IGNORED_RETRIES:
                    retrying.append((failure, False))
                else:
                    step.message += f"; {MAX_IGNORED_RETRIES} ignored failures, giving up"
                    final.append(failure)
                continue
            limit = self._retry_limit(step)
            if step.retries < limit and total_retries < backoff_limit:
                total_retries += 1
                retrying.append((failure, True))
                continue
            if step.retries < limit:
                step.message += f"; flow backoffLimit {backoff_limit} reached"
            elif limit:
                step.message += f"; retry limit {limit} reached"
            final.append(failure)

        retrying_steps = {id(f.step) for f, _ in retrying}
        failing = self.stop_reason is not None or any(
            s.is_blocking_failure for s in self.steps if id(s) not in retrying_steps
        )
        for failure, counted in retrying:
            step = failure.step
            if failing:
                step.message = f"{step.message}; not retried: the flow is failing"
                final.append(failure)
                continue
            delay = backoff.retry_delay(step.retry_policy or {}, step.attempts - 1)
            due = _ceil_seconds(failure.at + timedelta(seconds=delay))
            if counted:
                step.retries += 1
            step.phase = StepPhase.PENDING.value
            step.reason = RETRY_BACKOFF
            step.next_attempt_time = decoded.format_time(due)
            step.message = (
                f"attempt {step.attempts} failed ({failure.reason}: {failure.message}); "
                f"next attempt at {step.next_attempt_time}"
            )
            charged = (
                f"retry {step.retries}/{self._retry_limit(step)}"
                if counted
                else ("retry not counted (pod failure policy Ignore)")
            )
            self.event(
                "Normal",
                "StepRetrying",
                f"step {step.name} attempt {step.attempts} failed ({failure.reason}); "
                f"{charged} at {step.next_attempt_time}",
            )
        for failure in sorted(final, key=lambda f: f.step.index):
            self.event(
                "Warning",
                "StepFailed",
                f"step {failure.step.name} failed ({failure.step.reason}): {failure.step.message}",
            )

    def _retry_limit(self, step: _Step) -> int:
        if step.retry_policy is None:
            return 0
        limit = decoded.integer(step.retry_policy.get("limit"))
        return defaults.DEFAULT_RETRY_LIMIT if limit is None else max(limit, 0)

    def is_failing(self) -> bool:
        return self.stop_reason is not None or any(s.is_blocking_failure for s in self.steps)

    # -- stopping the whole flow (deadline, replaced) --

    def stop(self, reason: str, message: str) -> None:
        self.stop_reason = reason
        self.stop_message = message
        self.creates.clear()  # nothing starts (or restarts) in a flow that stops
        self.needs_details.clear()  # their steps' fate is decided here
        for step in self.steps:
            if step.phase == StepPhase.RUNNING.value and not step.is_manual:
                attempt = max(step.attempts - 1, 0)
                observed = self.observed.get(step.name, {}).get(attempt)
                if observed is None or jobs.job_outcome(observed.job).state == "running":
                    self.deletes.append(
                        step.job_name or names.job_name(self.name, self.uid, step.name, attempt)
                    )
                step.phase = StepPhase.FAILED.value
                step.reason = reason
                step.message = message
                step.completion_time = self.now_text
                self.event("Warning", "StepFailed", f"step {step.name} stopped: {message}")
            elif step.is_waiting_retry:
                step.phase = StepPhase.FAILED.value
                step.message = f"{step.message}; not retried: {message}"
                step.reason = reason
                step.next_attempt_time = None
                self.event("Warning", "StepFailed", f"step {step.name} not retried: {message}")
            elif not step.is_terminal:
                self._skip(step, reason, message)

    def _skip(self, step: _Step, reason: str, message: str) -> None:
        step.phase = StepPhase.SKIPPED.value
        step.reason = reason
        step.message = message
        step.completion_time = self.now_text
        step.next_attempt_time = None
        self.event("Normal", "StepSkipped", f"step {step.name} skipped ({reason}): {message}")

    # -- starting steps --

    def _job_manifest(self, step: _Step, attempt: int) -> dict[str, object]:
        """The Job for ``attempt``; raises ParameterError when an input cannot be used."""
        if not decoded.path(step.spec, "inputs", "parameters"):
            # No inputs: validation guarantees the template has no placeholders either.
            job = jobs.build_job(
                step.spec, flow=self.flow_ref, attempt=attempt, renames=self.renames
            )
            # data passing (H8): workspace/download volumes and mounts of the step's artifacts
            return artifacts.apply(
                job, step.spec, flow_name=self.name, fetch_image=self.fetch_image
            )
        latest = {
            name: by_attempt[max(by_attempt)].job
            for name, by_attempt in self.observed.items()
            if by_attempt
        }
        inputs = parameters.resolve(
            step.spec,
            outputs={s.name: s.outputs or {} for s in self.steps},
            jobs=latest,
            config_map_renames=self.renames.config_maps,
        )
        template = parameters.apply(decoded.mapping(step.spec.get("template")), inputs)
        spec = {**step.spec, "template": template}
        job = jobs.build_job(spec, flow=self.flow_ref, attempt=attempt, renames=self.renames)
        # data passing (H8): workspace/download volumes and mounts of the step's artifacts
        return artifacts.apply(job, step.spec, flow_name=self.name, fetch_image=self.fetch_image)

    def _start_job(self, step: _Step) -> None:
        attempt = step.attempts
        try:
            manifest = self._job_manifest(step, attempt)
        except parameters.ParameterError as exc:
            # Deterministic: retrying cannot help, so the step fails at once (no Job).
            step.phase = StepPhase.FAILED.value
            step.reason = INPUT_ERROR
            step.message = str(exc)
            step.start_time = step.start_time or self.now_text
            step.completion_time = self.now_text
            step.next_attempt_time = None
            self.event("Warning", "StepFailed", f"step {step.name}: {exc}")
            return
        self.creates.append((step.index, manifest))
        step.attempts = attempt + 1
        step.phase = StepPhase.RUNNING.value
        step.job_name = names.job_name(self.name, self.uid, step.name, attempt)
        step.start_time = self.now_text
        step.completion_time = None
        step.reason = None
        step.message = None
        step.next_attempt_time = None
        step.exit_code = None
        step.outputs = None
        self.event(
            "Normal",
            "StepStarted",
            f"step {step.name} started (attempt {attempt + 1}, Job {step.job_name})",
        )
        if step.timeout_seconds is not None:
            self.wake_at(decoded.truncate(self.now) + timedelta(seconds=step.timeout_seconds))

    def _failed_upstream(self) -> dict[str, str]:
        """Step -> a failed (blocking) ancestor, for every step downstream of one. O(V + E)."""
        dependants: dict[str, list[str]] = {}
        for step in self.steps:
            for dep in step.dependencies:
                dependants.setdefault(dep, []).append(step.name)
        found: dict[str, str] = {}
        for failed in self.steps:
            if not failed.is_blocking_failure:
                continue
            stack = list(dependants.get(failed.name, ()))
            while stack:
                name = stack.pop()
                if name in found:
                    continue
                found[name] = failed.name
                stack.extend(dependants.get(name, ()))
        return found

    def _approval(self, step: _Step) -> bool | None:
        value = self.annotations.get(names.approve_annotation(step.name))
        if value is None:
            return None
        text = value.strip().lower()
        if text == "true":
            return True
        if text == "false":
            return False
        return None

    def _settle_manual(self, step: _Step) -> bool:
        """Apply an approval/rejection to a ready Manual step; True if its phase changed."""
        verdict = self._approval(step)
        key = names.approve_annotation(step.name)
        if verdict is True:
            step.phase = StepPhase.SUCCEEDED.value
            step.reason = APPROVED
            step.message = f"approved by annotation {key}"
            step.start_time = step.start_time or self.now_text
            step.completion_time = self.now_text
            self.event("Normal", "StepApproved", f"step {step.name} approved")
            return True
        if verdict is False:
            step.phase = StepPhase.FAILED.value
            step.reason = REJECTED
            step.message = f"rejected by annotation {key}"
            step.start_time = step.start_time or self.now_text
            step.completion_time = self.now_text
            self.event("Warning", "StepRejected", f"step {step.name} rejected")
            return True
        if step.phase != StepPhase.PENDING_APPROVAL.value:
            step.phase = StepPhase.PENDING_APPROVAL.value
            step.reason = "AwaitingApproval"
            text = decoded.string(step.spec.get("message")) or (
                f"waiting for manual approval of step {step.name}"
            )
            step.message = f'{text} (annotate {key}="true" to approve, "false" to reject)'
            step.start_time = self.now_text
            self.event("Normal", "AwaitingApproval", f"step {step.name}: {text}")
            return True
        return False

    def _evaluate_when(self, step: _Step) -> bool | str:
        """The step's ``when``: True/False, or an error message."""
        expression = decoded.string(step.spec.get("when"))
        if expression is None:
            return True
        if conditions.literal_value(expression) is not None:
            return conditions.literal_value(expression) is True
        # Only the referenced steps go into the context: converting every step of a large flow
        # for each evaluation made a 2,000-step fan-out quadratic (minutes per pass).
        try:
            refs = conditions.referenced_steps(expression)
            wanted = (
                self.steps
                if refs.is_dynamic
                else [self.by_name[n] for n in refs.steps if n in self.by_name]
            )
            context = conditions.build_context(
                self.name, [s.to_status(self.namespace) for s in wanted]
            )
            return conditions.evaluate(expression, context)
        except conditions.ConditionError as exc:
            return str(exc)

    def schedule(self) -> None:
        """Settle every step that can move without a Job finishing; start the ready ones."""
        changed = True
        while changed:
            changed = False
            failing = self.is_failing()  # once per sweep: O(steps), not O(steps^2)
            for step in self.steps:
                if self._advance(step, failing=failing):
                    changed = True
                    if step.is_blocking_failure:
                        failing = True
                        self.failed_upstream = None  # recomputed with this failure
        # Retry timers are read only now: a retry that an early sweep saw as due later may be
        # cancelled by a failure found further down the same pass, and its stale timer would
        # make this plan's requeue differ from the next pass's (not idempotent).
        if not self.suspended:
            for step in self.steps:
                if step.is_waiting_retry:
                    self.wake_at(decoded.parse_time(step.next_attempt_time) or self.now)

    def _advance(self, step: _Step, *, failing: bool) -> bool:
        if step.phase == StepPhase.PENDING_APPROVAL.value:
            if failing:
                self._skip(step, FLOW_FAILED, "not approved before the flow failed")
                return True
            return self._settle_manual(step)
        if step.phase != StepPhase.PENDING.value:
            return False
        if step.is_waiting_retry:
            if failing:
                step.phase = StepPhase.FAILED.value
                step.message = f"{step.message}; not retried: the flow is failing"
                step.next_attempt_time = None
                self.event("Warning", "StepFailed", f"step {step.name} not retried: flow failing")
                return True
            due = decoded.parse_time(step.next_attempt_time) or self.now
            if self.suspended:
                return False
            if self.now >= due:
                self._start_job(step)
                return True
            return False  # its timer is set once the sweeps settle (see schedule)
        if failing:
            if self.failed_upstream is None:
                self.failed_upstream = self._failed_upstream()
            upstream = self.failed_upstream.get(step.name)
            if upstream is not None:
                self._skip(step, UPSTREAM_FAILED, f"upstream step {upstream} failed")
            else:
                self._skip(step, FLOW_FAILED, "not started: another step failed")
            return True
        deps = [self.by_name.get(d) for d in step.dependencies]
        if not all(d is not None and d.satisfies_dependants for d in deps):
            return False
        if self.suspended:
            return False
        verdict = self._evaluate_when(step)
        if verdict is False:
            self._skip(step, CONDITION_FALSE, "when condition is false")
            return True
        if isinstance(verdict, str):
            step.phase = StepPhase.FAILED.value
            step.reason = CONDITION_ERROR
            step.message = verdict
            step.completion_time = self.now_text
            self.event("Warning", "StepFailed", f"step {step.name}: when failed: {verdict}")
            return True
        if step.is_manual:
            return self._settle_manual(step)
        self._start_job(step)
        return True

    # -- the whole pass --

    def run(self) -> Plan:
        self.load_steps()
        replaced_by = self.replacing_peer()
        blocking = None if replaced_by else self.blocking_peer()
        if blocking is not None:
            return self._queued(blocking)

        prior_start = decoded.string(self.prior.get("startTime"))
        start_text: str | None = prior_start or self.now_text
        started = decoded.parse_time(start_text) or decoded.truncate(self.now)

        # Finished Jobs are credited first, so a step that completed before the flow stopped
        # keeps its result (and a failed Job is never deleted: it is kept for its logs).
        self.refresh()
        deadline_seconds = decoded.integer(self.policy.get("activeDeadlineSeconds"))
        deadline = (
            started + timedelta(seconds=deadline_seconds) if deadline_seconds is not None else None
        )
        # A flow whose every step already finished keeps its own result: there is nothing
        # left to stop.
        finished = all(s.is_terminal for s in self.steps)
        if replaced_by is not None and not finished:
            self.decide_failures(may_retry=False)
            self.stop(REPLACED, f"replaced by newer flow {replaced_by} (concurrencyPolicy Replace)")
        elif deadline is not None and self.now >= deadline and not finished:
            self.decide_failures(may_retry=False)
            self.stop(DEADLINE_EXCEEDED, f"flow exceeded activeDeadlineSeconds={deadline_seconds}")
        else:
            self.decide_failures(may_retry=True)
            self.schedule()
        if prior_start is None:
            # A flow suspended from its creation has not started: no startTime (its deadline
            # does not run) until it is resumed.
            untouched = all(
                s.phase == StepPhase.PENDING.value and not s.attempts for s in self.steps
            )
            if self.suspended and untouched and self.stop_reason is None:
                start_text = None
            else:
                self.events.insert(0, Event("Normal", "FlowStarted", f"flow {self.name} started"))
        if deadline is not None and start_text is not None and self.stop_reason is None:
            self.wake_at(deadline)
        resources_done = self._resources()
        return self._finish(start_text, resources_done=resources_done)

    def _resources(self) -> bool | None:
        """Emit the resourceTemplates objects until ResourcesCreated is recorded.

        None when the flow declares none (no condition); False when the flow stopped before
        creating them; True once they are (or, in this plan, will be) created.
        """
        objects = jobs.resource_objects(self.resource_templates, flow=self.flow_ref)
        objects += artifacts.workspace_objects(self.spec, flow=self.flow_ref)  # data passing (H8)
        if not objects:
            return None
        if status.condition_status(self.prior_conditions, status.RESOURCES_CREATED) == "True":
            return True
        if self.stop_reason is not None:
            return False
        self.create_objects.extend(objects)
        return True

    def _queued(self, blocking: str) -> Plan:
        for step in self.steps:
            step.phase = StepPhase.PENDING.value
        key = self._concurrency_key()
        message = f"waiting for flow {blocking} (concurrencyKey {key}, policy Forbid)"
        if status.condition_status(self.prior_conditions, status.QUEUED) != "True":
            self.event("Normal", "FlowQueued", message)
        phases = [s.phase for s in self.steps]
        desired = [
            status.Desired(status.ACCEPTED, True, "Valid", "the spec is valid"),
            status.Desired(status.PROGRESSING, False, "Queued", message),
            status.Desired(status.COMPLETE, False, "Queued", "not started"),
            status.Desired(status.FAILED, False, "Queued", "not started"),
            status.Desired(status.AWAITING_APPROVAL, False, "NoneWaiting", "no step waits"),
            status.Desired(status.QUEUED, True, "ConcurrencyForbid", message),
        ]
        new_status: dict[str, object] = {"phase": FlowPhase.PENDING.value}
        if self.generation is not None:
            new_status["observedGeneration"] = self.generation
        new_status["steps"] = [s.to_status(self.namespace, flow_name=self.name) for s in self.steps]
        new_status["progress"] = status.progress(phases)
        new_status["conditions"] = status.merge_conditions(
            self.prior_conditions, desired, now=self.now, generation=self.generation
        )
        return _plan(status=new_status, events=self.events)

    def _flow_phase(self) -> tuple[str, str, str]:
        """(phase, failure reason, failure message)."""
        if self.stop_reason is not None:
            return FlowPhase.FAILED.value, self.stop_reason, self.stop_message
        blocking = [s for s in self.steps if s.is_blocking_failure]
        active = any(s.phase == StepPhase.RUNNING.value or s.is_waiting_retry for s in self.steps)
        if all(s.is_terminal for s in self.steps) or (blocking and not active):
            if blocking:
                failed = ", ".join(s.name for s in blocking)
                return FlowPhase.FAILED.value, "StepFailed", f"step(s) failed: {failed}"
            return FlowPhase.SUCCEEDED.value, "", ""
        if blocking:
            return FlowPhase.RUNNING.value, "", ""  # running steps finish first
        if self.suspended:
            return FlowPhase.SUSPENDED.value, "", ""
        if not active and any(s.phase == StepPhase.PENDING_APPROVAL.value for s in self.steps):
            return FlowPhase.PAUSED.value, "", ""
        return FlowPhase.RUNNING.value, "", ""

    def _finish(self, start_text: str | None, *, resources_done: bool | None) -> Plan:
        phase, fail_reason, fail_message = self._flow_phase()
        terminal = phase in _TERMINAL_FLOW
        prior_phase = self.prior_phase
        if phase != prior_phase:
            self._flow_event(prior_phase, phase, fail_message)

        phases = [s.phase for s in self.steps]
        progress = status.progress(phases)
        waiting = [s.name for s in self.steps if s.phase == StepPhase.PENDING_APPROVAL.value]
        desired = [
            status.Desired(status.ACCEPTED, True, "Valid", "the spec is valid"),
            status.Desired(
                status.PROGRESSING,
                phase == FlowPhase.RUNNING.value,
                phase,
                f"{progress['display']} steps done",
            ),
            status.Desired(
                status.COMPLETE,
                phase == FlowPhase.SUCCEEDED.value,
                "Succeeded" if phase == FlowPhase.SUCCEEDED.value else phase,
                "all steps finished" if phase == FlowPhase.SUCCEEDED.value else "not complete",
            ),
            status.Desired(
                status.FAILED,
                phase == FlowPhase.FAILED.value,
                fail_reason or phase,
                fail_message or "no failure",
            ),
            status.Desired(
                status.AWAITING_APPROVAL,
                bool(waiting),
                "ManualApproval" if waiting else "NoneWaiting",
                f"waiting for approval of: {', '.join(waiting)}" if waiting else "no step waits",
            ),
            status.Desired(status.QUEUED, False, "NotQueued", "not waiting for other flows"),
        ]
        if resources_done is not None:
            desired.append(
                status.Desired(
                    status.RESOURCES_CREATED,
                    resources_done,
                    "Created" if resources_done else "NotCreated",
                    "resourceTemplates objects created"
                    if resources_done
                    else "resourceTemplates objects not created",
                )
            )
        new_status: dict[str, object] = {"phase": phase}
        if self.generation is not None:
            new_status["observedGeneration"] = self.generation
        if start_text is not None:
            new_status["startTime"] = start_text
        completion_text: str | None = None
        if terminal:
            completion_text = self.now_text
            new_status["completionTime"] = completion_text
        new_status["steps"] = [s.to_status(self.namespace, flow_name=self.name) for s in self.steps]
        new_status["progress"] = progress
        new_status["conditions"] = status.merge_conditions(
            self.prior_conditions, desired, now=self.now, generation=self.generation
        )

        delete_flow = False
        if terminal:
            self.wakeups.clear()
            ttl = decoded.integer(self.policy.get("ttlSecondsAfterFinished"))
            if ttl is not None:
                expiry = decoded.truncate(self.now) + timedelta(seconds=max(ttl, 0))
                if self.now >= expiry:
                    delete_flow = True
                else:
                    self.wake_at(expiry)
        requeue = None
        if self.wakeups:
            requeue = max((min(self.wakeups) - self.now).total_seconds(), 0.0)
        creates = [m for _, m in sorted(self.creates, key=lambda pair: pair[0])]
        return _plan(
            status=new_status,
            create_objects=self.create_objects,
            create_jobs=creates,
            delete_jobs=self.deletes,
            events=self.events,
            requeue_after=requeue,
            delete_flow=delete_flow,
            needs_pod_details=[n for n in self.needs_details if n],
        )

    def _flow_event(self, before: str | None, after: str, fail_message: str) -> None:
        if after == FlowPhase.SUCCEEDED.value:
            self.event("Normal", "FlowSucceeded", f"flow {self.name} succeeded")
        elif after == FlowPhase.FAILED.value:
            self.event("Warning", "FlowFailed", f"flow {self.name} failed: {fail_message}")
        elif after == FlowPhase.SUSPENDED.value:
            self.event("Normal", "FlowSuspended", f"flow {self.name} suspended (spec.suspend)")
        elif after == FlowPhase.PAUSED.value:
            self.event("Normal", "FlowPaused", f"flow {self.name} waits for manual approval")
        elif after == FlowPhase.RUNNING.value and before in (
            FlowPhase.SUSPENDED.value,
            FlowPhase.PAUSED.value,
        ):
            self.event("Normal", "FlowResumed", f"flow {self.name} resumed")


# --- outputs ----------------------------------------------------------------------------------


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list | tuple) else []


def _init_failure(spec: Mapping[str, object], observed: ObservedJob) -> str:
    """What a failed init container did wrong, in the words a user acts on: which input
    artifact could not be downloaded from where, with curl's own last words."""
    container = observed.failed_init_container or ""
    said = (observed.termination_message or "").strip()
    tail = f": {said.splitlines()[-1][:300]}" if said else ""
    artifact = artifacts.fetched_by(spec, container)
    if artifact is not None:
        name = decoded.string(artifact.get("name")) or "?"
        url = decoded.string(decoded.path(artifact, "http", "url")) or "?"
        return (
            f"input artifact {name!r} could not be downloaded from {url} "
            f"(exit code {observed.exit_code}{tail})"
        )
    return f"init container {container!r} failed (exit code {observed.exit_code}{tail})"


def _parse_termination_message(text: str) -> dict[str, str]:
    """A JSON object (values as text; non-strings as compact JSON) or ``key=value`` lines."""
    return jobflow_outputs.parse_termination_message(text)
