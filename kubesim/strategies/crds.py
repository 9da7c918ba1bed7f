"""CustomResourceDefinitions: checked for the fields the server needs to serve them, their
status (NamesAccepted, Established, acceptedNames, storedVersions) set at once as the
apiextensions controllers would, each served version routed as soon as it is stored, and a
deleted CRD takes its objects with it."""

from __future__ import annotations

from typing import Any

from kubesim import errors
from kubesim.errors import Cause
from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Store, Strategy
from kubesim.tables import col, field
from kubesim.timestamps import now_rfc3339

TYPE = builtin_type(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    has_status=True,
    has_generation=True,
    description="CustomResourceDefinition represents a resource that should be exposed on the API server.",
)


def _default_crd(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = str(names.get("kind", ""))
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", kind + "List")
    spec.setdefault("scope", "Namespaced")
    spec.setdefault("conversion", {"strategy": "None"})


def _validate_crd(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes = _crd_name_causes(obj, spec)
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            errors.not_supported("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
        )
    causes += _crd_version_causes(spec.get("versions"))
    if old is not None:
        causes += _crd_immutable_causes(spec, old.get("spec") or {})
    return causes


def _crd_group_and_plural(spec: dict[str, Any]) -> tuple[str, str]:
    return str(spec.get("group") or ""), str((spec.get("names") or {}).get("plural") or "")


def _crd_name_causes(obj: dict[str, Any], spec: dict[str, Any]) -> list[Cause]:
    """spec.group, spec.names and the object's name, which must be ``<plural>.<group>``."""
    causes: list[Cause] = []
    group, plural = _crd_group_and_plural(spec)
    if not group:
        causes.append(errors.required("spec.group"))
    elif "." not in group:
        causes.append(
            errors.invalid_value("spec.group", group, "should be a domain with at least one dot")
        )
    if not plural:
        causes.append(errors.required("spec.names.plural"))
    if not (spec.get("names") or {}).get("kind"):
        causes.append(errors.required("spec.names.kind"))
    name = (obj.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        causes.append(
            errors.invalid_value("metadata.name", name, 'must be spec.names.plural+"."+spec.group')
        )
    return causes


def _crd_version_causes(versions: Any) -> list[Cause]:
    """One storage version, and every version named with an object schema at its root."""
    if not isinstance(versions, list) or not versions:
        return [errors.required("spec.versions")]
    causes: list[Cause] = []
    storage = [v for v in versions if isinstance(v, dict) and v.get("storage")]
    if len(storage) != 1:
        causes.append(
            errors.invalid_value(
                "spec.versions",
                len(storage),
                "must have exactly one version marked as storage version",
            )
        )
    for i, v in enumerate(versions):
        if not isinstance(v, dict) or not v.get("name"):
            causes.append(errors.required(f"spec.versions[{i}].name"))
            continue
        sch = (v.get("schema") or {}).get("openAPIV3Schema")
        if sch is None:
            causes.append(
                errors.required(
                    f"spec.versions[{i}].schema.openAPIV3Schema", "schemas are required"
                )
            )
        elif isinstance(sch, dict) and sch.get("type") != "object":
            causes.append(
                errors.invalid_value(
                    f"spec.versions[{i}].schema.openAPIV3Schema.type",
                    sch.get("type"),
                    "must be object at the root",
                )
            )
    return causes


def _crd_immutable_causes(spec: dict[str, Any], old_spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    group, plural = _crd_group_and_plural(spec)
    if old_spec.get("group") != spec.get("group"):
        causes.append(errors.invalid_value("spec.group", group, "field is immutable"))
    if (old_spec.get("names") or {}).get("plural") != plural:
        causes.append(errors.invalid_value("spec.names.plural", plural, "field is immutable"))
    if old_spec.get("scope") != spec.get("scope"):
        causes.append(errors.invalid_value("spec.scope", spec.get("scope"), "field is immutable"))
    return causes


def crd_prepare(crd: dict[str, Any]) -> None:
    """Set a CRD's status as the apiextensions controllers would, synchronously."""
    spec = crd.get("spec") or {}
    status = crd.setdefault("status", {})
    ts = now_rfc3339()
    old_conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}

    def cond(typ: str, reason: str, message: str) -> dict[str, Any]:
        prev = old_conds.get(typ)
        if prev and prev.get("status") == "True":
            return prev
        return {
            "type": typ,
            "status": "True",
            "lastTransitionTime": ts,
            "reason": reason,
            "message": message,
        }

    status["conditions"] = [
        cond("NamesAccepted", "NoConflicts", "no conflicts found"),
        cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
    ]
    names = dict(spec.get("names") or {})
    status["acceptedNames"] = names
    stored = list(status.get("storedVersions") or [])
    for v in spec.get("versions") or []:
        if isinstance(v, dict) and v.get("storage") and v.get("name") not in stored:
            stored.append(v["name"])
    status["storedVersions"] = stored


class CrdStrategy(Strategy):
    types = (TYPE,)
    columns = ((col("Created At", "date"), lambda o: field(o, "metadata", "creationTimestamp")),)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        _default_crd(obj, old)
        return []

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        return _validate_crd(obj, old)

    def before_commit(self, obj: dict[str, Any]) -> None:
        crd_prepare(obj)

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        store.registry.register_crd(obj["metadata"]["name"], obj)

    def after_update(self, store: Store, obj: dict[str, Any]) -> None:
        store.registry.register_crd(obj["metadata"]["name"], obj)

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        for served in store.registry.unregister_crd(obj["metadata"]["name"]):
            store.drop_all(served.key)


STRATEGY = CrdStrategy()
