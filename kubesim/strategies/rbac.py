"""RBAC roles and bindings: stored and served (so charts apply); nothing enforces them."""

from __future__ import annotations

from kubesim.resources import ResourceType, builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import Column, col, field

GROUP = "rbac.authorization.k8s.io"
_CREATED_AT: Column = (
    col("Created At", "date"),
    lambda o: field(o, "metadata", "creationTimestamp"),
)
_ROLE: Column = (
    col("Role"),
    lambda o: (
        f"{field(o, 'roleRef', 'kind', default='')}/{field(o, 'roleRef', 'name', default='')}"
    ),
)


def _strategy(t: ResourceType, column: Column) -> Strategy:
    s = Strategy()
    s.types = (t,)
    s.columns = (column,)
    return s


CLUSTER_ROLES = _strategy(
    builtin_type(
        GROUP,
        "v1",
        "clusterroles",
        "ClusterRole",
        namespaced=False,
        description="ClusterRole is a cluster level, logical grouping of PolicyRules.",
    ),
    _CREATED_AT,
)
CLUSTER_ROLE_BINDINGS = _strategy(
    builtin_type(
        GROUP,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        description="ClusterRoleBinding references a ClusterRole, but not contain it.",
    ),
    _ROLE,
)
ROLES = _strategy(
    builtin_type(
        GROUP,
        "v1",
        "roles",
        "Role",
        description="Role is a namespaced, logical grouping of PolicyRules.",
    ),
    _CREATED_AT,
)
ROLE_BINDINGS = _strategy(
    builtin_type(
        GROUP,
        "v1",
        "rolebindings",
        "RoleBinding",
        description="RoleBinding references a role, but does not contain it.",
    ),
    _ROLE,
)
