"""The admission webhook: AdmissionReview v1 in, a decision out, built on the jobflow library only.

- `review`: the wire models (lenient request, strict envelope, response without nulls).
- `handlers`: pure decisions (validate with UPDATE rules and warnings; mutate = defaults patch).
- `routes`: the HTTP layer (415/413/400 before review, never a 5xx) on a FastAPI app.
- `metrics`: admission counters and latency on an injected Prometheus registry.
- `configuration`: the Validating/MutatingWebhookConfiguration manifests (one definition).
"""
