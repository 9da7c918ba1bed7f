"""What the webhook decides: pure functions from an AdmissionRequest to an AdmissionResponse.

- `review_validate`: CREATE and UPDATE of JobFlows are checked by `jobflow.validation.validate`,
  the same call `zen-flow validate` makes offline. A denial carries every problem up to
  MAX_CAUSES: all of them in `status.message` (what `kubectl` prints), one
  `status.details.causes[]` entry per problem with the field path in `field` and the problem's
  stable kebab-case code in `reason`; past MAX_CAUSES the message says how many more there are.
  Code 422, reason Forbidden (see DENIAL_REASON for why not Invalid).
  The answer stays small whatever the input: without the cap, 60,000 steps without a template
  (1.2 MB) made a 16.6 MB denial and a 100 MB peak that the allocator kept; problem texts
  and warnings quote the user's values, so each is cut at MAX_TEXT characters.
- UPDATE rules: a flow that has started (status.startTime set, or a phase other than Pending)
  keeps its steps; any change to `spec.steps` is refused with a clear message, while
  `spec.suspend`, approval annotations and other metadata edits stay allowed. Problems the stored
  object already had are not held against an update (ratcheting, as CRD validation does), so a
  flow admitted while the webhook was down can still be suspended, approved or have its
  finalizers removed.
- `review_mutate`: a JSONPatch of the stored defaults (`jobflow.defaults.admission_patch`: none
  inside `steps[]`, so re-applying an unchanged manifest stays unchanged), plus the stamp of
  who asked for a new `spec.retry` / `spec.stop` (`requestedBy` from the request's userInfo,
  `jobflow.requests.stamp_patch`), and the approval records stamped with that user
  (webhook.decisions: who decided a Manual step, when, with which inputs); it never denies a
  JobFlow for being invalid (that is the validating webhook's job).
- Approval decisions (webhook.decisions): a decision this write records by someone the step's
  policy does not allow is refused (403 Forbidden, naming the step and who may decide).
- Warnings (validate only) point at risky but valid specs (`jobflow.validation.risks`, found in
  the same walk as the problems); they never change the decision.

Anything that is not a JobFlow CREATE/UPDATE of the main resource is allowed untouched: the
webhook configurations only route those here, and failing open on a misrouted request is safer
than blocking an unrelated write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jobflow import defaults, names, requests, validation
from jobflow.errors import Problem
from webhook import decisions, review

REVIEWED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
MAX_WARNINGS = 10  # warnings become HTTP headers; keep them few and short
MAX_CAUSES = 100  # problems named in one denial; a person fixes the first ones first
MAX_TEXT = 1000  # characters of one problem or warning (they quote values, which may be huge)
STEPS_IMMUTABLE = "steps-immutable"
# Denials are code 422 with reason Forbidden, not Invalid: for reason Invalid (or an unknown
# reason with 422) kubectl prints only its own rendering of details.causes ("The jobflows "x"
# is invalid: ...") and drops the message the API server builds, `admission webhook "<name>"
# denied the request: <our message>`, which tells the user who refused the write. Forbidden is
# what controller-runtime's admission.Denied uses; the causes stay in details for programs.
DENIAL_REASON = "Forbidden"
NOT_AN_OBJECT = "not-an-object"


def _is_jobflow(request: review.AdmissionRequest) -> bool:
    kind = request.kind
    return kind.kind == names.KIND and kind.group == names.GROUP and request.sub_resource == ""


def _name(request: review.AdmissionRequest, obj: Mapping[str, Any]) -> str:
    if request.name:
        return request.name
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        for key in ("name", "generateName"):
            if isinstance(meta.get(key), str) and meta[key]:
                return str(meta[key])
    return ""


def _get(obj: object, *keys: str) -> object:
    for key in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


# -- UPDATE rules -----------------------------------------------------------------------------
def has_started(obj: Mapping[str, Any]) -> bool:
    """A flow has started once the controller stamped startTime or moved it past Pending."""
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return False
    phase = status.get("phase")
    return bool(status.get("startTime")) or (phase not in (None, "", "Pending"))


def _steps(obj: Mapping[str, Any]) -> tuple[object, object]:
    # Compare defaulted forms: an object stored before the mutating webhook existed lacks the
    # defaults the new one carries, which is not a change the user made.
    defaulted = defaults.apply_defaults(obj)
    return _get(defaulted, "spec", "steps"), _get(defaulted, "spec", "finally")


def update_problems(old: object, new: Mapping[str, Any]) -> list[Problem]:
    """Problems that only exist because of what this UPDATE changes."""
    if not isinstance(old, Mapping) or not has_started(old):
        return []
    before, after = _steps(old), _steps(new)
    phase = _get(old, "status", "phase") or "started"
    return [
        Problem(
            STEPS_IMMUTABLE,
            f"spec.{field}",
            f"{what} cannot change once the flow has started (phase {phase}); spec.suspend, "
            "approval annotations and metadata may still change; to run different steps, "
            "create a new JobFlow",
        )
        for field, what, was, now in zip(
            ("steps", "finally"), ("steps", "finally steps"), before, after, strict=True
        )
        if was != now
    ]


# -- warnings ---------------------------------------------------------------------------------
def update_warnings(old: object, new: Mapping[str, Any]) -> list[str]:
    """An edit of spec.parameters on a started flow changes nothing by itself: the values in
    effect are fixed at start (status.parameters) and change through a retry request."""
    if not isinstance(old, Mapping) or not has_started(old):
        return []
    if _get(old, "spec", "parameters") == _get(new, "spec", "parameters"):
        return []
    return [
        "spec.parameters changed on a started flow: the values in effect (status.parameters) "
        "change only with a retry (zen-flow retry -p NAME=VALUE, or spec.retry.parameters)"
    ]


# -- the reviews ------------------------------------------------------------------------------
def _denial(
    request: review.AdmissionRequest,
    name: str,
    problems: Sequence[Problem],
    *,
    warnings: Sequence[str] = (),
) -> review.AdmissionResponse:
    shown = problems[:MAX_CAUSES]
    summary = "; ".join(_cut(str(p)) for p in shown)
    if len(problems) > len(shown):
        summary += f"; and {len(problems) - len(shown)} more"
    subject = f'JobFlow "{name}"' if name else "JobFlow"
    count = f"{len(problems)} problems: " if len(problems) > 1 else ""
    causes = [
        review.StatusCause(reason=p.code, message=_cut(p.message), field=_cut(p.path))
        for p in shown
    ]
    return review.deny(
        request.uid,
        f"{subject} is invalid: {count}{summary}",
        code=422,
        reason=DENIAL_REASON,
        causes=causes,
        details_name=name or None,
        warnings=warnings,
    )


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."


def _reviewed_object(
    request: review.AdmissionRequest,
) -> Mapping[str, Any] | review.AdmissionResponse:
    """The JobFlow to review, or the answer already due: allowed when the request is not ours to
    review (another kind, DELETE/CONNECT), denied when its object is not a JSON object."""
    if not _is_jobflow(request) or request.operation not in REVIEWED_OPERATIONS:
        return review.allow(request.uid)
    obj = request.object
    if not isinstance(obj, Mapping):
        problem = Problem(NOT_AN_OBJECT, "", "request.object must be a JobFlow object")
        return _denial(request, request.name, [problem])
    return obj


def review_validate(
    request: review.AdmissionRequest, *, source: bytes | None = None
) -> review.AdmissionResponse:
    """``source``: the body the request was decoded from, when there is one (validation proves
    small objects within the size budget from it instead of serialising them)."""
    obj = _reviewed_object(request)
    if isinstance(obj, review.AdmissionResponse):
        return obj
    name = _name(request, obj)
    found: list[str] = []  # the risk warnings, from validation's own walk of the steps
    problems = validation.validate(obj, warnings=found, source=source)
    if request.operation == "UPDATE" and isinstance(request.old_object, Mapping):
        if problems:  # the stored object's own problems matter only to filter these
            earlier = validation.validate(request.old_object, source=source)
            already = {(p.code, p.path) for p in earlier}
            problems = [p for p in problems if (p.code, p.path) not in already]
        problems = update_problems(request.old_object, obj) + problems
    warnings = [_cut(w) for w in found[:MAX_WARNINGS]]
    if request.operation == "UPDATE":
        warnings += update_warnings(request.old_object, obj)
    if problems:
        return _denial(request, name, problems, warnings=warnings)
    old = request.old_object if isinstance(request.old_object, Mapping) else None
    refused = decisions.refusal(request, old, obj)
    if refused is not None:
        return refused
    return review.allow(request.uid, warnings=warnings)


def review_mutate(request: review.AdmissionRequest) -> review.AdmissionResponse:
    obj = _reviewed_object(request)
    if isinstance(obj, review.AdmissionResponse):
        return obj
    old = request.old_object if isinstance(request.old_object, Mapping) else None
    stamp = requests.stamp_patch(old, obj, request.user_info.username)
    decided = decisions.stamp_ops(request, old, obj)
    return review.allow_with_patch(request.uid, [*defaults.admission_patch(obj), *stamp, *decided])
