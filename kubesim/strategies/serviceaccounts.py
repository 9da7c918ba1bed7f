"""ServiceAccounts: stored and served (no token controller)."""

from __future__ import annotations

from kubesim.resources import builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col

TYPE = builtin_type(
    "",
    "v1",
    "serviceaccounts",
    "ServiceAccount",
    short_names=("sa",),
    description="ServiceAccount binds together a name, a principal and a set of secrets.",
)


class ServiceAccountStrategy(Strategy):
    types = (TYPE,)
    columns = ((col("Secrets", "integer"), lambda o: len(o.get("secrets") or [])),)


STRATEGY = ServiceAccountStrategy()
