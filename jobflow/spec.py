"""A JobFlow's spec read once into frozen values: what the planner (and anything else that acts
on a valid flow) works from instead of re-reading the raw dict.

``read(obj)`` takes the object with its defaults applied (``planning.with_defaults``) and is
cheap: no pydantic, no copies of templates (each ``StepSpec.raw`` is the step's own mapping,
kept for the Job template, inputs and artifacts that jobflow.jobs/parameters/artifacts build
from). Durations are parsed here, by ``quantities``, once per pass. It assumes nothing about
validity beyond types: a value of the wrong type reads as absent, so a flow that bypassed
admission can still be read (and is then refused by validation before anything runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from jobflow import decoded, defaults, quantities


class StepType(StrEnum):
    JOB = "Job"
    MANUAL = "Manual"


class ConcurrencyPolicy(StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class BackoffType(StrEnum):
    FIXED = "Fixed"
    LINEAR = "Linear"
    EXPONENTIAL = "Exponential"


class PodFailureAction(StrEnum):
    FAIL_JOB = "FailJob"
    IGNORE = "Ignore"
    COUNT = "Count"


class StopMode(StrEnum):
    STOP = "Stop"  # start nothing new, let running steps finish
    TERMINATE = "Terminate"  # also delete the running Jobs (and their pods) now


class ExitCodeOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"


DEFAULT_DELAY_SECONDS: Final = 1.0  # the seed's base delay when backoff.duration is absent
# One day: far beyond any sensible retry delay, small enough for timestamps to stay exact.
MAX_DELAY_SECONDS: Final = 86400.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retryPolicy`` with its delay parsed: the delay after attempt ``n`` (0-based) is Fixed
    ``d``, Linear ``d * (n + 1)`` or Exponential (also for an absent or unknown type)
    ``d * factor ** n``, capped at ``MAX_DELAY_SECONDS``."""

    limit: int
    backoff: BackoffType
    base_seconds: float
    factor: float

    @classmethod
    def read(cls, raw: Mapping[str, object]) -> RetryPolicy:
        backoff = decoded.mapping(raw.get("backoff"))
        text = decoded.string(backoff.get("duration"))
        parsed = quantities.parse_duration(text.strip()) if text is not None else None
        base = float(parsed) if parsed is not None and parsed >= 0 else DEFAULT_DELAY_SECONDS
        kind = decoded.string(backoff.get("type"))
        factor = decoded.number(backoff.get("factor"))
        limit = decoded.integer(raw.get("limit"))
        return cls(
            limit=defaults.DEFAULT_RETRY_LIMIT if limit is None else max(limit, 0),
            backoff=_member(BackoffType, kind, BackoffType.EXPONENTIAL),
            base_seconds=base,
            factor=factor if factor is not None and factor > 0 else defaults.DEFAULT_BACKOFF_FACTOR,
        )

    def delay(self, attempt: int) -> float:
        n = max(attempt, 0)
        if self.backoff == BackoffType.FIXED:
            seconds = self.base_seconds
        elif self.backoff == BackoffType.LINEAR:
            seconds = self.base_seconds * (n + 1)
        else:
            try:
                seconds = self.base_seconds * self.factor**n
            except OverflowError:
                seconds = MAX_DELAY_SECONDS
        return min(seconds, MAX_DELAY_SECONDS)


@dataclass(frozen=True, slots=True)
class PodFailureRule:
    action: PodFailureAction
    operator: ExitCodeOperator
    exit_codes: frozenset[int]

    def matches(self, exit_code: int) -> bool:
        return (exit_code in self.exit_codes) == (self.operator == ExitCodeOperator.IN)


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    index: int
    kind: str  # "Job" or "Manual" (see jobflow.kinds)
    dependencies: tuple[str, ...]
    continue_on_failure: bool
    timeout_seconds: int | None
    retry: RetryPolicy | None  # None: no retryPolicy, no retries
    when: str | None
    message: str | None  # a Manual step's prompt
    raw: Mapping[str, object]  # the step as written (template, inputs, outputs, artifacts)
    # Governance (jobflow.planning.governance): each is the step's own value, else the flow's.
    pending_timeout_seconds: int | None = None
    queue_name: str | None = None  # the Job's kueue.x-k8s.io/queue-name label
    priority_class_name: str | None = None  # the Job's kueue.x-k8s.io/priority-class label
    # A step of spec.finally (planning.finale): starts once every spec.steps step has ended.
    is_finally: bool = False
    # Fan-out (jobflow.fanout): withItems or withParam make one Job per item.
    is_fanout: bool = False
    item_parallelism: int | None = None  # the step's own parallelism over its items

    @property
    def retry_limit(self) -> int:
        return self.retry.limit if self.retry is not None else 0


@dataclass(frozen=True, slots=True)
class FlowSpec:
    name: str
    namespace: str
    uid: str
    generation: int | None
    annotations: Mapping[str, str]
    steps: tuple[StepSpec, ...]
    suspend: bool
    concurrency_key: str | None
    concurrency_policy: str
    backoff_limit: int  # the flow's cap on the sum of retries
    active_deadline_seconds: int | None
    ttl_seconds_after_finished: int | None
    pod_failure_rules: tuple[PodFailureRule, ...]
    resource_templates: Mapping[str, object]
    raw: Mapping[str, object]  # spec as written (workspace, artifacts)
    parallelism: int | None = None  # executionPolicy.parallelism: at most this many active


