"""Pods: upstream's pod spec defaults, Pending at first with the ServiceAccount admission
plugin's ``default`` account, container validation, kubectl's columns, and their container
logs go with them."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Store, Strategy
from kubesim.strategies.podspec import default_pod_spec, validate_containers
from kubesim.tables import col, field

TYPE = builtin_type(
    "",
    "v1",
    "pods",
    "Pod",
    short_names=("po",),
    categories=("all",),
    has_status=True,
    subresources=("log",),
    description="Pod is a collection of containers that can run on a host.",
)


def _default_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    if old is None:
        # the ServiceAccount admission plugin's default (a pod's token volume is not modelled)
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        obj.setdefault("status", {}).setdefault("phase", "Pending")
        obj["status"].setdefault("qosClass", "BestEffort")


def _validate_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    if old is not None and "spec" in old and spec is old["spec"]:
        # a status write keeps the stored (validated) spec itself: upstream's status strategy
        # validates only the status and the metadata
        return []
    causes = validate_containers(spec.get("containers"), "spec.containers")
    rp = spec.get("restartPolicy")
    if rp not in ("Always", "OnFailure", "Never"):
        causes.append(
            errors.not_supported("spec.restartPolicy", rp, ["Always", "OnFailure", "Never"])
        )
    if old is not None:
        old_spec = dict(old.get("spec") or {})
        new_spec = dict(spec)
        for s in (old_spec, new_spec):
            s.pop("activeDeadlineSeconds", None)
            s.pop("nodeName", None)
            s["containers"] = [
                {k: v for k, v in c.items() if k != "image"} if isinstance(c, dict) else c
                for c in (s.get("containers") or [])
            ]
        if old_spec != new_spec:
            causes.append(
                errors.forbidden_field(
                    "spec",
                    "pod updates may not change fields other than "
                    "`spec.containers[*].image`, `spec.activeDeadlineSeconds` "
                    "or `spec.tolerations` (only additions to existing tolerations)",
                )
            )
    return causes


def _pod_status(obj: dict[str, Any]) -> str:
    if field(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    reason = field(obj, "status", "reason") or field(obj, "status", "phase", default="Pending")
    for cs in field(obj, "status", "containerStatuses", default=[]) or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            t = state["terminated"]
            reason = t.get("reason") or (f"ExitCode:{t.get('exitCode')}")
    return str(reason)


def _pod_ready(obj: dict[str, Any]) -> str:
    total = len(field(obj, "spec", "containers", default=[]) or [])
    ready = sum(
        1 for cs in field(obj, "status", "containerStatuses", default=[]) or [] if cs.get("ready")
    )
    return f"{ready}/{total}"


def _pod_restarts(obj: dict[str, Any]) -> int:
    return sum(
        int(cs.get("restartCount") or 0)
        for cs in field(obj, "status", "containerStatuses", default=[]) or []
    )


class PodStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Ready"), _pod_ready),
        (col("Status"), _pod_status),
        (col("Restarts", "string"), lambda o: str(_pod_restarts(o))),
        (col("IP", priority=1), lambda o: field(o, "status", "podIP", default="<none>")),
        (col("Node", priority=1), lambda o: field(o, "spec", "nodeName", default="<none>")),
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_pod(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_pod(obj, old)

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        store.drop_pod_logs(str(meta.get("namespace", "")), str(meta["name"]))


STRATEGY = PodStrategy()
