"""networking.k8s.io/v1 NetworkPolicies: stored and served (so charts apply); not enforced."""

from __future__ import annotations

from kubesim.resources import builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col, field, selector_text

TYPE = builtin_type(
    "networking.k8s.io",
    "v1",
    "networkpolicies",
    "NetworkPolicy",
    short_names=("netpol",),
    has_generation=True,
    description="NetworkPolicy describes what network traffic is allowed for a set of Pods.",
)


class NetworkPolicyStrategy(Strategy):
    types = (TYPE,)
    columns = ((col("Pod-Selector"), lambda o: selector_text(field(o, "spec", "podSelector"))),)


STRATEGY = NetworkPolicyStrategy()
