"""Admission metrics on an injected CollectorRegistry (never the global one: building the app
twice in one process, as the tests do, must not collide).

Names (prefix `zenflow_`), all labels of bounded cardinality (no flow names):
- `zenflow_admission_reviews_total{webhook, operation, result}`: webhook `validate|mutate`,
  operation `CREATE|UPDATE|DELETE|CONNECT|OTHER`, result `allowed|denied|error`.
- `zenflow_admission_review_duration_seconds{webhook}`: time from the full body read to the
  encoded answer.
- `zenflow_admission_rejected_requests_total{webhook, code}`: bodies refused before review
  (400 not an AdmissionReview, 413 too large, 415 wrong content type).
The controller registers its own metrics on the same registry and must not reuse these names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

_OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
# Reviews take ~0.1-5 ms; the API server's default timeout is 10 s and ours is 5 s.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AdmissionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reviews = Counter(
            "zenflow_admission_reviews_total",
            "Admission reviews answered, by webhook, operation and result.",
            ["webhook", "operation", "result"],
            registry=registry,
        )
        self.duration = Histogram(
            "zenflow_admission_review_duration_seconds",
            "Time to review one AdmissionReview.",
            ["webhook"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.rejected = Counter(
            "zenflow_admission_rejected_requests_total",
            "Requests refused before review (400, 413, 415).",
            ["webhook", "code"],
            registry=registry,
        )

        # labels() takes a lock and checks its arguments on every call; the children are few
        # (bounded labels), so each review looks its two up here instead.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe(self, *, webhook: str, operation: str, result: str, seconds: float) -> None:
        op = operation if operation in _OPERATIONS else "OTHER"
        key = (webhook, op, result)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.reviews.labels(webhook, op, result),
                self.duration.labels(webhook),
            )
        children[0].inc()
        children[1].observe(seconds)

    def reject(self, *, webhook: str, code: int) -> None:
        self.rejected.labels(webhook, str(code)).inc()
