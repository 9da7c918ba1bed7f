"""The zen-flow controller runtime: drives every JobFlow to a terminal phase.

Modules: ``kube`` (the only importer of ``kubernetes``: JSON client, our error classes, QPS
limit, RBAC table), ``cache`` (list+watch informers), ``queue`` (work queue of keys),
``reconciler`` (one pass: caches -> ``jobflow.planning.plan`` -> apply), ``leader`` (Lease
election), ``events`` (async Event writer), ``metrics`` (``zenflow_*``), ``supervisor`` (thread
boundaries, restarts of dead threads, the readiness rule), ``runner`` (the ``Controller``
object and the ``zen-flow serve`` seam ``from_settings``). ``python -m controller``
runs the controller alone (tests kill it with SIGKILL; benchmarks measure it).
"""
