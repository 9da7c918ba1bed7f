"""coordination.k8s.io/v1 Leases: times normalized to RFC 3339, a positive duration."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.kinds import normalize_time
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col, field

TYPE = builtin_type(
    "coordination.k8s.io", "v1", "leases", "Lease", description="Lease defines a lease concept."
)


def _default_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.get("spec")
    if isinstance(spec, dict):
        for f in ("acquireTime", "renewTime"):
            if f in spec:
                spec[f] = normalize_time(spec[f])


def _validate_lease(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    v = spec.get("leaseDurationSeconds")
    if v is not None and (not isinstance(v, int) or v <= 0):
        return [errors.invalid_value("spec.leaseDurationSeconds", v, "must be greater than 0")]
    return []


class LeaseStrategy(Strategy):
    types = (TYPE,)
    columns = ((col("Holder"), lambda o: field(o, "spec", "holderIdentity", default="")),)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_lease(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_lease(obj, old)


STRATEGY = LeaseStrategy()
