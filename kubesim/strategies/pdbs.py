"""policy/v1 PodDisruptionBudgets: stored and served (so charts apply); no controller."""

from __future__ import annotations

from kubesim.resources import builtin_type
from kubesim.strategies.base import Strategy
from kubesim.tables import col, field

TYPE = builtin_type(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "PodDisruptionBudget",
    short_names=("pdb",),
    has_status=True,
    has_generation=True,
    description="PodDisruptionBudget limits the number of pods that are down simultaneously.",
)


class PdbStrategy(Strategy):
    types = (TYPE,)
    columns = (
        (col("Min Available"), lambda o: str(field(o, "spec", "minAvailable", default="N/A"))),
        (col("Max Unavailable"), lambda o: str(field(o, "spec", "maxUnavailable", default="N/A"))),
        (
            col("Allowed Disruptions", "integer"),
            lambda o: field(o, "status", "disruptionsAllowed", default=0),
        ),
    )


STRATEGY = PdbStrategy()
