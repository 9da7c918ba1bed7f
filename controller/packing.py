"""Cached JobFlows keep their spec and status as compact JSON; a pass unpacks the one flow it
works on.

A 20-step flow's spec is ~6 KB of JSON but ~43 KB as Python dicts, lists and strings: most of
what the controller held per flow, for a part only a pass reads (the planner, validation,
resourceTemplates). So the JobFlow cache stores ``spec`` as a ``PackedSpec``: a dict of the
fields other flows' passes and the cache's index read (``executionPolicy``, for concurrency
groups, and ``suspend``), carrying the whole spec as orjson bytes in ``raw``. A pass calls
``unpack(flow)`` once and works on the whole flow; decoding ~6 KB costs ~20 us, and a pass is
taken about once every three steps.

The status is packed the same way (``PackedStatus``): a 20-step flow's status is ~2.6 KB of
JSON but ~13 KB of dicts (one entry per step), and only a pass reads more of it than the phase
(handlers, the metrics' recount, waits) and the Accepted condition (concurrency peers: an
invalid flow never blocks its group). Every status write replaces it, so it is packed anew.

Invariants:
- Every reader of a cached flow's spec beyond ``PACKED_FIELDS``, or of its status beyond
  ``phase`` and the ``Accepted`` condition, goes through ``unpack``: the reconciler's pass,
  nothing else (peers and the concurrency index read only executionPolicy, a peer's phase and
  Accepted condition; metrics and handlers read the phase and metadata).
- A cached Job's spec is packed too (``PackedJobSpec``, ``suspend`` decoded): the pass
  unpacks the Jobs it hands to the planner (``unpack_job``), whose output parameters may take
  a JSONPath into any field of the Job.
- The spec of one (uid, generation) never changes (the API server bumps the generation on
  every spec change), so a newer copy of the same flow (a status write, a watch event) reuses
  the stored ``PackedSpec`` instead of encoding its spec again.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

import orjson

JSONDict = dict[str, Any]

# What stays decoded in a cached flow's spec: read for other flows (concurrency peers and the
# index of concurrency groups).
PACKED_FIELDS: Final = ("executionPolicy", "suspend")


def _exact(data: bytes) -> bytes:
    """A copy of exactly ``len(data)`` bytes: the bytes orjson returns keep the capacity its
    writer grew to (~8 KB held for a 20-step spec's 5 KB), for as long as the cache keeps them."""
    return bytes(memoryview(data))


class PackedSpec(dict[str, Any]):
    """``PACKED_FIELDS`` of a spec as a dict, the whole spec as JSON in ``raw``."""

    __slots__ = ("raw",)

    def __init__(self, spec: JSONDict) -> None:
        super().__init__((k, spec[k]) for k in PACKED_FIELDS if k in spec)
        self.raw = _exact(orjson.dumps(spec))


# What stays decoded of a cached flow's status: its phase, and of its conditions the one other
# flows' passes read (jobflow.planning.concurrency: an Accepted=False peer never blocks).
STATUS_CONDITIONS: Final = ("Accepted",)


class PackedStatus(dict[str, Any]):
    """The ``phase`` and the ``STATUS_CONDITIONS`` of a status as a dict, the whole status as
    JSON in ``raw``."""

    __slots__ = ("raw",)

    def __init__(self, status: JSONDict) -> None:
        super().__init__()
        if "phase" in status:
            self["phase"] = status["phase"]
        conditions = status.get("conditions")
        if isinstance(conditions, list):
            self["conditions"] = [
                c for c in conditions if isinstance(c, dict) and c.get("type") in STATUS_CONDITIONS
            ]
        self.raw = _exact(orjson.dumps(status))


# What stays decoded of a cached Job's spec (the pod template is dropped before): ``suspend``,
# which the handlers' signature and Kueue's queueing read. The rest (selector, completions,
# backoffLimit, ...) only an output parameter's JSONPath may read, in a pass.
JOB_SPEC_FIELDS: Final = ("suspend",)


class PackedJobSpec(dict[str, Any]):
    """``JOB_SPEC_FIELDS`` of a Job's spec as a dict, the whole spec as JSON in ``raw``."""

    __slots__ = ("raw",)

    def __init__(self, spec: JSONDict) -> None:
        super().__init__((k, spec[k]) for k in JOB_SPEC_FIELDS if k in spec)
        self.raw = _exact(orjson.dumps(spec))


def pack_job(job: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    """``job`` with its spec packed (kept decoded when orjson refuses it); ``previous`` (the
    stored copy) lends its packed spec at the same (uid, generation): a Job's status moves
    several times per run, its spec (``metadata.generation``) seldom."""
    spec = job.get("spec")
    if not isinstance(spec, dict) or isinstance(spec, PackedJobSpec):
        return job
    kept = previous.get("spec") if previous is not None else None
    if (
        isinstance(kept, PackedJobSpec)
        and _identity(previous or {}) == _identity(job)
        and isinstance(_identity(job)[1], int)
    ):
        return {**job, "spec": kept}
    try:
        return {**job, "spec": PackedJobSpec(spec)}
    except TypeError:  # orjson.JSONEncodeError is one
        return job


def unpack_job(job: JSONDict) -> JSONDict:
    """``job`` with its whole spec decoded (a new dict; the cached copy is not changed)."""
    spec = job.get("spec")
    if isinstance(spec, PackedJobSpec):
        return {**job, "spec": orjson.loads(spec.raw)}
    return job


def _identity(flow: JSONDict) -> tuple[object, object]:
    meta = flow.get("metadata") or {}
    return meta.get("uid"), meta.get("generation")


def pack(flow: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    """``flow`` with its spec and status packed; ``previous`` (the stored copy) lends its packed
    spec when it is the same flow at the same generation. A part orjson refuses (an integer
    past 64 bits) stays decoded."""
    packed: JSONDict = {}
    spec = flow.get("spec")
    if isinstance(spec, dict) and not isinstance(spec, PackedSpec):
        kept = previous.get("spec") if previous is not None else None
        if (
            isinstance(kept, PackedSpec)
            and _identity(previous or {}) == _identity(flow)
            and isinstance(_identity(flow)[1], int)
        ):
            packed["spec"] = kept
        else:
            with contextlib.suppress(TypeError):  # orjson.JSONEncodeError is one
                packed["spec"] = PackedSpec(spec)
    status = flow.get("status")
    if isinstance(status, dict) and not isinstance(status, PackedStatus):
        with contextlib.suppress(TypeError):
            packed["status"] = PackedStatus(status)
    return {**flow, **packed} if packed else flow


def unpack(flow: JSONDict) -> JSONDict:
    """``flow`` with its whole spec and status decoded (a new dict; the cached copy is not
    changed)."""
    spec, status = flow.get("spec"), flow.get("status")
    decoded: JSONDict = {}
    if isinstance(spec, PackedSpec):
        decoded["spec"] = orjson.loads(spec.raw)
    if isinstance(status, PackedStatus):
        decoded["status"] = orjson.loads(status.raw)
    return {**flow, **decoded} if decoded else flow