_E = TypeVar("_E", bound=StrEnum)


def _member(kind: type[_E], value: object, default: _E) -> _E:
    """``value`` as a member of ``kind``, else ``default`` (an unvalidated object may hold
    anything)."""
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    return default


@dataclass(frozen=True, slots=True)
class StepDefaults:
    """What a step inherits from its flow when it does not say."""

    pending_timeout_seconds: int | None = None
    queue_name: str | None = None
    priority_class_name: str | None = None


def read_step(
    raw: Mapping[str, object],
    index: int,
    inherited: StepDefaults = StepDefaults(),
    *,
    is_finally: bool = False,
) -> StepSpec:
    retry = raw.get("retryPolicy")
    pending = decoded.integer(raw.get("pendingTimeoutSeconds"))
    return StepSpec(
        name=decoded.string(raw.get("name")) or f"step-{index}",
        index=index,
        kind=decoded.string(raw.get("type")) or defaults.DEFAULT_STEP_TYPE,
        dependencies=tuple(decoded.strings(raw.get("dependencies"))),
        continue_on_failure=decoded.boolean(raw.get("continueOnFailure")),
        timeout_seconds=decoded.integer(raw.get("timeoutSeconds")),
        retry=RetryPolicy.read(retry) if retry is not None and isinstance(retry, Mapping) else None,
        when=decoded.string(raw.get("when")),
        message=decoded.string(raw.get("message")),
        raw=raw,
        pending_timeout_seconds=inherited.pending_timeout_seconds if pending is None else pending,
        queue_name=decoded.string(raw.get("queueName")) or inherited.queue_name,
        priority_class_name=decoded.string(raw.get("priorityClassName"))
        or inherited.priority_class_name,
        is_finally=is_finally,
        is_fanout="withItems" in raw or "withParam" in raw,
        item_parallelism=decoded.integer(raw.get("parallelism")),
    )


def _pod_failure_rules(policy: Mapping[str, object]) -> tuple[PodFailureRule, ...]:
    rules: list[PodFailureRule] = []
    for rule in decoded.items(decoded.path(policy, "podFailurePolicy", "rules")):
        on_codes = decoded.mapping(rule.get("onExitCodes"))
        values = on_codes.get("values")
        codes = frozenset(
            code
            for code in (decoded.integer(v) for v in (values if isinstance(values, list) else ()))
            if code is not None
        )
        action = rule.get("action")
        rules.append(
            PodFailureRule(
                action=_member(PodFailureAction, action, PodFailureAction.COUNT),
                # anything but In reads as NotIn, as the Job controller's own rule matching
                operator=_member(
                    ExitCodeOperator, on_codes.get("operator", "In"), ExitCodeOperator.NOT_IN
                ),
                exit_codes=codes,
            )
        )
    return tuple(rules)


def _read_steps(spec: Mapping[str, object], inherited: StepDefaults) -> tuple[StepSpec, ...]:
    """spec.steps, then spec.finally (indexes continue, so spec order stays one order)."""
    dag = [read_step(s, i, inherited) for i, s in enumerate(decoded.items(spec.get("steps")))]
    last = [
        read_step(s, len(dag) + i, inherited, is_finally=True)
        for i, s in enumerate(decoded.items(spec.get("finally")))
    ]
    return tuple(dag + last)


def read(obj: Mapping[str, object]) -> FlowSpec:
    """The spec of ``obj`` (a JobFlow with its defaults applied)."""
    meta = decoded.mapping(obj.get("metadata"))
    spec = decoded.mapping(obj.get("spec"))
    policy = decoded.mapping(spec.get("executionPolicy"))
    backoff_limit = decoded.integer(policy.get("backoffLimit"))
    inherited = StepDefaults(
        pending_timeout_seconds=decoded.integer(policy.get("pendingTimeoutSeconds")),
        queue_name=decoded.string(spec.get("queueName")) or None,
        priority_class_name=decoded.string(spec.get("priorityClassName")) or None,
    )
    return FlowSpec(
        name=decoded.string(meta.get("name")) or "",
        namespace=decoded.string(meta.get("namespace")) or "default",
        uid=decoded.string(meta.get("uid")) or "",
        generation=decoded.integer(meta.get("generation")),
        annotations=decoded.string_map(meta.get("annotations")),
        steps=_read_steps(spec, inherited),
        suspend=decoded.boolean(spec.get("suspend")),
        concurrency_key=decoded.string(policy.get("concurrencyKey")) or None,
        concurrency_policy=decoded.string(policy.get("concurrencyPolicy"))
        or defaults.DEFAULT_CONCURRENCY_POLICY,
        backoff_limit=defaults.DEFAULT_BACKOFF_LIMIT if backoff_limit is None else backoff_limit,
        active_deadline_seconds=decoded.integer(policy.get("activeDeadlineSeconds")),
        ttl_seconds_after_finished=decoded.integer(policy.get("ttlSecondsAfterFinished")),
        pod_failure_rules=_pod_failure_rules(policy),
        resource_templates=decoded.mapping(spec.get("resourceTemplates")),
        raw=spec,
        parallelism=decoded.integer(policy.get("parallelism")),
    )
