"""Services: ClusterIP by default with an address picked at once, ports' protocol and
targetPort defaulted."""

from __future__ import annotations

from typing import Any

from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col, field, selector_text

TYPE = builtin_type(
    "",
    "v1",
    "services",
    "Service",
    short_names=("svc",),
    categories=("all",),
    has_status=True,
    description="Service is a named abstraction of software service.",
)


def _default_service(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec.get("type") != "ExternalName" and old is None and "clusterIP" not in spec:
        n = abs(hash(obj.get("metadata", {}).get("name", ""))) % 65000
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
        spec["clusterIPs"] = [spec["clusterIP"]]
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            p.setdefault("targetPort", p.get("port"))
    if old is None:
        obj.setdefault("status", {"loadBalancer": {}})


def _svc_ports(obj: dict[str, Any]) -> str:
    ports = field(obj, "spec", "ports", default=[]) or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


class ServiceStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Type"), lambda o: field(o, "spec", "type")),
        (col("Cluster-IP"), lambda o: field(o, "spec", "clusterIP", default="<none>")),
        (
            col("External-IP"),
            lambda o: ",".join(field(o, "spec", "externalIPs", default=[]) or []) or "<none>",
        ),
        (col("Port(s)"), _svc_ports),
        (col("Selector", priority=1), lambda o: selector_text(field(o, "spec", "selector"))),
    )

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_service(obj, old)
        return []


STRATEGY = ServiceStrategy()
