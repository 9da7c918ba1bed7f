"""Cached JobFlows keep their spec as compact JSON; a pass unpacks the one flow it works on.

A 20-step flow's spec is ~6 KB of JSON but ~43 KB as Python dicts, lists and strings: most of
what the controller held per flow, for a part only a pass reads (the planner, validation,
resourceTemplates). So the JobFlow cache stores ``spec`` as a ``PackedSpec``: a dict of the
fields other flows' passes and the cache's index read (``executionPolicy``, for concurrency
groups, and ``suspend``), carrying the whole spec as orjson bytes in ``raw``. A pass calls
``unpack(flow)`` once and works on the whole flow; decoding ~6 KB costs ~20 us, and a pass is
taken about once every three steps.

Invariants:
- Every reader of a cached flow's spec beyond ``PACKED_FIELDS`` goes through ``unpack``: the
  reconciler's pass, nothing else (peers and the concurrency index read only executionPolicy;
  metrics and handlers read status and metadata).
- The spec of one (uid, generation) never changes (the API server bumps the generation on
  every spec change), so a newer copy of the same flow (a status write, a watch event) reuses
  the stored ``PackedSpec`` instead of encoding its spec again.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

JSONDict = dict[str, Any]

# What stays decoded in a cached flow's spec: read for other flows (concurrency peers and the
# index of concurrency groups).
PACKED_FIELDS: Final = ("executionPolicy", "suspend")


class PackedSpec(dict[str, Any]):
    """``PACKED_FIELDS`` of a spec as a dict, the whole spec as JSON in ``raw``."""

    __slots__ = ("raw",)

    def __init__(self, spec: JSONDict) -> None:
        super().__init__((k, spec[k]) for k in PACKED_FIELDS if k in spec)
        self.raw = orjson.dumps(spec)


def _identity(flow: JSONDict) -> tuple[object, object]:
    meta = flow.get("metadata") or {}
    return meta.get("uid"), meta.get("generation")


def pack(flow: JSONDict, previous: JSONDict | None = None) -> JSONDict:
    """``flow`` with its spec packed; ``previous`` (the stored copy) lends its packed spec when
    it is the same flow at the same generation."""
    spec = flow.get("spec")
    if not isinstance(spec, dict) or isinstance(spec, PackedSpec):
        return flow
    packed = previous.get("spec") if previous is not None else None
    if not (
        isinstance(packed, PackedSpec)
        and _identity(previous or {}) == _identity(flow)
        and isinstance(_identity(flow)[1], int)
    ):
        try:
            packed = PackedSpec(spec)
        except TypeError:  # orjson refuses it (an integer past 64 bits): keep it decoded
            return flow
    return {**flow, "spec": packed}


def unpack(flow: JSONDict) -> JSONDict:
    """``flow`` with its whole spec decoded (a new dict; the cached copy is not changed)."""
    spec = flow.get("spec")
    if isinstance(spec, PackedSpec):
        return {**flow, "spec": orjson.loads(spec.raw)}
    return flow
