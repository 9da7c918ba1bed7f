"""Secrets: type Opaque by default; ``stringData`` becomes base64 ``data``."""

from __future__ import annotations

import base64
from typing import Any

from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col

TYPE = builtin_type(
    "", "v1", "secrets", "Secret", description="Secret holds secret data of a certain type."
)


def _default_secret(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    obj.setdefault("type", "Opaque")
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict):
        data = obj.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


class SecretStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Type"), lambda o: o.get("type")),
        (col("Data", "integer"), lambda o: len(o.get("data") or {})),
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_secret(obj, old)
        return []


STRATEGY = SecretStrategy()
