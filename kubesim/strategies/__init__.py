"""Registry strategies: the rules of each kind, one module per kind (see ``base.Strategy``).

``BUILTIN`` is the one place a built-in kind is registered: its order is the order of the
served types (discovery lists them so). Custom resources all get ``custom.STRATEGY``, driven by
their CRD's schema. ``Kinds`` is what one Store serves: the built-in kinds plus any extra ones
given to ``kubesim.start(kinds=...)``.

Adding a kind (kubesim/README.md, "Adding a kind"): a module here with its ``ResourceType``
(``resources.builtin_type``) and a ``Strategy`` subclass (defaulting in ``prepare``, validation
in ``validate``, table ``columns``, hooks), then its strategy in ``BUILTIN``.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubesim.resources import ResourceType
from kubesim.strategies import (
    configmaps,
    crds,
    custom,
    deployments,
    events,
    jobs,
    leases,
    namespaces,
    networkpolicies,
    pdbs,
    pods,
    pvcs,
    rbac,
    secrets,
    serviceaccounts,
    services,
    webhookconfigs,
)
from kubesim.strategies.base import Key, Store, Strategy

__all__ = ["BUILTIN", "Kinds", "Store", "Strategy"]

BUILTIN: tuple[Strategy, ...] = (
    namespaces.STRATEGY,
    configmaps.STRATEGY,
    secrets.STRATEGY,
    serviceaccounts.STRATEGY,
    services.STRATEGY,
    pods.STRATEGY,
    pvcs.STRATEGY,
    events.STRATEGY,
    jobs.STRATEGY,
    leases.STRATEGY,
    deployments.STRATEGY,
    rbac.CLUSTER_ROLES,
    rbac.CLUSTER_ROLE_BINDINGS,
    rbac.ROLES,
    rbac.ROLE_BINDINGS,
    pdbs.STRATEGY,
    networkpolicies.STRATEGY,
    events.EVENTS_V1_STRATEGY,
    crds.STRATEGY,
    webhookconfigs.MUTATING,
    webhookconfigs.VALIDATING,
)
NAMESPACES = namespaces.KEY


class Kinds:
    """The strategies of one server: built-in kinds, extra kinds, and custom resources."""

    def __init__(self, extra: Iterable[Strategy] = ()) -> None:
        self._strategies = (*BUILTIN, *extra)
        self._by_key: dict[Key, Strategy] = {}
        for s in self._strategies:
            if not s.types:
                raise ValueError(f"{type(s).__name__} declares no resource types")
            for t in s.types:
                if t.key in self._by_key and self._by_key[t.key] is not s:
                    raise ValueError(f"{t.resource}.{t.group} is registered twice")
                self._by_key[t.key] = s

    def types(self) -> list[ResourceType]:
        """Every built-in (and extra) resource type, in registration order."""
        return [t for s in self._strategies for t in s.types]

    def for_type(self, rt: ResourceType) -> Strategy:
        """The strategy of a resource type (custom resources get the generic one)."""
        if not rt.builtin:
            return custom.STRATEGY
        return self._by_key.get(rt.key, custom.STRATEGY)

    def for_key(self, key: Key) -> Strategy:
        return self._by_key.get(key, custom.STRATEGY)
