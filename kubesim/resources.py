"""The resource types kubesim serves: built-in kinds plus the versions of every CRD.

A ``ResourceType`` is everything the server needs to route, store, validate and describe one
group/version/resource. Objects are stored per ``(group, resource)`` (the storage key), so every
served version of a CRD shares one set of objects (no conversion: versions are assumed to be
schema-compatible, which is what single-version CRDs and trivially versioned ones need).

The ``Registry`` is mutated only by the Store under its lock (CRD create/update/delete); readers
take a consistent snapshot through ``types()``. ``generation`` increases on every change so the
HTTP layer can cache discovery and OpenAPI documents and change the OpenAPI hash.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kubesim.errors import ApiError, unknown_path


class GVR(NamedTuple):
    group: str  # "" for the core group
    version: str
    resource: str  # plural, e.g. "jobs", "pods"


ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    has_generation: bool = False
    builtin: bool = True  # strategic merge patch allowed; built-in validation applies
    subresources: tuple[str, ...] = ()  # besides "status": e.g. "log"
    schema: dict[str, Any] | None = None  # openAPIV3Schema for CRDs
    printer_columns: tuple[dict[str, Any], ...] = ()  # CRD additionalPrinterColumns
    storage_version: str = ""  # for CRDs: the version objects are stored as
    verbs: tuple[str, ...] = ALL_VERBS
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @functools.cached_property
    def gvr(self) -> GVR:
        return GVR(self.group, self.version, self.resource)

    @functools.cached_property
    def key(self) -> tuple[str, str]:
        return (self.group, self.resource)

    @functools.cached_property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def group_version(self) -> str:
        return self.api_version


def builtin_type(
    group: str,
    version: str,
    resource: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    has_status: bool = False,
    has_generation: bool = False,
    subresources: tuple[str, ...] = (),
    description: str = "",
) -> ResourceType:
    """A built-in type (singular = lower-case kind); each kind's strategy declares its own
    (``kubesim/strategies/``)."""
    return ResourceType(
        group,
        version,
        resource,
        kind,
        kind.lower(),
        namespaced,
        short_names=short_names,
        categories=categories,
        has_status=has_status,
        has_generation=has_generation,
        subresources=subresources,
        description=description,
    )


# Discovery order of the built-in named groups (kubectl takes the first match for short names).
BUILTIN_GROUP_ORDER = (
    "apps",
    "events.k8s.io",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "coordination.k8s.io",
)


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The ResourceTypes one CRD object serves (one per served version)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    singular = str(names.get("singular") or kind.lower())
    namespaced = spec.get("scope", "Namespaced") == "Namespaced"
    versions = spec.get("versions") or []
    storage = next((str(v.get("name")) for v in versions if v.get("storage")), "")
    out: list[ResourceType] = []
    for v in versions:
        if not v.get("served", True):
            continue
        sub = v.get("subresources") or {}
        schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        out.append(
            ResourceType(
                group=group,
                version=str(v.get("name")),
                resource=plural,
                kind=kind,
                singular=singular,
                namespaced=namespaced,
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in sub,
                has_generation=True,
                builtin=False,
                schema=schema,
                printer_columns=tuple(v.get("additionalPrinterColumns") or ()),
                storage_version=storage,
                description=str(schema.get("description", "")),
                extra={"scale": sub.get("scale")} if sub.get("scale") else {},
            )
        )
    return out


class Registry:
    """Thread-safe map of served resource types; CRD versions come and go at run time."""

    def __init__(self, builtins: Iterable[ResourceType] = ()) -> None:
        self._lock = threading.RLock()
        self._by_gvr: dict[GVR, ResourceType] = {t.gvr: t for t in builtins}
        self._crd_types: dict[str, list[ResourceType]] = {}  # CRD name -> its types
        self._for_key: dict[tuple[str, str], tuple[int, ResourceType | None]] = {}
        self.generation = 0

    def get(self, gvr: GVR) -> ResourceType:
        t = self._by_gvr.get(gvr)
        if t is None:
            raise unknown_path()
        return t

    def find(self, gvr: GVR) -> ResourceType | None:
        return self._by_gvr.get(gvr)

    def types(self) -> list[ResourceType]:
        with self._lock:
            return list(self._by_gvr.values())

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        for t in self.types():
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def for_key(self, key: tuple[str, str]) -> ResourceType | None:
        """The type objects of storage key (group, resource) are stored as."""
        cached = self._for_key.get(key)
        if cached is not None and cached[0] == self.generation:
            return cached[1]
        found = self._find_for_key(key)
        self._for_key[key] = (self.generation, found)
        return found

    def _find_for_key(self, key: tuple[str, str]) -> ResourceType | None:
        best: ResourceType | None = None
        for t in self.types():
            if t.key == key:
                if not t.storage_version or t.version == t.storage_version:
                    return t
                best = best or t
        return best

    def register_crd(self, name: str, crd: dict[str, Any]) -> None:
        with self._lock:
            for t in self._crd_types.pop(name, []):
                self._by_gvr.pop(t.gvr, None)
            types = crd_types(crd)
            for t in types:
                existing = self._by_gvr.get(t.gvr)
                if existing is not None and existing.builtin:
                    raise ApiError(
                        422, "Invalid", f"{t.resource}.{t.group} collides with a built-in resource"
                    )
            for t in types:
                self._by_gvr[t.gvr] = t
            self._crd_types[name] = types
            self.generation += 1

    def unregister_crd(self, name: str) -> list[ResourceType]:
        with self._lock:
            types = self._crd_types.pop(name, [])
            for t in types:
                self._by_gvr.pop(t.gvr, None)
            self.generation += 1
            return types
