"""Per-kind rules, as the real API server's registry strategies (``pkg/registry/<group>/<kind>/
strategy.go``): how an object of a kind is prepared (defaulted) and validated on create and
update, what the server sets just before it commits one, and what happens after a commit
(``AfterCreate``, ``AfterUpdate``, ``AfterDelete`` hooks).

The Store asks ``for_type(rt)`` and calls the hooks under its lock; the HTTP layer passes
admission in between preparing and validating (``ServerCore``). The kind-independent parts
(names, metadata, schema pruning and defaulting of custom resources) stay in the Store. Adding
a kind with its own rules means a ``Strategy`` subclass here (its defaulting and validation
functions live in ``kinds``, its table columns in ``tables``) and an entry in ``_STRATEGIES``.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubesim import kinds
from kubesim.errors import ApiError, Cause
from kubesim.resources import GVR, Registry, ResourceType


class Store(Protocol):
    """What the hooks use of ``kubesim.store.Store`` (a Protocol: the Store imports this)."""

    registry: Registry

    def get(self, gvr: GVR, name: str, *, namespace: str | None = None) -> dict[str, Any]: ...

    def create(
        self, gvr: GVR, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]: ...

    def drop_all(self, key: tuple[str, str]) -> None: ...

    def drop_pod_logs(self, namespace: str, name: str) -> None: ...


SA_GVR = GVR("", "v1", "serviceaccounts")
DEFAULT_SERVICE_ACCOUNT = "default"


class Strategy:
    """The rules every kind follows; subclasses add their kind's hooks."""

    def prepare(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Defaulting on create (``old`` None) and update (PrepareForCreate/Update)."""
        kinds.default(rt, obj, old)

    def validate(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[Cause]:
        """The kind's own validation causes (the Store checks names and metadata)."""
        return kinds.validate(rt, obj, old)

    def before_commit(self, obj: dict[str, Any]) -> None:
        """What the server sets on an object about to be stored (create or update)."""

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        """After a create was committed (the Store's lock is held)."""

    def after_update(self, store: Store, obj: dict[str, Any]) -> None:
        """After an update was committed (the Store's lock is held)."""

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        """After the object left the Store (the Store's lock is held)."""


class CrdStrategy(Strategy):
    """CustomResourceDefinitions: status set at once (NamesAccepted, Established), each served
    version routed as soon as it is stored, and a deleted CRD takes its objects with it."""

    def before_commit(self, obj: dict[str, Any]) -> None:
        kinds.crd_prepare(obj)

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        store.registry.register_crd(obj["metadata"]["name"], obj)

    def after_update(self, store: Store, obj: dict[str, Any]) -> None:
        store.registry.register_crd(obj["metadata"]["name"], obj)

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        for served in store.registry.unregister_crd(obj["metadata"]["name"]):
            store.drop_all(served.key)


class NamespaceStrategy(Strategy):
    """Namespaces: the ServiceAccount controller's part, a ``default`` ServiceAccount in every
    new namespace (a real cluster adds it a moment after; kubesim at once)."""

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        try:
            store.get(SA_GVR, DEFAULT_SERVICE_ACCOUNT, namespace=name)
        except ApiError:
            store.create(SA_GVR, {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}, namespace=name)


class PodStrategy(Strategy):
    """Pods: their container logs go with them."""

    def after_remove(self, store: Store, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        store.drop_pod_logs(str(meta.get("namespace", "")), str(meta["name"]))


_DEFAULT = Strategy()
_STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): CrdStrategy(),
    ("", "namespaces"): NamespaceStrategy(),
    ("", "pods"): PodStrategy(),
}


def for_type(rt: ResourceType) -> Strategy:
    """The strategy of a resource type (custom resources and plain kinds get the default)."""
    return _STRATEGIES.get(rt.key, _DEFAULT) if rt.builtin else _DEFAULT
