"""Discovery documents, aggregated (apidiscovery.k8s.io/v2) and legacy, from the Registry.

kubectl 1.37 asks for aggregated discovery (``/api`` and ``/apis`` are then all it needs); the
Python DynamicClient only speaks legacy discovery (``/apis`` then ``/apis/{g}/{v}``), so both are
served from the same registry snapshot. Named groups come in a fixed built-in order, then CRD
groups sorted by name; within a group the storage (preferred) version comes first.
"""

from __future__ import annotations

from typing import Any

from kubesim.resources import BUILTIN_GROUP_ORDER, ResourceType

AGGREGATED_CONTENT_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
STATUS_VERBS = ["get", "patch", "update"]


def _group_versions(types: list[ResourceType]) -> dict[str, list[str]]:
    """group -> versions, preferred first."""
    out: dict[str, list[str]] = {}
    for t in types:
        vs = out.setdefault(t.group, [])
        if t.version not in vs:
            vs.append(t.version)
    for g, vs in out.items():
        pref = next((t.storage_version for t in types if t.group == g and t.storage_version), None)

        def rank(v: str, pref: str | None = pref) -> tuple[int, str]:
            return (0 if v == pref else 1, v)

        vs.sort(key=rank)
    return out


def ordered_groups(types: list[ResourceType]) -> list[str]:
    named = {t.group for t in types if t.group}
    builtin = [g for g in BUILTIN_GROUP_ORDER if g in named]
    return builtin + sorted(named - set(builtin))


def _aliases(t: ResourceType) -> dict[str, list[str]]:
    """shortNames and categories, each only when the type has some (both discovery forms)."""
    out: dict[str, list[str]] = {}
    if t.short_names:
        out["shortNames"] = list(t.short_names)
    if t.categories:
        out["categories"] = list(t.categories)
    return out


def _agg_resource(t: ResourceType) -> dict[str, Any]:
    rk = {"group": t.group, "version": t.version, "kind": t.kind}
    r: dict[str, Any] = {
        "resource": t.resource,
        "responseKind": rk,
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular,
        "verbs": list(t.verbs),
        **_aliases(t),
    }
    subs = []
    if t.has_status:
        subs.append({"subresource": "status", "responseKind": rk, "verbs": STATUS_VERBS})
    for s in t.subresources:
        subs.append(
            {
                "subresource": s,
                "responseKind": {"group": "", "version": "v1", "kind": "string"},
                "verbs": ["get"],
            }
        )
    if subs:
        r["subresources"] = subs
    return r


def aggregated(types: list[ResourceType], *, core: bool) -> dict[str, Any]:
    items = []
    gv = _group_versions(types)
    groups = [""] if core else ordered_groups(types)
    for g in groups:
        versions = []
        for v in gv.get(g, []):
            res = sorted(
                (t for t in types if t.group == g and t.version == v), key=lambda t: t.resource
            )
            versions.append(
                {"version": v, "resources": [_agg_resource(t) for t in res], "freshness": "Current"}
            )
        meta: dict[str, Any] = {"creationTimestamp": None}
        if g:
            meta["name"] = g
        items.append({"metadata": meta, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _api_group(g: str, versions: list[str]) -> dict[str, Any]:
    vs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
    return {"name": g, "versions": vs, "preferredVersion": vs[0]}


def api_group_list(types: list[ResourceType]) -> dict[str, Any]:
    gv = _group_versions(types)
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_api_group(g, gv[g]) for g in ordered_groups(types)],
    }


def api_group(types: list[ResourceType], group: str) -> dict[str, Any] | None:
    gv = _group_versions(types)
    if group not in gv or not group:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_api_group(group, gv[group])}


def api_resource_list(types: list[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    res = sorted(
        (t for t in types if t.group == group and t.version == version), key=lambda t: t.resource
    )
    if not res:
        return None
    resources = []
    for t in res:
        r: dict[str, Any] = {
            "name": t.resource,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
            **_aliases(t),
        }
        resources.append(r)
        if t.has_status:
            resources.append(
                {
                    "name": f"{t.resource}/status",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": t.kind,
                    "verbs": STATUS_VERBS,
                }
            )
        for s in t.subresources:
            resources.append(
                {
                    "name": f"{t.resource}/{s}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": "Pod" if s == "log" else t.kind,
                    "verbs": ["get"],
                }
            )
    gvs = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gvs,
        "resources": resources,
    }
