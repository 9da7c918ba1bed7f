"""Approvals with identity: who may decide a Manual step, who did, quorum, timeout, inputs.

A Manual step may declare ``approval`` (its policy, ``Policy.read``)::

    approval:
      approvers: {users: [alice], groups: [release-managers]}   # absent: anyone who may update
      required: 2              # distinct approving users (default 1)
      allowCreator: true       # false: the flow's creator may not approve it (may still reject)
      timeoutSeconds: 3600     # from when the step began waiting
      onTimeout: Reject        # or Approve (every input then needs a default)
      inputs: [{name: version, default: "1.0", enum: ["1.0", "2.0"], description: ...}]

How a decision travels, and why it cannot be forged:

1. The writer sets the request annotation ``approve.workflow.kube-zen.io/<step>`` to ``true``,
   ``false`` or a JSON object ``{"decision": "Approve"|"Reject", "inputs": {...}}`` (what
   ``zen-flow approve -p`` writes).
2. The mutating webhook (``record_patch``) turns it, on the same write, into an entry of the
   step's record ``approvals.workflow.kube-zen.io/<step>`` (a JSON list of ``{user, decision,
   time, inputs}``) with ``user`` from the admission request's ``userInfo`` and ``time`` from
   its own clock. A step with an ``approval`` policy has its request annotation removed (so
   the next person's request is a change again); a plain Manual step keeps it, as before.
   Records are append-only and written by the webhook alone: any edit, addition or removal of
   a record (or of ``workflow.kube-zen.io/created-by``, stamped at the CREATE of a flow with an
   approval policy) by the writer is
   replaced with the stored value. A user's new decision replaces their earlier entry of the
   same step, so one user counts once however often they approve.
3. The validating webhook (``decision_problems``) refuses an entry this write adds by someone
   not allowed, a creator when ``allowCreator`` is false, unknown inputs, a missing required
   input, a value outside its ``enum``, or a decision on a step that already finished.
4. The planner (``tally``) counts the entries of the current run: N distinct approving users
   complete a quorum of N, any allowed rejection rejects, ``timeoutSeconds`` past the start of
   the wait applies ``onTimeout`` (reason ApprovalTimeout). The approved inputs (the latest
   value of each, else its default) become the step's output parameters.

The records are as trustworthy as the admission chain (the webhooks' failurePolicy is Fail):
a write that bypassed the webhook cannot carry a stamp the controller would count, since an
``approval`` step counts records only, and records only come from the webhook.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from jobflow import decoded, names, requests

RECORD_ANNOTATION_PREFIX: Final = "approvals.workflow.kube-zen.io/"
CREATED_BY_ANNOTATION: Final = "workflow.kube-zen.io/created-by"
APPROVE: Final = "Approve"
REJECT: Final = "Reject"
ON_TIMEOUT_VALUES: Final = (REJECT, APPROVE)
# Entries kept per step (the oldest go first): a flow retried forever must not grow its
# annotations (256 KiB for all of them) without bound; one user holds one entry per decision.
MAX_RECORD_ENTRIES: Final = 50
# Inputs one approval may carry (each value is held to the flow parameters' size limit).
MAX_INPUTS: Final = 32
# A value's limit: a flow parameter's (it reaches `when` and env vars the same way).
MAX_INPUT_BYTES: Final = requests.MAX_PARAMETER_VALUE


def record_annotation(step: str) -> str:
    return f"{RECORD_ANNOTATION_PREFIX}{step}"


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    default: str | None = None
    enum: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class Policy:
    """A Manual step's ``approval`` block, read without assuming validity."""

    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    required: int = 1
    allow_creator: bool = True
    timeout_seconds: int | None = None
    on_timeout: str = REJECT
    inputs: tuple[Input, ...] = ()

    @classmethod
    def read(cls, step: Mapping[str, object]) -> Policy | None:
        raw = decoded.mapping_or_none(step.get("approval"))
        if raw is None:
            return None
        approvers = decoded.mapping(raw.get("approvers"))
        required = decoded.integer(raw.get("required"))
        allow = raw.get("allowCreator")
        inputs = []
        for item in decoded.items(raw.get("inputs")):
            name = decoded.string(item.get("name"))
            if name:
                inputs.append(
                    Input(
                        name=name,
                        default=decoded.string(item.get("default")),
                        enum=tuple(decoded.strings(item.get("enum"))),
                    )
                )
        return cls(
            users=tuple(decoded.strings(approvers.get("users"))),
            groups=tuple(decoded.strings(approvers.get("groups"))),
            required=max(required, 1) if required is not None else 1,
            allow_creator=allow if isinstance(allow, bool) else True,
            timeout_seconds=decoded.integer(raw.get("timeoutSeconds")),
            on_timeout=APPROVE if raw.get("onTimeout") == APPROVE else REJECT,
            inputs=tuple(inputs),
        )

    @property
    def restricted(self) -> bool:
        return bool(self.users or self.groups)

    def allows(self, user: str, groups: Sequence[str]) -> bool:
        if not self.restricted:
            return True
        return user in self.users or any(g in self.groups for g in groups)

    def who(self) -> str:
        """``users alice, bob or groups ops`` (who may decide)."""
        parts = []
        if self.users:
            parts.append("users " + ", ".join(self.users))
        if self.groups:
            parts.append("groups " + ", ".join(self.groups))
        return " or ".join(parts) if parts else "anyone who may update the flow"

    def defaults(self) -> dict[str, str]:
        return {i.name: i.default for i in self.inputs if i.default is not None}


