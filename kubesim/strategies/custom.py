"""Custom resources: one generic strategy driven by the CRD version's schema (structural
pruning, defaults and validation, as the apiextensions-apiserver's ``customResourceStrategy``)
and its ``additionalPrinterColumns``."""

from __future__ import annotations

from typing import Any

from kubesim import schema, tables
from kubesim.errors import Cause
from kubesim.resources import ResourceType
from kubesim.strategies.base import Strategy
from kubesim.tables import ColumnDefinition, Getter


class CustomResourceStrategy(Strategy):
    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        if rt.schema is None:
            return []
        before = old if old is not None else schema.MISSING
        unknown = schema.prune(rt.schema, obj, old=before)
        schema.apply_defaults(rt.schema, obj, old=before)
        return unknown

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        if rt.schema is None:
            return []
        return schema.validate(rt.schema, obj, old=old if old is not None else schema.MISSING)

    def table(self, rt: ResourceType) -> tuple[list[ColumnDefinition], list[Getter]]:
        return tables.custom_columns(rt)


STRATEGY = CustomResourceStrategy()
