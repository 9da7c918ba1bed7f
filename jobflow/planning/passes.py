"""One pass over one valid, unfinished flow: the working state and the order of the steps.

``Pass.run`` loads the step states from the prior status (adopting Jobs a lost status write did
not record), stops a Forbid-queued flow early, reads the running attempts (each kind's
``refresh``), applies a flow stop (deadline, Replace) or decides retries and schedules, creates
the resourceTemplates objects, and builds the Plan. The pass is also the ``PassContext`` that
kinds and scheduling act through: every Job create or delete, event, wake-up and failed attempt
goes through one of its methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from jobflow import (
    approvals,
    artifacts,
    decoded,
    fanout,
    fanout_kind,
    jobs,
    kinds,
    names,
    parameters,
    phases,
    requests,
    spec,
    status,
)
from jobflow.jobs import ObservedJob
from jobflow.phases import FlowPhase, StepPhase
from jobflow.planning import (
    concurrency,
    failures,
    finale,
    flowstatus,
    governance,
    manifests,
    operate,
    schedule,
)
from jobflow.planning.types import Plan, make_plan
from jobflow.stepstate import Event, StepState


class Pass:
    def __init__(
        self,
        obj: Mapping[str, object],
        observed_jobs: Sequence[ObservedJob],
        now: datetime,
        peers: Sequence[Mapping[str, object]],
        *,
        fetch_image: str = artifacts.DEFAULT_FETCH_IMAGE,
        rejected: Mapping[str, str],
        max_starts: int | None = None,
        retry: requests.Retry | None = None,
    ) -> None:
        self.obj = obj
        self.max_starts = max_starts  # the controller's cap: new Jobs this pass may create
        # A new retry request on a finished flow, with steps to run again (planning.operate).
        self.retry = retry
        self.rejected = rejected  # Job name -> the API server's refusal of its create
        self.flow = spec.read(obj)
        self.fetch_image = fetch_image
        self.now = now
        self.now_text = decoded.format_time(now)
        self.peers = peers
        # A copy: a retry starts a new run (startTime) before the pass reads it.
        self.prior: dict[str, object] = dict(decoded.mapping(obj.get("status")))
        self.prior_phase = decoded.string(self.prior.get("phase"))
        # Operator requests and flow parameters (jobflow.requests), carried into the status.
        self.parameters = requests.effective_parameters(self.flow.raw, self.prior)
        self.handled: dict[str, str] = decoded.string_map(self.prior.get("requests"))
        self.history: list[object] = list(decoded.items(self.prior.get("history")))
        stop_entry = decoded.mapping(self.prior.get("stop"))
        self.stop_entry: dict[str, object] | None = dict(stop_entry) if stop_entry else None
        self.prior_conditions = decoded.items(self.prior.get("conditions"))
        self.flow_ref = jobs.FlowRef(
            name=self.flow.name, namespace=self.flow.namespace, uid=self.flow.uid
        )
        self.renames = jobs.resource_renames(self.flow.resource_templates, self.flow.name)
        self.steps = [StepState(s) for s in self.flow.steps]
        self.by_name = {s.name: s for s in self.steps}
        self.observed: dict[str, dict[int, ObservedJob]] = {}
        for observed in observed_jobs:
            labels = jobs.job_labels(observed.job)
            attempt = jobs.attempt_of(labels)
            step_name = labels.get(names.LABEL_STEP)
            if step_name is None or attempt is None:
                continue
            item = labels.get(fanout.LABEL_ITEM)
            if item is not None and item.isdigit():
                step_name = fanout.item_key(step_name, int(item))  # a fan-out's item
            self.observed.setdefault(step_name, {})[attempt] = observed

        self.create_objects: list[Mapping[str, object]] = []
        self.creates: list[tuple[int, Mapping[str, object]]] = []
        self.deletes: list[str] = []
        self.events: list[Event] = []
        self.needs_details: list[str] = []
        self.wakeups: list[datetime] = []
        self.failures: list[failures.Failure] = []
        self.stop_reason: str | None = None
        self.stop_message: str = ""
        self.held_for_capacity = 0  # ready steps held by max_starts (see planning.governance)
        # How spec.steps ended (planning.finale): recorded once, read by spec.finally steps.
        self._outcome: finale.Outcome | None = None
        self.has_finally = any(s.spec.is_finally for s in self.steps)
        self._quiet = False
        self._slots: governance.Slots | None = None
        self._items: dict[str, list[object]] = {}

    # -- the PassContext: how kinds and scheduling act --

    @property
    def retried_at(self) -> str | None:
        """When the latest retry request began a new run (``status.history``), if one did:
        approval decisions recorded before it belong to an earlier run."""
        return approvals.retried_at(self.history)

    @property
    def outcome(self) -> finale.Outcome | None:
        """How the DAG ended, once it has (and only for a flow with finally steps)."""
        if self._outcome is None and self.has_finally and finale.dag_done(self.steps):
            phase, reason, message = flowstatus.flow_phase(
                finale.dag(self.steps),
                stop_reason=self.stop_reason,
                stop_message=self.stop_message,
                suspended=False,
            )
            if phase in phases.TERMINAL_FLOW_PHASES:
                self._outcome = finale.outcome_of(
                    self.steps, phase=phase, reason=reason, message=message
                )
        return self._outcome

    def emit(self, event: Event) -> None:
        if self._quiet and event.type == "Normal":
            return  # a fan-out item's start or success (jobflow.fanout_kind)
        self.events.append(event)

    def quiet(self, action: Callable[[], object]) -> None:
        """Run ``action`` without its Normal events."""
        self._quiet = True
        try:
            action()
        finally:
            self._quiet = False

    @property
    def slots(self) -> governance.Slots:
        if self._slots is None:
            self._slots = governance.Slots(
                self.steps, parallelism=self.flow.parallelism, max_starts=self.max_starts
            )
        return self._slots

    def items_of(self, step: StepState) -> list[object]:
        """A fan-out step's items (read once a pass; jobflow.fanout.read_items)."""
        key = step.spec.name
        if key not in self._items:
            outputs = {s.name: s.outputs or {} for s in self.steps}
            self._items[key] = fanout.read_items(step.spec.raw, outputs)
        return self._items[key]

    def wake_at(self, moment: datetime) -> None:
        self.wakeups.append(moment)

    def create_job(self, step: StepState, manifest: Mapping[str, object]) -> None:
        self.creates.append((step.index, manifest))

    def delete_job(self, name: str) -> None:
        self.deletes.append(name)

    def need_pod_details(self, job_name: str) -> None:
        self.needs_details.append(job_name)

    def job_manifest(self, step: StepState, attempt: int) -> dict[str, object]:
        item = None
        if step.item is not None:
            try:
                item = manifests.Item(step.item, self.items_of(step)[step.item], step.name)
            except (fanout.ItemsError, IndexError) as exc:
                raise parameters.ParameterError(f"item {step.name}: {exc}") from None
        return manifests.job_manifest(
            step.spec.raw,
            attempt,
            flow=self.flow_ref,
            renames=self.renames,
            fetch_image=self.fetch_image,
            sources=self._input_sources,
            labels=governance.kueue_labels(step.spec),
            flow_parameters=self.parameters,
            item=item,
            flow_outcome=(
                {f: self.outcome.value(f) for f in finale.OUTCOME_FIELDS}
                if step.spec.is_finally and self.outcome is not None
                else None
            ),
        )

    def _input_sources(
        self,
    ) -> tuple[dict[str, Mapping[str, str]], dict[str, Mapping[str, object]]]:
        outputs: dict[str, Mapping[str, str]] = {s.name: s.outputs or {} for s in self.steps}
        latest = {
            name: by_attempt[max(by_attempt)].job
            for name, by_attempt in self.observed.items()
            if by_attempt
        }
        return outputs, latest

    def fail_attempt(
        self,
        step: StepState,
        *,
        at: datetime,
        reason: str,
        message: str,
        action: spec.PodFailureAction,
    ) -> None:
        self.failures.append(failures.Failure(step, at, reason, message, action))

    def pod_failure_action(
        self, observed: ObservedJob, outcome: jobs.JobOutcome
    ) -> spec.PodFailureAction:
        return failures.pod_failure_action(self.flow.pod_failure_rules, observed, outcome)

    def init_failure(self, step: StepState, observed: ObservedJob) -> str:
        return failures.init_failure(step.spec.raw, observed)

    def is_failing(self) -> bool:
        return self.stop_reason is not None or any(s.is_blocking_failure for s in self.steps)

    # -- loading --

    def load_steps(self) -> None:
        entries = {decoded.string(e.get("name")): e for e in decoded.items(self.prior.get("steps"))}
        for step in self.steps:
            entry = entries.get(step.name)
            if entry is not None:
                step.restore(entry)
        if self.retry is not None:
            # Before adoption: the Jobs a pass killed mid-retry created are adopted as the
            # new attempts they are, never created twice.
            operate.reopen(self, self.retry, requests.rerun_for(self.obj, self.retry))
        self._outcome = finale.Outcome.restore(self.prior.get("outcome"))
        for step in self.steps:
            self._adopt(step)

    def _adopt(self, step: StepState) -> None:
        """Jobs newer than the status knows (a lost status write): they are the truth. (A
        fan-out adopts its items' Jobs itself, item by item.)"""
        kind = fanout_kind.kind_of(step.spec)
        if kind.runs_jobs and not kind.takes_own_slots:
            fanout_kind.adopt(self, step)

    # -- running steps --

    def refresh(self) -> None:
        for step in self.steps:
            if step.is_active:
                fanout_kind.kind_of(step.spec).refresh(self, step)

    def decide_failures(self, *, may_retry: bool) -> None:
        self.events.extend(
            failures.decide(
                self.failures,
                self.steps,
                backoff_limit=self.flow.backoff_limit,
                may_retry=may_retry,
                stopping=self.stop_reason is not None,
            )
        )
        # A fan-out sums its items up once their failed attempts are decided; a flow that
        # ends (may_retry False: a stop, a deadline) starts none of its remaining items.
        for step in self.steps:
            if step.items is not None and step.is_active:
                if not may_retry:
                    fanout_kind.end_pending(
                        self, step, reason=phases.FLOW_FAILED, why="the flow is ending"
                    )
                fanout_kind.FANOUT.settle(self, step)

    # -- stopping the whole flow (deadline, replaced) --

    def stop(self, reason: str, message: str, *, everything: bool = False) -> None:
        """End the DAG's unfinished steps (running Jobs deleted); ``everything``: the finally
        steps too (Terminate; planning.finale)."""
        self.stop_reason = reason
        self.stop_message = message
        self.creates.clear()  # nothing starts (or restarts) in a flow that stops
        self.needs_details.clear()  # their steps' fate is decided here
        self.end_steps(
            [s for s in self.steps if everything or not s.spec.is_finally], reason, message
        )

    def end_steps(self, steps: Sequence[StepState], reason: str, message: str) -> None:
        """Fail or skip ``steps`` that have not ended, deleting their running Jobs."""
        for step in steps:
            if step.items is not None and step.is_active:
                # each item's Job; its skipped items say nothing one by one
                self.quiet(functools.partial(self.end_steps, step.items, reason, message))
                stopped = Event("Warning", "StepFailed", f"step {step.name} stopped: {message}")
                self.emit(step.fail(reason, message, at=self.now_text, event=stopped))
            elif step.is_active and kinds.of(step.spec.kind).runs_jobs:
                attempt = max(step.attempts - 1, 0)
                observed = self.observed.get(step.name, {}).get(attempt)
                if observed is None or jobs.job_outcome(observed.job).state == "running":
                    self.deletes.append(
                        step.job_name
                        or names.job_name(self.flow.name, self.flow.uid, step.name, attempt)
                    )
                stopped = Event("Warning", "StepFailed", f"step {step.name} stopped: {message}")
                self.emit(step.fail(reason, message, at=self.now_text, event=stopped))
            elif step.is_waiting_retry:
                self.emit(step.give_up_retry(message, reason=reason))
            elif not step.is_terminal:
                self.emit(step.skip(reason, message, at=self.now_text))

    # -- the whole pass --

    def run(self) -> Plan:
        self.load_steps()
        stop = requests.read_stop(self.obj)
        if stop is not None and stop.id != self.handled.get("stop"):
            operate.begin_stop(self, stop)
        stopping = requests.stop_in_effect({"stop": self.stop_entry or {}})
        if self.retry is None and stopping is None:
            self._refuse_retry_while_running()
        replaced_by = concurrency.replacing_peer(self.obj, self.flow, self.peers)
        blocking = (
            None
            if replaced_by or stopping
            else concurrency.blocking_peer(self.obj, self.flow, self.peers, self.steps)
        )
        if blocking is not None:
            return self._queued(blocking)

        prior_start = decoded.string(self.prior.get("startTime"))
        start_text: str | None = prior_start or self.now_text
        started = decoded.parse_time(start_text) or decoded.truncate(self.now)

        # Finished Jobs are credited first, so a step that completed before the flow stopped
        # keeps its result (and a failed Job is never deleted: it is kept for its logs).
        self.refresh()
        deadline_seconds = self.flow.active_deadline_seconds
        deadline = (
            started + timedelta(seconds=deadline_seconds) if deadline_seconds is not None else None
        )
        scheduled = False
        # A flow whose every step already finished keeps its own result: there is nothing
        # left to stop. (The DAG's steps: finally steps run after it, planning.finale.)
        finished = finale.dag_done(self.steps)
        refused = self._refused_resource()
        # A stop keeps a flow whose steps all finished on their own at its own result; one
        # that ended steps itself ends the flow (Stopped).
        stopped_any = any(
            s.reason in (phases.STOPPED, phases.TERMINATED)
            for s in self.steps
            if not s.spec.is_finally
        )
        if stopping is not None and (stopped_any or not finished):
            self.decide_failures(may_retry=False)
            ended = operate.wind_down(self, stopping)
            if ended is not None:
                self.stop_reason, self.stop_message = phases.STOPPED, ended
        elif refused is not None and not finished:
            self.decide_failures(may_retry=False)
            self.emit(Event("Warning", phases.CREATE_REJECTED, refused))
            self.stop(phases.CREATE_REJECTED, refused)
        elif replaced_by is not None and not finished:
            self.decide_failures(may_retry=False)
            self.stop(
                phases.REPLACED,
                f"replaced by newer flow {replaced_by} (concurrencyPolicy Replace)",
            )
        elif deadline is not None and self.now >= deadline and not finished:
            self.decide_failures(may_retry=False)
            self.stop(
                phases.DEADLINE_EXCEEDED,
                f"flow exceeded activeDeadlineSeconds={deadline_seconds}",
            )
        else:
            self.decide_failures(may_retry=True)
            self._schedule()
            scheduled = True
        if self.has_finally and not scheduled and self.stop_reason != phases.TERMINATED:
            # The DAG was just ended: its finally steps start in this same pass.
            self._schedule()
        if self.has_finally and finale.dag_done(self.steps):
            self._bound_finally(started)
        if prior_start is None:
            # A flow suspended from its creation has not started: no startTime (its deadline
            # does not run) until it is resumed.
            untouched = all(s.phase == StepPhase.PENDING and not s.attempts for s in self.steps)
            if self.flow.suspend and untouched and self.stop_reason is None:
                start_text = None
            else:
                self.events.insert(
                    0, Event("Normal", "FlowStarted", f"flow {self.flow.name} started")
                )
        if (
            deadline is not None
            and start_text is not None
            and self.stop_reason is None
            and not finale.dag_done(self.steps)
        ):
            self.wake_at(deadline)
        resources_done = self._resources()
        return self._finish(start_text, resources_done=resources_done)

    def _schedule(self) -> None:
        self._slots = None  # counted afresh: the steps moved since
        slots = self.slots
        schedule.schedule(self, slots)
        self.held_for_capacity = slots.held_for_capacity

    def _bound_finally(self, started: datetime) -> None:
        """Past the DAG's deadline plus the same budget, running finally steps are ended."""
        bound = finale.finally_deadline(started, self.flow.active_deadline_seconds)
        left = [s for s in finale.finals(self.steps) if not s.is_terminal]
        if bound is None or not left:
            return
        if self.now < bound:
            self.wake_at(bound)
            return
        seconds = self.flow.active_deadline_seconds
        message = f"finally steps exceeded their budget (2 x activeDeadlineSeconds={seconds})"
        first = min(s.index for s in left)
        self.creates = [c for c in self.creates if c[0] < first]  # nothing of theirs starts
        self.end_steps(left, phases.DEADLINE_EXCEEDED, message)

    def _resource_objects(self) -> list[dict[str, object]]:
        objects = jobs.resource_objects(self.flow.resource_templates, flow=self.flow_ref)
        return objects + artifacts.workspace_objects(self.flow.raw, flow=self.flow_ref)

    def _refused_resource(self) -> str | None:
        """Why the flow cannot run, when the API server refused one of its resourceTemplates
        objects for good (the runtime's ``rejected``, by object name): it then ends Failed with
        reason CreateRejected instead of waiting for an object that will never exist."""
        if not self.rejected or (
            status.condition_status(self.prior_conditions, status.RESOURCES_CREATED) == "True"
        ):
            return None
        for obj in self._resource_objects():
            name = decoded.string(decoded.path(obj, "metadata", "name")) or ""
            message = self.rejected.get(name)
            if message is not None:
                kind = decoded.string(obj.get("kind")) or "object"
                return f"{kind} {name} of resourceTemplates was refused: {message}"
        return None

    def _resources(self) -> bool | None:
        """Emit the resourceTemplates objects until ResourcesCreated is recorded.

        None when the flow declares none (no condition); False when the flow stopped before
        creating them; True once they are (or, in this plan, will be) created.
        """
        objects = self._resource_objects()
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
            step.phase = StepPhase.PENDING
        key = self.flow.concurrency_key
        message = f"waiting for flow {blocking} (concurrencyKey {key}, policy Forbid)"
        if status.condition_status(self.prior_conditions, status.QUEUED) != "True":
            self.emit(Event("Normal", "FlowQueued", message))
        new_status = flowstatus.build(
            phase=FlowPhase.PENDING,
            steps=self.steps,
            desired=flowstatus.queued_conditions(message),
            prior_conditions=self.prior_conditions,
            namespace=self.flow.namespace,
            flow_name=self.flow.name,
            generation=self.flow.generation,
            now=self.now,
        )
        self._carry(new_status)
        return make_plan(status=new_status, events=self.events)

    def _refuse_retry_while_running(self) -> None:
        """A retry acts on a finished flow only. One that arrives while the flow runs is
        recorded and said once, so that a manifest applied with a retry in it (GitOps) never
        retries later by surprise; one that arrives while a stop is in effect waits for the
        flow to end (stop, then retry)."""
        retry = requests.read_retry(self.obj)
        if retry is None or retry.id == self.handled.get("retry"):
            return
        self.handled["retry"] = retry.id
        self.emit(
            Event(
                "Warning",
                "RetryIgnored",
                f"retry {retry.id}{requests.by(retry.requested_by)}: the flow has not finished;"
                " a retry acts on a Failed or Succeeded flow (stop it first: zen-flow stop)",
            )
        )

    def _carry(self, new_status: dict[str, object]) -> None:
        """What the status keeps of the operator requests and the flow parameters."""
        if self.parameters:
            new_status["parameters"] = dict(self.parameters)
        if self.handled:
            new_status["requests"] = dict(self.handled)
        if self.stop_entry:
            new_status["stop"] = dict(self.stop_entry)
        if self.history:
            new_status["history"] = list(self.history)
        if self._outcome is not None:
            new_status["outcome"] = self._outcome.to_status()

    def _finish(self, start_text: str | None, *, resources_done: bool | None) -> Plan:
        if self.has_finally:
            phase, fail_reason, fail_message = finale.flow_phase(
                self.steps, self.outcome, suspended=self.flow.suspend
            )
        else:
            phase, fail_reason, fail_message = flowstatus.flow_phase(
                self.steps,
                stop_reason=self.stop_reason,
                stop_message=self.stop_message,
                suspended=self.flow.suspend,
            )
        terminal = phase in phases.TERMINAL_FLOW_PHASES
        if phase != self.prior_phase:
            event = flowstatus.flow_event(self.flow.name, self.prior_phase, phase, fail_message)
            if event is not None:
                self.emit(event)
        progress = status.progress([s.phase for s in self.steps])
        waiting = [s.name for s in self.steps if s.phase == StepPhase.PENDING_APPROVAL]
        desired = flowstatus.running_conditions(
            phase,
            progress=progress,
            waiting=waiting,
            fail_reason=fail_reason,
            fail_message=fail_message,
            resources_done=resources_done,
            waiting_in_queue=flowstatus.waiting_in_queue(self.steps),
        )
        new_status = flowstatus.build(
            phase=phase,
            steps=self.steps,
            desired=desired,
            prior_conditions=self.prior_conditions,
            namespace=self.flow.namespace,
            flow_name=self.flow.name,
            generation=self.flow.generation,
            now=self.now,
            progress=progress,
            start=start_text,
            completion=self.now_text if terminal else None,
        )
        self._carry(new_status)
        delete_flow = False
        if terminal:
            self.wakeups.clear()
            ttl = self.flow.ttl_seconds_after_finished
            if ttl is not None:
                expiry = decoded.truncate(self.now) + timedelta(seconds=max(ttl, 0))
                if self.now >= expiry:
                    delete_flow = True
                else:
                    self.wake_at(expiry)
            retry = requests.read_retry(self.obj)
            if retry is not None and retry.id != self.handled.get("retry"):
                # A retry waited for this end (it came while a stop was in effect): nothing
                # else would wake the flow, so the next pass acts on it at once (and the TTL
                # cannot delete it first).
                self.wake_at(self.now)
                delete_flow = False
        requeue = None
        if self.wakeups:
            requeue = max((min(self.wakeups) - self.now).total_seconds(), 0.0)
        creates = [m for _, m in sorted(self.creates, key=lambda pair: pair[0])]
        return make_plan(
            status=new_status,
            create_objects=self.create_objects,
            create_jobs=creates,
            delete_jobs=self.deletes,
            events=self.events,
            requeue_after=requeue,
            delete_flow=delete_flow,
            needs_pod_details=[n for n in self.needs_details if n],
            held_for_capacity=0 if terminal else self.held_for_capacity,
        )