@dataclass(frozen=True, slots=True)
class Entry:
    user: str
    decision: str  # APPROVE or REJECT
    time: str
    inputs: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"user": self.user, "decision": self.decision, "time": self.time}
        if self.inputs:
            out["inputs"] = dict(self.inputs)
        return out


class RequestError(ValueError):
    """A request annotation whose value is neither true, false nor a decision object."""


@dataclass(frozen=True, slots=True)
class Request:
    decision: str
    inputs: Mapping[str, str]


def parse_request(value: str) -> Request:
    """The request annotation's value: ``true``/``false`` or ``{"decision", "inputs"}``."""
    text = value.strip()
    if text.lower() in ("true", "false"):
        return Request(APPROVE if text.lower() == "true" else REJECT, {})
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: JSON nested past Python's stack
        raw = None
    if not isinstance(raw, Mapping) or raw.get("decision") not in (APPROVE, REJECT):
        raise RequestError(
            f"{value[:100]!r} is not a decision: write true, false or "
            '{"decision": "Approve"|"Reject", "inputs": {"NAME": "VALUE"}}'
        )
    inputs = raw.get("inputs", {})
    if not isinstance(inputs, Mapping) or not all(isinstance(v, str) for v in inputs.values()):
        raise RequestError('"inputs" must be an object of string values')
    return Request(str(raw["decision"]), {str(k): v for k, v in inputs.items()})


def request_value(*, approve: bool, inputs: Mapping[str, str]) -> str:
    """What ``zen-flow approve`` writes into the request annotation."""
    if not inputs:
        return "true" if approve else "false"
    body = {"decision": APPROVE if approve else REJECT, "inputs": dict(inputs)}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def read_records(annotations: Mapping[str, str], step: str) -> list[Entry]:
    """The recorded entries of ``step`` (unreadable parts are skipped)."""
    try:
        raw = json.loads(annotations.get(record_annotation(step), "[]"))
    except (ValueError, RecursionError):  # not ours (a record is written by the webhook only)
        return []
    found = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping):
            continue
        user, decision, time = item.get("user"), item.get("decision"), item.get("time")
        if not (isinstance(user, str) and decision in (APPROVE, REJECT) and isinstance(time, str)):
            continue
        found.append(Entry(user, str(decision), time, decoded.string_map(item.get("inputs"))))
    return found


def _encode(entries: Sequence[Entry]) -> str:
    return json.dumps([e.to_json() for e in entries], separators=(",", ":"))


# -- the mutating webhook ---------------------------------------------------------------------
def _annotations(obj: Mapping[str, object] | None) -> dict[str, str]:
    return decoded.string_map(decoded.path(obj or {}, "metadata", "annotations"))


def _manual_steps(obj: Mapping[str, object]) -> dict[str, Policy | None]:
    """Manual step name -> its approval policy (None: a plain Manual step); finally steps
    included."""
    found: dict[str, Policy | None] = {}
    spec = decoded.path(obj, "spec")
    for step in decoded.items(decoded.path(spec, "steps")) + decoded.items(
        decoded.path(spec, "finally")
    ):
        if step.get("type") != "Manual":
            continue  # most steps: no name read
        name = decoded.string(step.get("name"))
        if name:
            found[name] = Policy.read(step)
    return found


def _is_stamped(key: str) -> bool:
    return key.startswith(RECORD_ANNOTATION_PREFIX) or key == CREATED_BY_ANNOTATION


