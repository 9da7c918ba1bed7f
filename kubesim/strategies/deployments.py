"""apps/v1 Deployments: stored and served with upstream's defaults and validation (so charts
apply); no controller acts on them."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.strategies.podspec import (
    POD_TEMPLATE_COLUMNS,
    default_pod_spec,
    validate_containers,
)
from kubesim.tables import col, field

TYPE = builtin_type(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    short_names=("deploy",),
    categories=("all",),
    has_status=True,
    has_generation=True,
    description="Deployment enables declarative updates for Pods and ReplicaSets.",
)


def _default_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy.get("type") == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"maxUnavailable": "25%", "maxSurge": "25%"})
    tspec = spec.setdefault("template", {}).setdefault("spec", {})
    default_pod_spec(tspec)


def _validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes = validate_containers(
        (template.get("spec") or {}).get("containers"), "spec.template.spec.containers"
    )
    selector = spec.get("selector")
    if not isinstance(selector, dict) or not selector:
        causes.append(errors.required("spec.selector"))
    else:
        from kubesim.selectors import match_label_selector_object

        labels = (template.get("metadata") or {}).get("labels") or {}
        if not match_label_selector_object(selector, labels):
            causes.append(
                errors.invalid_value(
                    "spec.template.metadata.labels",
                    labels,
                    "`selector` does not match template `labels`",
                )
            )
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        causes.append(errors.invalid_value("spec.selector", selector, "field is immutable"))
    return causes


class DeploymentStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (
            col("Ready"),
            lambda o: (
                f"{field(o, 'status', 'readyReplicas', default=0)}/{field(o, 'spec', 'replicas', default=1)}"
            ),
        ),
        (col("Up-to-date", "integer"), lambda o: field(o, "status", "updatedReplicas", default=0)),
        (col("Available", "integer"), lambda o: field(o, "status", "availableReplicas", default=0)),
        *POD_TEMPLATE_COLUMNS,
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_deployment(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_deployment(obj, old)


STRATEGY = DeploymentStrategy()
