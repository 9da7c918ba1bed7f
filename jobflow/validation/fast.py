"""The fast path of the step walk: vouch for a common, valid step in one read of it.

``vouch_step`` answers True only for a step on which every per-step check of the full path
(the pydantic shape of ``Step``, ``steps.check_step_kind`` with ``templates.check_template``,
the step name rule, ``steps.check_step_fields``) would report nothing; it then adds the step's
warnings (``risks``) from what it read. Anything it is not sure of (a field it does not know,
an unusual type, a value near a bound, ``when``, inputs and outputs, metadata) makes it decline,
and the full path checks that step exactly as before. So a decline costs a little time, never a
different answer; tests/unit/test_validation_fast.py holds the two paths to the same problems
and warnings over valid, invalid and hostile corpora.

A flow repeats a few small tables in every step (a container's requests and limits, a retry's
backoff): the last such table of short texts vouched for is kept, a copy, with its verdict, and
an equal table is answered from it (``_vouch_resources``, ``_vouch_retry``; a text equals only a
text, so no table of numbers or booleans is ever answered from a kept one).

What stays with the caller for every step, vouched or not: duplicate names and the graph
(dependencies, cycles), and ``{{ parameters.* }}`` placeholders.

Why: a 20-step review spent most of its time in these checks (a pydantic pass per step, then
the hand-written rules read the same fields again, then the warnings a third time); the webhook
answers every ``kubectl apply`` of a flow.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from jobflow import kinds, names, quantities
from jobflow.spec import BackoffType
from jobflow.validation import risks
from jobflow.validation.context import MAX_BACKOFF_SECONDS, MAX_INT32, MAX_STEP_TIMEOUT_SECONDS

STEP_KEYS: Final = frozenset(
    {
        "name",
        "dependencies",
        "template",
        "type",
        "message",
        "continueOnFailure",
        "retryPolicy",
        "timeoutSeconds",
    }
)
_RETRY_KEYS: Final = frozenset({"limit", "backoff"})
_BACKOFF_KEYS: Final = frozenset({"type", "factor", "duration"})
_BACKOFF_TYPES: Final = frozenset(t.value for t in BackoffType)
_RESTART_POLICIES: Final = frozenset({"Never", "OnFailure"})
_ZERO: Final = Decimal(0)
# Verdicts on short texts are cached (a flow repeats a few quantities, durations and images in
# every step); bounded in entries and text length, so no hostile text is kept for long.
_CACHED_TEXT: Final = quantities.MAX_QUANTITY_LENGTH
_CACHED_IMAGE: Final = 255  # image references are short (a registry host, path and tag)
_CACHE_SIZE: Final = 1024
_is_floating = functools.lru_cache(maxsize=_CACHE_SIZE)(risks.is_floating_image)
is_dns1123_label = names.is_dns1123_label
# Step and container names: a flow repeats its container names, a re-apply (and an UPDATE's
# old object) all of its names. Only label-length texts are cached (longer ones are no label).
_is_label = functools.lru_cache(maxsize=_CACHE_SIZE)(names.is_dns1123_label)
_LABEL_LENGTH: Final = names.MAX_LABEL_LENGTH
_NEEDS_TEMPLATE: Final[Mapping[str | None, bool]] = {
    None: kinds.of(None).needs_template,
    **{name: kind.needs_template for name, kind in kinds.KINDS.items()},
}


def vouch_step(step: object, index: int, warnings: list[str] | None) -> bool:
    """True when the full path would find nothing wrong with this step (module docstring)."""
    if type(step) is not dict or not step.keys() <= STEP_KEYS:
        return False
    get = step.get
    name = get("name")
    if type(name) is not str or len(name) > _LABEL_LENGTH or not _is_label(name):
        return False
    deps = get("dependencies")
    if deps is not None:
        if type(deps) is not list:
            return False
        for dep in deps:  # a loop, not any(): no generator per step
            if type(dep) is not str:
                return False
    step_type = get("type")
    if step_type is not None and (type(step_type) is not str or step_type not in kinds.KINDS):
        return False
    message = get("message")
    flag = get("continueOnFailure")
    if (message is not None and type(message) is not str) or (
        flag is not None and type(flag) is not bool
    ):
        return False
    timeout = get("timeoutSeconds")
    if timeout is not None and (
        type(timeout) is not int or not 0 < timeout <= MAX_STEP_TIMEOUT_SECONDS
    ):
        return False
    retry = get("retryPolicy")
    if retry is not None and not _vouch_retry(retry):
        return False
    template = get("template")
    job: Mapping[str, object] | None = None
    containers: list[Mapping[str, str]] = []
    if _NEEDS_TEMPLATE[step_type]:
        vouched = _vouch_template(template)
        if vouched is None:
            return False
        job, containers = vouched
    elif template is not None:
        return False
    if warnings is not None:
        job_backoff = job.get("backoffLimit") if job is not None else None
        _add_warnings(warnings, index, timeout, retry, job_backoff, containers)
    return True


def _add_warnings(
    warnings: list[str],
    index: int,
    timeout: object,
    retry: object,
    job_backoff: object,
    containers: list[Mapping[str, str]],
) -> None:
    """``risks.step_warnings`` for a vouched step, from the fields already read."""
    if timeout is not None and retry is None:
        warnings.append(risks.timeout_without_retry(index))
    if retry is not None and type(job_backoff) is int and job_backoff > 0:
        warnings.append(risks.backoff_multiplies(index, job_backoff))
    for cindex, container in enumerate(containers):
        image = container["image"]
        if _is_floating(image) if len(image) <= _CACHED_IMAGE else risks.is_floating_image(image):
            warnings.append(risks.floating_image(index, cindex, image))


def _vouch_retry(retry: object) -> bool:
    if type(retry) is not dict or not retry.keys() <= _RETRY_KEYS:
        return False
    limit = retry.get("limit")
    if limit is not None and (type(limit) is not int or not 0 <= limit <= MAX_INT32):
        return False
    backoff = retry.get("backoff")
    if backoff is None:
        return True
    kept = _kept_backoff  # as for resources (``_vouch_resources``): the last backoff of texts
    if backoff == kept[0]:
        return kept[1]
    if type(backoff) is not dict or not backoff.keys() <= _BACKOFF_KEYS:
        return False
    verdict = _vouch_backoff(backoff)
    if _short_texts(backoff):
        _keep_backoff(backoff, verdict)
    return verdict


def _vouch_backoff(backoff: dict[object, object]) -> bool:
    kind = backoff.get("type")
    if kind is not None and (type(kind) is not str or kind not in _BACKOFF_TYPES):
        return False
    factor = backoff.get("factor")
    if factor is not None and (type(factor) is not float or not factor >= 1.0):
        return False
    duration = backoff.get("duration")
    if duration is None:
        return True
    return type(duration) is str and len(duration) <= _CACHED_TEXT and _is_backoff(duration)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _is_backoff(duration: str) -> bool:
    """A backoff duration the full path accepts (cached: flows repeat a few)."""
    seconds = quantities.parse_duration(duration)
    return seconds is not None and 0 < seconds <= MAX_BACKOFF_SECONDS


def _vouch_template(
    template: object,
) -> tuple[Mapping[str, object], list[Mapping[str, str]]] | None:
    """The Job's spec and the pod's containers when the full path accepts the template."""
    if type(template) is not dict:
        return None
    for key in template:  # pydantic's dict[str, object] checks the top-level keys
        if type(key) is not str:
            return None
    get = template.get
    if get("kind") != "Job" or get("apiVersion") not in (None, "batch/v1"):
        return None
    spec = get("spec")
    if type(spec) is not dict:
        return None
    limit = spec.get("backoffLimit")
    if limit is not None and (type(limit) is not int or limit < 0):
        return None
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (type(deadline) is not int or deadline <= 0):
        return None
    pod_template = spec.get("template")
    pod = pod_template.get("spec") if type(pod_template) is dict else None
    if type(pod) is not dict:
        return None
    restart = pod.get("restartPolicy")
    if type(restart) is not str or restart not in _RESTART_POLICIES:
        return None
    containers = pod.get("containers")
    if type(containers) is not list or not containers or not _all_vouched(containers):
        return None
    init = pod.get("initContainers")
    if init is not None and (type(init) is not list or not _all_vouched(init)):
        return None
    return spec, containers


def _all_vouched(containers: list[object]) -> bool:
    for container in containers:  # noqa: SIM110 (a loop, not all(): no generator per call)
        if not _vouch_container(container):
            return False
    return True


def _vouch_container(container: object) -> bool:
    if type(container) is not dict:
        return False
    name = container.get("name")
    image = container.get("image")
    if type(name) is not str or type(image) is not str or not image.strip():
        return False
    if len(name) > _LABEL_LENGTH or not _is_label(name):
        return False
    resources = container.get("resources")
    return resources is None or _vouch_resources(resources)


def _vouch_resources(resources: object) -> bool:
    # Every container of a flow tends to carry the same requests and limits: the last table
    # of texts vouched for is kept, and a table equal to it needs no second look. Sound
    # because the kept table holds only texts (``_texts_only``), and a text equals only a
    # text (never 1, 1.0 or True); it is a copy, so nobody can change it once kept.
    kept = _kept_resources
    if resources == kept[0]:
        return kept[1]
    if type(resources) is not dict:
        return False
    verdict = _vouch_amounts(resources.get("requests"), resources.get("limits"))
    if _texts_only(resources):
        _keep_resources(resources, verdict)
    return verdict


def _vouch_amounts(requests_table: object, limits: object) -> bool:
    """Every request and limit a positive quantity, and no limit below its request."""
    requests = _amounts(requests_table)
    if requests is None:
        return False
    if limits is None:
        return True
    if type(limits) is not dict:
        return False
    for resource, raw in limits.items():  # read once: no table of the limits is built
        limit = _amount(raw)
        if limit is None:
            return False
        request = requests.get(resource)
        if request is not None and limit < request:
            return False
    return True


# Last tables of texts vouched for, each as (a copy of it, its verdict): one slot each,
# replaced whole (a reader sees a pair, never half of one).
_kept_resources: tuple[object, bool] = (None, False)
_kept_backoff: tuple[object, bool] = (None, False)
_KEPT_ENTRIES: Final = 16  # per table; real ones have 2-4 (cpu, memory, ...; type, duration)


def _keep_resources(resources: dict[object, object], verdict: bool) -> None:
    global _kept_resources  # one slot, replaced in one assignment
    copy = {key: dict(table) for key, table in resources.items()}  # type: ignore[call-overload]
    _kept_resources = (copy, verdict)


def _keep_backoff(backoff: dict[object, object], verdict: bool) -> None:
    global _kept_backoff
    _kept_backoff = (dict(backoff), verdict)


def _texts_only(resources: dict[object, object]) -> bool:
    """True when ``resources`` is a small table of small tables of short texts (what may be
    kept: a few KB at most, whatever a flow holds)."""
    if len(resources) > _KEPT_ENTRIES:
        return False
    for table in resources.values():
        if type(table) is not dict or not _short_texts(table):
            return False
    return True


def _short_texts(table: dict[object, object]) -> bool:
    if len(table) > _KEPT_ENTRIES:
        return False
    for name, text in table.items():  # names too: YAML allows keys that are no texts
        if type(text) is not str or type(name) is not str:
            return False
        if len(text) > _CACHED_TEXT or len(name) > _CACHED_TEXT:
            return False
    return True


def _amount(raw: object) -> Decimal | None:
    """A positive quantity's value, else None (short texts through the cached verdict)."""
    if type(raw) is str and len(raw) <= _CACHED_TEXT:
        return _positive_quantity_text(raw)
    return _positive_quantity(raw)


def _amounts(table: object) -> dict[object, Decimal] | None:
    """Every quantity of a requests or limits table, or None unless all are positive."""
    if table is None:
        return {}
    if type(table) is not dict:
        return None
    found: dict[object, Decimal] = {}
    for resource, raw in table.items():
        amount = _amount(raw)
        if amount is None:
            return None
        found[resource] = amount
    return found


def _positive_quantity(raw: object) -> Decimal | None:
    """``raw`` as a quantity when it is a positive one (the full path's test), else None; a
    short string, the usual case, goes to ``_positive_quantity_text`` instead (cached)."""
    amount = quantities.parse_quantity(raw)
    return amount if amount is not None and amount > _ZERO else None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _positive_quantity_text(text: str) -> Decimal | None:
    return _positive_quantity(text)