def recorded_annotations(
    old: Mapping[str, object] | None,
    new: Mapping[str, object],
    *,
    username: str,
    now: str,
) -> dict[str, str]:
    """The annotations ``new`` must be stored with: the writer's own values of the stamped
    annotations replaced by the stored ones, the creator stamped at CREATE, and each new
    decision request moved into its step's record under ``username``."""
    before, after = _annotations(old), _annotations(new)
    result = {k: v for k, v in after.items() if not _is_stamped(k)}
    result.update({k: v for k, v in before.items() if _is_stamped(k)})
    steps = _manual_steps(new)
    if old is None and username and any(p is not None for p in steps.values()):
        # Only a flow with an approval policy needs its creator (approval.allowCreator).
        result[CREATED_BY_ANNOTATION] = username
    if not username:
        return result  # nobody to record: the request stays, and counts for no one
    for step, policy in steps.items():
        key = names.approve_annotation(step)
        value = after.get(key)
        if value is None:
            continue
        if before.get(key) == value:
            # Not this writer's request: a plain step's standing verdict, or a request to a
            # policy step that no webhook recorded (dropped: nobody can be credited with it).
            if policy is not None:
                result.pop(key, None)
            continue
        try:
            request = parse_request(value)
        except RequestError:
            continue  # left in place: the validating webhook refuses it
        entries = read_records(result, step)
        mine = [e for e in entries if e.user == username and e.decision == request.decision]
        # A user's new decision replaces their earlier one (counted once); the inputs they gave
        # before stay unless given again.
        inputs = {k: v for e in mine for k, v in e.inputs.items()} | dict(request.inputs)
        entries = [e for e in entries if e not in mine]
        entries.append(Entry(username, request.decision, now, inputs))
        result[record_annotation(step)] = _encode(entries[-MAX_RECORD_ENTRIES:])
        if policy is not None:
            result.pop(key, None)  # consumed: the next person's request is a change again
    return result


def may_record(old: Mapping[str, object] | None, new: Mapping[str, object]) -> bool:
    """False when ``record_patch(old, new, ...)`` is [] for any writer at any time: ``new`` has
    no Manual step and neither object a stamped annotation (records, created-by); then
    ``recorded_annotations`` is ``new``'s own annotations. Most flows: no clock read."""
    if _manual_steps(new):
        return True
    for obj in (old, new):
        annotations = decoded.path(obj or {}, "metadata", "annotations")
        if isinstance(annotations, Mapping) and any(
            isinstance(key, str) and _is_stamped(key) for key in annotations
        ):
            return True
    return False


def record_patch(
    old: Mapping[str, object] | None,
    new: Mapping[str, object],
    *,
    username: str,
    now: str,
) -> list[dict[str, object]]:
    """JSONPatch ops (none or one) that store ``recorded_annotations``."""
    wanted = recorded_annotations(old, new, username=username, now=now)
    if wanted == _annotations(new):
        return []
    meta = new.get("metadata")
    if not isinstance(meta, Mapping):
        return []  # not an object with metadata: validation refuses it
    return [{"op": "add", "path": "/metadata/annotations", "value": wanted}]


# -- the validating webhook -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Refusal:
    step: str
    path: str
    message: str


def _added(before: Mapping[str, str], after: Mapping[str, str], step: str) -> list[Entry]:
    """Entries of ``step`` that this write added (the webhook stamped them)."""
    if before.get(record_annotation(step)) == after.get(record_annotation(step)):
        return []  # the common case, and the cheap one: no decision on this step
    earlier = read_records(before, step)
    return [e for e in read_records(after, step) if e not in earlier]


def _step_phase(obj: Mapping[str, object] | None, step: str) -> str | None:
    for entry in decoded.items(decoded.path(obj or {}, "status", "steps")):
        if entry.get("name") == step:
            return decoded.string(entry.get("phase"))
    return None


def decision_problems(
    old: Mapping[str, object] | None,
    new: Mapping[str, object],
    *,
    username: str,
    groups: Sequence[str],
    finished_phases: frozenset[str],
) -> list[Refusal]:
    """What the validating webhook refuses in the decisions this write makes."""
    found: list[Refusal] = []
    manual = _manual_steps(new)
    if not manual:
        return found  # no Manual step, no decision to check (most flows)
    before, after = _annotations(old), _annotations(new)
    creator = before.get(CREATED_BY_ANNOTATION) if old is not None else username
    for step, policy in manual.items():
        key = names.approve_annotation(step)
        path = f"metadata.annotations[{key}]"
        value = after.get(key)
        if value is not None and value != before.get(key):
            try:
                parse_request(value)
            except RequestError as exc:
                found.append(Refusal(step, path, f"step {step!r}: {exc}"))
                continue
        added = _added(before, after, step)
        if not added:
            continue
        phase = _step_phase(old, step)
        if phase in finished_phases:
            found.append(
                Refusal(step, path, f"step {step!r} already finished ({phase}); nothing to decide")
            )
            continue
        if policy is None:
            continue  # a plain Manual step: whoever may update the flow decides
        previous = [e for e in read_records(before, step) if e not in added]
        for entry in added:
            found.extend(_entry_problems(step, path, policy, entry, groups, creator, previous))
    return found


