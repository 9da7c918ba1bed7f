"""jobflow: the shared library of zen-flow (no kubernetes, no fastapi).

model (pydantic API types), defaults (apply_defaults / default_patch), validation (validate ->
list[Problem]), dag (graph algorithms), conditions (`when`, CEL), names (Job names, labels),
crd (the CRD generated from the model), errors (Problem); planning and its helpers compute
what the controller does next, as a pure function.
"""
