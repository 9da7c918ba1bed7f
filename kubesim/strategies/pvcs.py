"""PersistentVolumeClaims: no provisioner exists, so a claim is Bound at once (workloads that
mount one can run)."""

from __future__ import annotations

from typing import Any

from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col, field

TYPE = builtin_type(
    "",
    "v1",
    "persistentvolumeclaims",
    "PersistentVolumeClaim",
    short_names=("pvc",),
    has_status=True,
    description="PersistentVolumeClaim is a user's request for and claim to a persistent volume.",
)
_ACCESS_MODES = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def _default_pvc(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("volumeMode", "Filesystem")
    if old is None:
        # no provisioner exists: claims bind at once so workloads that mount them can run
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Bound")
        status.setdefault("accessModes", spec.get("accessModes") or ["ReadWriteOnce"])
        req = ((spec.get("resources") or {}).get("requests")) or {}
        if req.get("storage"):
            status.setdefault("capacity", {"storage": req["storage"]})


class PvcStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Status"), lambda o: field(o, "status", "phase")),
        (col("Volume"), lambda o: field(o, "spec", "volumeName", default="")),
        (col("Capacity"), lambda o: field(o, "status", "capacity", "storage", default="")),
        (
            col("Access Modes"),
            lambda o: ",".join(
                _ACCESS_MODES.get(m, m)
                for m in (field(o, "status", "accessModes", default=[]) or [])
            ),
        ),
        (col("StorageClass"), lambda o: field(o, "spec", "storageClassName", default="<unset>")),
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_pvc(obj, old)
        return []


STRATEGY = PvcStrategy()