def _entry_problems(
    step: str,
    path: str,
    policy: Policy,
    entry: Entry,
    groups: Sequence[str],
    creator: str | None,
    previous: Sequence[Entry],
) -> list[Refusal]:
    verb = "approve" if entry.decision == APPROVE else "reject"
    if not policy.allows(entry.user, groups):
        return [
            Refusal(
                step,
                path,
                f"user {entry.user!r} may not {verb} step {step!r}: its approvers are"
                f" {policy.who()}",
            )
        ]
    if entry.decision == APPROVE and not policy.allow_creator and creator == entry.user:
        return [
            Refusal(
                step,
                path,
                f"user {entry.user!r} created this flow and may not approve step {step!r}"
                f" (approval.allowCreator is false); ask one of {policy.who()}",
            )
        ]
    if entry.decision != APPROVE:
        return []
    return [Refusal(step, path, m) for m in input_problems(step, policy, entry.inputs, previous)]


def input_problems(
    step: str, policy: Policy, inputs: Mapping[str, str], previous: Sequence[Entry] = ()
) -> list[str]:
    """Unknown inputs, values outside their enum, a required input that neither this
    approval nor an earlier one of the step gave."""
    declared = {i.name: i for i in policy.inputs}
    listed = ", ".join(declared) or "none"
    found = []
    if len(inputs) > MAX_INPUTS:
        found.append(f"step {step!r}: at most {MAX_INPUTS} inputs per approval")
    for name, value in inputs.items():
        spec = declared.get(name)
        if spec is None:
            found.append(f"step {step!r} has no input {name!r} (its inputs: {listed})")
        elif spec.enum and value not in spec.enum:
            found.append(
                f"step {step!r}: input {name!r} must be one of {', '.join(spec.enum)}; got {value!r}"
            )
        elif len(value.encode()) > MAX_INPUT_BYTES:
            found.append(f"step {step!r}: input {name!r} is over {MAX_INPUT_BYTES} bytes")
    given = set(inputs) | {n for e in previous if e.decision == APPROVE for n in e.inputs}
    for spec in policy.inputs:
        if spec.required and spec.name not in given:
            found.append(
                f"step {step!r} needs input {spec.name!r} to be approved"
                f" (zen-flow approve FLOW {step} -p {spec.name}=VALUE)"
            )
    return found


# -- the planner ------------------------------------------------------------------------------
def retried_at(history: Sequence[object]) -> str | None:
    """When the latest retry request began a new run (``status.history``), if one did:
    decisions recorded before it belong to an earlier run."""
    for entry in reversed(history):
        if isinstance(entry, Mapping) and entry.get("type") == requests.RETRY:
            return decoded.string(entry.get("time"))
    return None


@dataclass(frozen=True, slots=True)
class Tally:
    approvals: tuple[Entry, ...]  # one per distinct user, in order of decision
    rejection: Entry | None
    required: int

    @property
    def is_approved(self) -> bool:
        return len(self.approvals) >= self.required

    def inputs(self, policy: Policy) -> dict[str, str]:
        """The approved inputs: each one's latest value, else its default."""
        values = policy.defaults()
        declared = {i.name for i in policy.inputs}
        for entry in self.approvals:
            values.update({k: v for k, v in entry.inputs.items() if k in declared})
        return values

    def progress(self) -> str:
        who = ", ".join(e.user for e in self.approvals)
        return f"{len(self.approvals)} of {self.required} approvals" + (f" ({who})" if who else "")


def tally(
    policy: Policy,
    entries: Sequence[Entry],
    *,
    since: str | None = None,
    creator: str | None = None,
) -> Tally:
    """The decisions that count: entries at or after ``since`` (the start of a retried run),
    by allowed users (checked again: the policy may have been narrowed before the start), one
    approval per user; the first rejection."""
    approvals: dict[str, Entry] = {}
    rejection = None
    for entry in sorted(entries, key=lambda e: e.time):
        if since is not None and entry.time < since:
            continue
        if entry.decision == REJECT:
            rejection = rejection or entry
            continue
        if policy.users and not policy.groups and entry.user not in policy.users:
            continue
        if not policy.allow_creator and creator and entry.user == creator:
            continue
        approvals.setdefault(entry.user, entry)
    return Tally(tuple(approvals.values()), rejection, policy.required)
