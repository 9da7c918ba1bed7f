"""Namespaces: Active with the ``kubernetes.io/metadata.name`` label; the ServiceAccount
controller's ``default`` ServiceAccount in every new one (a real cluster adds it a moment after;
kubesim at once); and deletion as the namespace registry and controller do it: the namespace is
marked Terminating with the ``kubernetes`` finalizer, its content is deleted, and it is removed
when empty. ``default``, ``kube-system`` and ``kube-public`` may not be deleted."""

from __future__ import annotations

from typing import Any

from kubesim.clone import clone
from kubesim.errors import ApiError
from kubesim.resources import GVR, ResourceType, builtin_type
from kubesim.strategies.base import Store, Strategy
from kubesim.tables import col, field
from kubesim.timestamps import now_rfc3339

TYPE = builtin_type(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    short_names=("ns",),
    has_status=True,
    description="Namespace provides a scope for Names.",
)
KEY = TYPE.key
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")  # upstream refuses to delete them
SA_GVR = GVR("", "v1", "serviceaccounts")
DEFAULT_SERVICE_ACCOUNT = "default"


class NamespaceStrategy(Strategy):
    types = (TYPE,)
    columns = ((col("Status"), lambda o: field(o, "status", "phase")),)

    def prepare(
        self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> list[str]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta.get("name", "")
        status = obj.setdefault("status", {})
        status.setdefault("phase", "Active")
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        return []

    def after_create(self, store: Store, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        try:
            store.get(SA_GVR, DEFAULT_SERVICE_ACCOUNT, namespace=name)
        except ApiError:
            store.create(SA_GVR, {"metadata": {"name": DEFAULT_SERVICE_ACCOUNT}}, namespace=name)

    def delete(
        self, store: Store, rt: ResourceType, cur: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        name = cur["metadata"]["name"]
        if name in IMMORTAL_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                details={"name": name, "kind": "namespaces"},
            )
        marked = clone(cur)
        marked["metadata"]["deletionTimestamp"] = now_rfc3339()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        marked.setdefault("spec", {})["finalizers"] = ["kubernetes"]
        marked.setdefault("status", {})["phase"] = "Terminating"
        store.commit_modified(KEY, marked, cur)
        # the namespace controller: delete the content, then finalize
        for crt, oname in store.contents(name):
            if store.find(crt.key, name, oname) is not None:
                store.delete_in_lock(crt, oname, name)
        self.content_removed(store, name)
        final = store.find(KEY, "", name)
        return (final or marked), final is None

    def content_removed(self, store: Store, namespace: str) -> None:
        nso = store.find(KEY, "", namespace)
        if nso is None or not nso["metadata"].get("deletionTimestamp"):
            return
        if store.contents(namespace):
            return
        final = clone(nso)
        final.get("spec", {}).pop("finalizers", None)
        store.remove(KEY, "", namespace, final)


STRATEGY = NamespaceStrategy()
