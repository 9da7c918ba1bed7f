"""ConfigMaps: ``data`` and ``binaryData`` are maps of strings."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col

TYPE = builtin_type(
    "",
    "v1",
    "configmaps",
    "ConfigMap",
    short_names=("cm",),
    description="ConfigMap holds configuration data for pods to consume.",
)


def _validate_configmap(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    for f in ("data", "binaryData"):
        v = obj.get(f)
        if v is None:
            continue
        if not isinstance(v, dict):
            causes.append(errors.type_invalid(f, "string", "must be a map of strings"))
            continue
        for k, val in v.items():
            if not isinstance(val, str):
                causes.append(errors.type_invalid(f"{f}[{k}]", _kind_of(val), "must be a string"))
    return causes


def _kind_of(v: object) -> str:
    return type(v).__name__


class ConfigMapStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (
            col("Data", "integer"),
            lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}),
        ),
    )

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_configmap(obj, old)


STRATEGY = ConfigMapStrategy()
